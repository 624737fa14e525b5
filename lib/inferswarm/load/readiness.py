"""Load kind `readiness`: one query to each detector every `interval_s` until all answer from the edge.

Seed 001's memory-pressure and repeated-rollouts tests: N detectors (capabilities) are queried once per
iteration; the run ends in the first iteration where every one of them answered from the edge (all
their inference pods are up), or after `timeout_s`. Connection refusals while the endpoint comes up are
tolerated: the timer starts at the first request that got an HTTP answer, and `connect_timeout_s`
bounds the wait for it.

It is cycle mode with one request per detector per cycle (each detector one user paced by
`CyclePacer`, the iteration is the request's slot) plus an end condition that the owner process
watches (`inferswarm.locust.listeners.readiness`), which needs to know where each answer came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from inferswarm.load.base import LoadContext, LoadKind, ReadinessPlan, Stage
from inferswarm.load.cycle import CYCLE_SPAWN_RATE, CyclePacer
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, no_such_name

MAX_ITERATIONS = 10_000_000


@register_load
class ReadinessLoad(LoadKind):
    """One query per detector per iteration until every detector answers from the edge in one iteration."""

    ends_when_users_stop: ClassVar[bool] = True
    records_slots: ClassVar[bool] = True

    shape: Literal["readiness"]
    interval_s: float = Field(default=1.0, gt=0, le=3600)
    """Seconds from the start of one iteration to the start of the next."""
    timeout_s: float = Field(default=600.0, gt=0, le=MAX_RUN_S)
    """Give up this long after the first successful connection."""
    connect_timeout_s: float = Field(default=600.0, gt=0, le=MAX_RUN_S)
    """Give up when nothing has answered (connections refused) this long after the start."""
    capabilities: list[str] = Field(default_factory=list, max_length=1000)
    """The detectors (capabilities) to wait for; default: all of them."""
    poll_routes: bool = True
    """Also poll the endpoint's `/edge-detector-readiness` and `/health/ready` every `interval_s` (from
    the master or the local runner) and record when each said ready (PREFIX_readiness_routes.csv)."""

    @model_validator(mode="after")
    def _bounded(self) -> ReadinessLoad:
        total_s = self.connect_timeout_s + self.timeout_s
        if total_s > MAX_RUN_S:
            raise ValueError(f"connect_timeout_s + timeout_s is {total_s:g} s; at most {MAX_RUN_S:g} s")
        if self.iterations > MAX_ITERATIONS:
            raise ValueError(f"{self.iterations} iterations; at most {MAX_ITERATIONS} (raise interval_s)")
        return self

    @property
    def iterations(self) -> int:
        """The most iterations a detector's user can send (the backstop behind the owner's timeouts)."""
        return math.ceil((self.connect_timeout_s + self.timeout_s) / self.interval_s) + 1

    def detectors(self, context: LoadContext) -> tuple[str, ...]:
        return tuple(self.capabilities or context.capabilities)

    def readiness_plan(self, context: LoadContext) -> ReadinessPlan:
        return ReadinessPlan(
            self.detectors(context), self.interval_s, self.timeout_s, self.connect_timeout_s, self.poll_routes
        )

    def plan(self, context: LoadContext) -> list[Stage]:
        """One stage, one user per detector, as long as both timeouts plus the last answer may take."""
        users = len(self.detectors(context))
        duration = self.connect_timeout_s + self.timeout_s + self.interval_s + context.longest_timeout_s
        return [Stage("readiness", 0.0, duration, users, max(CYCLE_SPAWN_RATE, float(users)))]

    def pacer(self, capability: str) -> CyclePacer:
        return CyclePacer(self.interval_s, self.iterations)

    def users_per_capability(self, context: LoadContext) -> Mapping[str, int]:
        return dict.fromkeys(self.detectors(context), 1)

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        known = list(context.capabilities)
        problems = []
        for index, wanted in enumerate(self.capabilities):
            if wanted not in known:
                problems.append((f"capabilities[{index}]", no_such_name("capability", wanted, known)))
            elif wanted in self.capabilities[:index]:
                problems.append((f"capabilities[{index}]", f"{wanted!r} is listed twice"))
        return problems

    def describe(self, context: LoadContext) -> str:
        n = len(self.detectors(context))
        return (
            f"load: readiness, one query to each of {n} detector{'s' if n != 1 else ''} every "
            f"{self.interval_s:g} s until all answer from the edge in one iteration; gives up "
            f"{self.timeout_s:g} s after the first connection (or {self.connect_timeout_s:g} s without one)"
        )
