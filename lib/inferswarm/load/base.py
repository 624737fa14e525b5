"""What every load kind is: a config model that is also the strategy for running it.

A load kind owns its config (a `shape` tag plus its own fields), the stages it walks through (computed
without Locust, so they can be tested and printed by `inferswarm validate`), the pacing of each user
(how long a user waits between requests), the cross-checks against the rest of the config, a short
plan for people, and the x axis the report puts its steps on. The Locust adapter asks these questions
and never branches on the kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from inferswarm.load.arrivals import ArrivalSpec
from inferswarm.strict import StrictModel


@dataclass(frozen=True)
class Stage:
    """One stretch of the run with a fixed number of users."""

    name: str
    start_s: float
    """Planned offset from the start of the shape."""
    duration_s: float
    users: int
    """Users (closed loop); for an open-loop stage, the ceiling on requests in flight."""
    spawn_rate: float
    rps: float | None = None
    """The offered request rate of an open-loop stage (all capabilities, all processes); None: closed loop."""
    capabilities: tuple[str, ...] | None = None
    """Only these capabilities' users run in this stage (a sweep over tensor sizes); None: all, by weight."""

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def format_level(level: float) -> str:
    """A step's load level for people: `12` for a whole number, else to 4 decimals at most (`2.5`)."""
    return str(int(level)) if float(level).is_integer() else str(round(level, 4))


def stage_at(stages: Sequence[Stage], run_time_s: float) -> int | None:
    """Index of the stage running at `run_time_s`, or None once the last stage is over."""
    for index, stage in enumerate(stages):
        if run_time_s < stage.end_s:
            return index
    return None


@dataclass(frozen=True)
class StepAxis:
    """Where the report puts a step: the stages-file column that holds its load level, and its label."""

    column: str
    """A column of the stages CSV (see `rundir.STAGE_COLUMNS`)."""
    label: str
    """Axis title and the unit word after a number ("12 users")."""


USERS_AXIS = StepAxis(column="users", label="users")
RATE_AXIS = StepAxis(column="rps", label="requests/s offered")


@dataclass(frozen=True)
class LoadContext:
    """What a load kind may know about the rest of the run config."""

    capabilities: tuple[str, ...]
    """Capability names, in config order."""
    longest_timeout_s: float
    """The longest request timeout of any capability: how long a last request may still take."""
    weights: tuple[int, ...] = ()
    """Capability weights, in config order (empty: all 1)."""
    gates: tuple[str, ...] = ()
    """The config's SLO gates (`slo`), as written."""

    def shares(self) -> dict[str, float]:
        """Each capability's share of the load by weight (sums to 1)."""
        weights = self.weights or (1,) * len(self.capabilities)
        total = sum(weights)
        return {name: weight / total for name, weight in zip(self.capabilities, weights, strict=True)}


@dataclass(frozen=True)
class Wait:
    """A pacer's answer: sleep this long; `skipped` are slots (cycles) the user overran and will not
    run; `stop` ends the user (after its skipped slots are reported)."""

    seconds: float
    skipped: tuple[int, ...] = ()
    stop: bool = False


class Pacer(Protocol):
    """Paces one user. `slot` numbers the user's requests when they belong to a schedule (cycles)."""

    slot: int

    def start(self, now_s: float) -> None: ...

    def next_wait(self, now_s: float) -> Wait:
        """After a request: how long to wait before the next, or that this user is done."""
        ...


class BackToBack:
    """Each user sends its next request as soon as the previous one is answered."""

    slot = 0

    def start(self, now_s: float) -> None:
        return None

    def next_wait(self, now_s: float) -> Wait:
        return _NO_WAIT


_NO_WAIT = Wait(0.0)


class ConstantPacing:
    """One request every `interval_s` per user, from the start of one to the start of the next
    (Locust's `constant_pacing`: a request that overruns the interval is followed at once)."""

    slot = 0

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_run_s = 0.0
        self._last_wait_s = 0.0

    def start(self, now_s: float) -> None:
        self._last_run_s = now_s

    def next_wait(self, now_s: float) -> Wait:
        busy_s = now_s - self._last_run_s - self._last_wait_s
        self._last_wait_s = max(0.0, self.interval_s - busy_s)
        self._last_run_s = now_s
        return Wait(self._last_wait_s)


@dataclass(frozen=True)
class CyclePlan:
    packets: int
    interval_s: float
    cycles: int
    users: dict[str, int]
    """Capability -> its share of each cycle's packets (round-robin in the order given)."""


@dataclass(frozen=True)
class ReadinessPlan:
    """A run that ends when every capability answered "ready" in the same iteration (see `load.readiness`)."""

    capabilities: tuple[str, ...]
    interval_s: float
    timeout_s: float
    """From the first request that got an HTTP answer to giving up."""
    connect_timeout_s: float
    """From the start to giving up when nothing has answered yet."""
    poll_routes: bool = False
    """Also poll the endpoint's `/edge-detector-readiness` and `/health/ready` every interval."""


class LoadKind(StrictModel, ABC):
    """Base of every load kind's config model; subclasses declare `shape: Literal["<name>"]`."""

    shape: str
    axis: ClassVar[StepAxis] = USERS_AXIS
    ends_when_users_stop: ClassVar[bool] = False
    """The run ends as soon as every user has stopped itself (after its last scheduled request)."""
    records_slots: ClassVar[bool] = False
    """Requests belong to numbered slots (cycles) whose outcomes are tallied."""

    @classmethod
    def axis_of(cls, load: Mapping[str, Any]) -> StepAxis:
        """The report's axis for this kind's config as stored in run.json (a kind whose axis depends on
        a field overrides this)."""
        return cls.axis

    @abstractmethod
    def plan(self, context: LoadContext) -> list[Stage]:
        """The planned stages, in order."""

    def longest_s(self, context: LoadContext) -> float:
        """How long the load lasts at most (a plan made as the run goes may end sooner)."""
        stages = self.plan(context)
        return stages[-1].end_s if stages else 0.0

    def pacer(self, capability: str) -> Pacer:
        """A new pacer for one user of `capability`."""
        return BackToBack()

    def users_per_capability(self, context: LoadContext) -> Mapping[str, int] | None:
        """Fixed users per capability (only these capabilities run); None: Locust spreads by weight."""
        return None

    def cycle_plan(self, context: LoadContext) -> CyclePlan | None:
        """Cycle mode's plan (requests tallied per cycle and summarised on the console); None otherwise."""
        return None

    def arrivals(self) -> ArrivalSpec | None:
        """An open-loop kind's arrival process: users then take their sends from a shared schedule at
        each stage's `rps` (see `inferswarm.locust.arrivals`); None: closed loop, paced by `pacer`."""
        return None

    def readiness_plan(self, context: LoadContext) -> ReadinessPlan | None:
        """An end condition watched by the owner: the run ends once every capability is ready; None
        otherwise."""
        return None

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        """Problems with the rest of the config, as (field under `load`, problem)."""
        return []

    def describe(self, context: LoadContext) -> str:
        """The plan in one line for people (`inferswarm validate`)."""
        stages = self.plan(context)
        return (
            f"load: {self.shape}, {len(stages)} stages, up to {max(s.users for s in stages)} "
            f"{self.axis.label}, {stages[-1].end_s:g} s"
        )
