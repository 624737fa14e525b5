"""This process's samplers (host, process, GPU) and the gevent loop-lag probe.

Sampling runs in gevent's native thread pool: NVML and psutil calls are C calls that may block for
milliseconds (NVML far longer on a wedged driver), and on the hub thread they would delay every user.
`loop_lag_ms` reports how late the probe's short sleeps woke up since the previous sample: the direct
measure of whether anything, sampling included, is stalling the generator.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from inferswarm.telemetry.host import HostSampler, ProcessSampler
from inferswarm.telemetry.nvml_sampler import GpuSampler
from inferswarm.telemetry.samples import Sample, sample

log = logging.getLogger("inferswarm.telemetry")

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


class LocalSampling:
    """Collects this machine's samples; GPU sampling is set up on first use, in the sampling thread.

    `process=False` (the agent) leaves out the sampling process's own CPU, memory and loop lag.
    """

    def __init__(
        self,
        node: str,
        gpu: bool = True,
        per_core: bool = True,
        nvml_module: Any = None,
        process: bool = True,
    ) -> None:
        self.node = node
        self.host = HostSampler(node, per_core)
        self.process = ProcessSampler(node) if process else None
        self.gpu: GpuSampler | None = None
        self._want_gpu = gpu
        self._nvml_module = nvml_module
        self.probe = LoopLagProbe()
        self.gpu_note = "disabled in the config" if not gpu else "not started"

    def _collect_blocking(self, now: float) -> list[Sample]:
        if self._want_gpu and self.gpu is None:
            self.gpu = GpuSampler(self.node, self._nvml_module)
            if self.gpu.available:
                self.gpu_note = f"{self.gpu.device_count} device(s)"
            else:
                self.gpu_note = self.gpu.reason
                log.info(
                    "telemetry: no GPU sampling on %s (%s); host sampling only", self.node, self.gpu.reason
                )
        out = self.host.collect(now)
        if self.process is not None:
            out += self.process.collect(now)
        if self.gpu is not None:
            out += self.gpu.collect(now)
        return out

    def collect(self, now: float | None = None, in_thread: bool = True) -> list[Sample]:
        now = time.time() if now is None else now
        if in_thread:
            samples: list[Sample] = gevent.get_hub().threadpool.apply(self._collect_blocking, (now,))
        else:
            samples = self._collect_blocking(now)
        if self.process is None:
            return samples
        lag = sample(now, self.node, "process", self.process.device, "loop_lag_ms", self.probe.read_ms())
        return [*samples, lag]
