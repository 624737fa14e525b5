"""Arrival processes for open-loop load: when requests should be sent, at a given rate.

A process is drawn as *unit-rate* inter-arrival gaps (mean 1) that the schedule divides by the rate in
force when each gap is used, so a rate that changes mid-run (a new stage, a worker's share rebalanced)
keeps the same random stream and the same seed still reproduces the run's sequence of gaps:

- `constant`: every gap is 1 (one request every 1/rate seconds);
- `poisson`: exponential gaps (memoryless arrivals, coefficient of variation 1);
- `gamma`: gamma gaps with shape `burstiness` (vLLM bench's convention): burstiness 1 is Poisson, below 1
  burstier (coefficient of variation 1/sqrt(burstiness)), above 1 more regular.

Streams come from `numpy.random.SeedSequence(seed, spawn_key=...)`: one independent stream per (stage,
capability, process), so splitting a run across workers never makes two of them send in lockstep.
No Locust here: the schedule in `inferswarm.locust.arrivals` uses it, and tests check its statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

LATE_MS = 10.0
"""A request sent more than this after its intended start is late: counted by the schedule, flagged in the
telemetry (`schedule_lag_ms`), and counted again exactly by the report from the request log."""
BLOCK = 1024
"""Gaps drawn per numpy call: one call per thousand requests keeps the draw off the hot path."""


class Arrival(StrEnum):
    CONSTANT = "constant"
    POISSON = "poisson"
    GAMMA = "gamma"


@dataclass(frozen=True)
class ArrivalSpec:
    """How an open-loop load kind's requests arrive."""

    arrival: Arrival
    burstiness: float = 1.0
    """Gamma's shape (gamma only)."""
    seed: int = 0


def unit_gaps(spec: ArrivalSpec, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` inter-arrival gaps of the unit-rate process (mean 1)."""
    if spec.arrival is Arrival.CONSTANT:
        return np.ones(count)
    if spec.arrival is Arrival.POISSON:
        return rng.exponential(1.0, count)
    return rng.gamma(spec.burstiness, 1.0 / spec.burstiness, count)


def stream(spec: ArrivalSpec, key: Sequence[int]) -> np.random.Generator:
    """The independent random stream for one (stage, capability, process) `key` of a seeded run."""
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=tuple(key)))


class UnitGaps:
    """An endless supply of unit-rate gaps from one stream, drawn a block at a time."""

    def __init__(self, spec: ArrivalSpec, key: Sequence[int]) -> None:
        self.spec = spec
        self._rng = stream(spec, key)
        self._block: list[float] = []
        self._next = 0

    def next(self) -> float:
        if self._next >= len(self._block):
            self._block = unit_gaps(self.spec, self._rng, BLOCK).tolist()
            self._next = 0
        gap = self._block[self._next]
        self._next += 1
        return gap


def offsets(spec: ArrivalSpec, rps: float, count: int, key: Sequence[int] = (0,)) -> np.ndarray:
    """The first `count` intended send times (seconds from the start) at a fixed rate: what a schedule
    with this spec and stream key produces, for tests and `inferswarm validate`."""
    gaps = UnitGaps(spec, key)
    return np.cumsum([gaps.next() for _ in range(count)]) / rps
