"""Load kind `cycle`: `packets` requests spread over some capabilities, every `interval_s`, `cycles` times.

Each of a cycle's requests is one user (the capabilities get them round-robin), paced to one request per
cycle from its own start, so a cycle's requests are in flight together, and the whole thing runs
distributed and in the web UI like any Locust test. A request that overruns its cycle makes its user
skip (and report as missed) the cycles it overran; after the last cycle the user stops, and the run
ends when every user has stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from inferswarm.load.base import CyclePlan, LoadContext, LoadKind, Stage, Wait
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, no_such_name

# Users start this fast, so one cycle's requests really are in flight together.
CYCLE_SPAWN_RATE = 100.0


class CyclePacer:
    """One request per cycle, cycles counted from the user's start; overrun cycles are skipped."""

    def __init__(self, interval_s: float, cycles: int) -> None:
        self.interval_s = interval_s
        self.cycles = cycles
        self.slot = 0
        self._origin_s = 0.0

    def start(self, now_s: float) -> None:
        # Locust runs the first task right after on_start, then waits: cycle 0 starts now.
        self._origin_s = now_s
        self.slot = 0

    def next_wait(self, now_s: float) -> Wait:
        self.slot += 1
        due = self._origin_s + self.slot * self.interval_s
        skipped: list[int] = []
        while due + self.interval_s <= now_s and self.slot < self.cycles:
            skipped.append(self.slot)
            self.slot += 1
            due += self.interval_s
        if self.slot >= self.cycles:
            return Wait(0.0, tuple(skipped), stop=True)
        return Wait(max(due - now_s, 0.0), tuple(skipped))


@register_load
class CycleLoad(LoadKind):
    """Cycle mode: `packets` requests spread over `capabilities`, every `interval_s` seconds."""

    ends_when_users_stop: ClassVar[bool] = True
    records_slots: ClassVar[bool] = True

    shape: Literal["cycle"]
    packets: int = Field(ge=1, le=10_000)
    """x: requests per cycle, sent concurrently."""
    capabilities: list[str] = Field(default_factory=list, max_length=1000)
    """y: the capabilities a cycle spreads its requests over (round-robin); default: all of them."""
    interval_s: float = Field(gt=0, le=MAX_RUN_S)
    """z: seconds from the start of one cycle to the start of the next."""
    cycles: int = Field(default=10, ge=1, le=10_000_000)
    """How many cycles to run; the run ends after the last one's requests are answered."""

    @model_validator(mode="after")
    def _bounded_total(self) -> CycleLoad:
        total_s = self.cycles * self.interval_s
        if total_s > MAX_RUN_S:
            raise ValueError(f"cycles x interval_s is {total_s:g} s; at most {MAX_RUN_S:g} s (7 days)")
        return self

    def cycle_plan(self, context: LoadContext) -> CyclePlan:
        names = self.capabilities or list(context.capabilities)
        users = {
            name: self.packets // len(names) + (1 if i < self.packets % len(names) else 0)
            for i, name in enumerate(names)
        }
        return CyclePlan(
            self.packets, self.interval_s, self.cycles, {n: k for n, k in users.items() if k > 0}
        )

    def plan(self, context: LoadContext) -> list[Stage]:
        """One stage holding `packets` users for every cycle plus the longest timeout for the last answers."""
        duration = self.cycles * self.interval_s + context.longest_timeout_s
        return [Stage("cycles", 0.0, duration, self.packets, max(CYCLE_SPAWN_RATE, float(self.packets)))]

    def pacer(self, capability: str) -> CyclePacer:
        return CyclePacer(self.interval_s, self.cycles)

    def users_per_capability(self, context: LoadContext) -> Mapping[str, int]:
        return self.cycle_plan(context).users

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        known = list(context.capabilities)
        problems = []
        for index, wanted in enumerate(self.capabilities):
            if wanted not in known:
                problems.append((f"capabilities[{index}]", no_such_name("capability", wanted, known)))
        return problems

    def describe(self, context: LoadContext) -> str:
        return (
            f"load: cycle, {self.packets} requests every {self.interval_s:g} s, {self.cycles} cycles "
            f"(about {self.cycles * self.interval_s:g} s)"
        )
