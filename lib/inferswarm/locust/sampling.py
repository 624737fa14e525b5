"""Sampling inside a Locust process: the blocking collection in gevent's thread pool, plus loop lag.

NVML and psutil calls may block for milliseconds (NVML far longer on a wedged driver); on the hub thread
they would delay every user. `loop_lag_ms` reports how late the probe's short sleeps woke up since the
previous sample: the direct measure of whether anything, sampling included, is stalling the generator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

from inferswarm.telemetry.samples import Sample, sample
from inferswarm.telemetry.sampling import LocalSampling

PROBE_PERIOD_S = 0.05


class LoopLagProbe:
    """A greenlet that sleeps PROBE_PERIOD_S at a time and keeps the worst oversleep since the last read."""

    def __init__(self, period_s: float = PROBE_PERIOD_S) -> None:
        self.period_s = period_s
        self.max_lag_s = 0.0
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(self.period_s)
            lag = time.perf_counter() - started - self.period_s
            if lag > self.max_lag_s:
                self.max_lag_s = lag

    def read_ms(self) -> float:
        lag, self.max_lag_s = self.max_lag_s, 0.0
        return round(lag * 1000.0, 3)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)


class GreenSampling:
    """`LocalSampling` for a gevent process: collected off the hub thread, with this process's loop lag
    and, for an open-loop load, how far its sends fell behind their schedule (`schedule_lag_ms`: the
    worst since the previous sample)."""

    def __init__(self, local: LocalSampling, schedule_lag_ms: Callable[[], float] | None = None) -> None:
        self.local = local
        self.probe = LoopLagProbe()
        self.schedule_lag_ms = schedule_lag_ms

    @property
    def gpu_note(self) -> str:
        return self.local.gpu_note

    def collect(self, now: float | None = None, in_thread: bool = True) -> list[Sample]:
        now = time.time() if now is None else now
        if in_thread:
            samples: list[Sample] = gevent.get_hub().threadpool.apply(self.local.collect, (now,))
        else:
            samples = self.local.collect(now)
        if self.local.process is None:
            return samples
        device = self.local.process.device
        lag = sample(now, self.local.node, "process", device, "loop_lag_ms", self.probe.read_ms())
        if self.schedule_lag_ms is None:
            return [*samples, lag]
        behind = sample(now, self.local.node, "process", device, "schedule_lag_ms", self.schedule_lag_ms())
        return [*samples, lag, behind]
