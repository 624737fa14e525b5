"""Load kind `search`: find the highest rate (or user count) that meets the SLO gates, in one run.

Each trial is a short stage at one level; when it ends, the run's owner judges it on the config's `slo`
gates (with the trial's own numbers: latency, rates, failures; see `inferswarm.trials`) and this kind
picks the next level: from `low`, growing by `growth` until a trial fails or `high` passes, then
bisecting between the highest passing and the lowest failing level until they are `resolution` apart
(or `max_trials` were run). Every trial is a recorded stage, so the report shows them all and states
the capacity as a bracket. Over `rps` the trials are open loop (arrivals as for `rate`, the latency
judged from each request's intended start); over `users` closed loop, as for `ramp`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from inferswarm.load.arrivals import ArrivalSpec
from inferswarm.load.base import RATE_AXIS, USERS_AXIS, LoadContext, Stage, StepAxis, format_level
from inferswarm.load.rate import MAX_RPS, OpenLoop
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, MAX_SPAWN_RATE
from inferswarm.trials import unsupported

MAX_TRIALS = 100


@dataclass(frozen=True)
class Trial:
    level: float
    passed: bool


def bracket(trials: Sequence[Trial]) -> tuple[float | None, float | None]:
    """(highest passing level, lowest failing level above it): the capacity lies between them. None on
    a side that no trial found (nothing passed; nothing above the best pass failed)."""
    passed = [t.level for t in trials if t.passed]
    best = max(passed) if passed else None
    failed = [t.level for t in trials if not t.passed and (best is None or t.level > best)]
    return best, (min(failed) if failed else None)


def bracket_text(low: float | None, high: float | None, unit: str) -> str:
    """The capacity a search found, as a bracket, in words (the run's log line and the report)."""
    if low is None:
        return f"below {format_level(high)} {unit}: no trial met every SLO" if high is not None else "unknown"
    if high is None:
        return f"at least {format_level(low)} {unit} (the highest level tried passed)"
    return f"between {format_level(low)} {unit} (passed) and {format_level(high)} (failed)"


@register_load
class SearchLoad(OpenLoop):
    """Trials of one level each, chosen from the verdicts of the ones before."""

    shape: Literal["search"]
    over: Literal["rps", "users"] = "rps"
    low: float = Field(gt=0, le=MAX_RPS)
    """The first trial's level (requests/s offered, or users)."""
    high: float = Field(gt=0, le=MAX_RPS)
    """The highest level tried: a pass there ends the search with the capacity at least this."""
    resolution: float = Field(default=1.0, gt=0, le=MAX_RPS)
    """The search ends when the highest pass and the lowest failure are this close."""
    growth: float = Field(default=2.0, gt=1, le=100)
    """Until a trial fails, each next level is the last passing one times this."""
    trial_s: float = Field(gt=0, le=MAX_RUN_S)
    max_trials: int = Field(default=12, ge=1, le=MAX_TRIALS)

    @model_validator(mode="after")
    def _levels(self) -> SearchLoad:
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) must be >= low ({self.low:g})")
        if self.over == "users" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("over users, low and high are whole numbers of users")
        if self.max_trials * self.trial_s > MAX_RUN_S:
            raise ValueError(
                f"max_trials x trial_s is {self.max_trials * self.trial_s:g} s; at most {MAX_RUN_S:g} s"
            )
        return self

    @classmethod
    def axis_of(cls, load: Mapping[str, Any]) -> StepAxis:
        return USERS_AXIS if load.get("over") == "users" else RATE_AXIS

    def arrivals(self) -> ArrivalSpec | None:
        return super().arrivals() if self.over == "rps" else None

    def plan(self, context: LoadContext | None = None) -> list[Stage]:
        """Only the first trial is known before the run; the rest follow from the verdicts."""
        return [self.trial_stage(0, 0.0, self.low)]

    def longest_s(self, context: LoadContext | None = None) -> float:
        return self.max_trials * self.trial_s

    def trial_stage(self, index: int, start_s: float, level: float) -> Stage:
        name = f"trial {index + 1}"
        if self.over == "rps":
            return self._stage(name, start_s, self.trial_s, level)
        users = int(level)
        return Stage(name, start_s, self.trial_s, users, min(float(users) * 10, MAX_SPAWN_RATE))

    def next_level(self, trials: Sequence[Trial]) -> float | None:
        """The next trial's level, or None: the search is over."""
        if not trials:
            return self.low
        if len(trials) >= self.max_trials:
            return None
        best, failed = bracket(trials)
        if best is None:
            return None  # even `low` failed: the capacity is below it
        if failed is None:
            if best >= self.high:
                return None
            grown = min(best * self.growth, self.high)
            return float(math.ceil(grown)) if self.over == "users" else grown
        if failed - best <= self.resolution:
            return None
        middle = (best + failed) / 2
        if self.over == "users":
            middle = float(math.floor(middle))
            if middle <= best:
                return None
        return middle

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        if not context.gates:
            return [
                ("shape", "a search judges its trials on the SLO gates: give `slo`, e.g. ['p95_ms < 2000']")
            ]
        return [
            (
                "shape",
                f"the gate {text!r} cannot judge a trial during the run (its numbers come from the report)",
            )
            for text in unsupported(context.gates)
        ]

    @property
    def unit(self) -> str:
        return RATE_AXIS.label if self.over == "rps" else USERS_AXIS.label

    def describe(self, context: LoadContext) -> str:
        unit = self.unit
        how = f", {self.arrival} arrivals, seed {self.seed}, at most {self.max_concurrency} in flight"
        return (
            f"load: search for the highest {unit} meeting the SLO gates between {self.low:g} and "
            f"{self.high:g} (resolution {self.resolution:g}), trials of {self.trial_s:g} s, at most "
            f"{self.max_trials} ({self.longest_s():g} s){how if self.over == 'rps' else ''}"
        )
