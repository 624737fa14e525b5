"""This machine's samplers (host, this process, GPU) behind one blocking `collect`.

The calls are C calls (NVML, psutil) that may block for milliseconds; inside Locust they run in
gevent's thread pool (`inferswarm.locust.sampling`), in the agent on its own thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from inferswarm.telemetry.host import HostSampler, ProcessSampler
from inferswarm.telemetry.nvml_sampler import GpuSampler
from inferswarm.telemetry.samples import Sample

log = logging.getLogger("inferswarm.telemetry")


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
        self.gpu_note = "disabled in the config" if not gpu else "not started"

    def collect(self, now: float | None = None) -> list[Sample]:
        now = time.time() if now is None else now
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
