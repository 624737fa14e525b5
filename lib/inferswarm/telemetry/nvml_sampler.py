"""Per-device GPU samples from NVML, through the one seam `inferswarm.nvml`.

A metric a device does not support is asked for once and then skipped; any other NVML error (a GPU
that fell off the bus, a driver reload) skips that reading, is logged once per device and metric, and
sampling goes on. Without NVML or without a GPU the sampler is simply empty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from inferswarm.nvml import NvmlUnavailable, error_text, open_nvml
from inferswarm.telemetry.samples import Sample, plain, sample

log = logging.getLogger("inferswarm.telemetry")

NVML_ERROR_NOT_SUPPORTED = 3
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1


def _not_supported(nvml: Any, exc: BaseException) -> bool:
    cls = getattr(nvml, "NVMLError_NotSupported", None)
    if isinstance(cls, type) and isinstance(exc, cls):
        return True
    return getattr(exc, "value", None) == NVML_ERROR_NOT_SUPPORTED


def _utilization(n: Any, h: Any) -> dict[str, Any]:
    rates = n.nvmlDeviceGetUtilizationRates(h)
    return {"gpu_util_pct": rates.gpu, "gpu_mem_ctrl_util_pct": rates.memory}


def _memory(n: Any, h: Any) -> dict[str, Any]:
    mem = n.nvmlDeviceGetMemoryInfo(h)
    return {"gpu_mem_used_bytes": mem.used, "gpu_mem_total_bytes": mem.total}


def _throttle_reasons(n: Any, h: Any) -> dict[str, Any]:
    # Renamed "clocks event reasons" in newer drivers; the old name still exists in most bindings.
    getter = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if getter is None:
        getter = n.nvmlDeviceGetCurrentClocksThrottleReasons
    return {"gpu_throttle_reasons": getter(h)}


# reading -> NVML call(s) giving metrics in the catalogue's units; one call may give several metrics
_READINGS: dict[str, Callable[[Any, Any], dict[str, Any]]] = {
    "utilization": _utilization,
    "memory": _memory,
    "temperature": lambda n, h: {"gpu_temp_c": n.nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU)},
    "power": lambda n, h: {"gpu_power_w": plain(n.nvmlDeviceGetPowerUsage(h)) / 1000.0},  # mW
    "energy": lambda n, h: {"gpu_energy_j": plain(n.nvmlDeviceGetTotalEnergyConsumption(h)) / 1000.0},
    "sm_clock": lambda n, h: {"gpu_sm_clock_mhz": n.nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM)},
    "throttle_reasons": _throttle_reasons,
}


class GpuSampler:
    """Samples every GPU NVML sees. `available` is False (with `reason`) when there is nothing to sample."""

    source = "nvml"

    def __init__(self, node: str, nvml_module: Any = None) -> None:
        self.node = node
        self.reason = ""
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._unsupported: set[tuple[int, str]] = set()
        self._logged: set[tuple[int, str]] = set()
        try:
            nvml = open_nvml(nvml_module)
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except NvmlUnavailable as exc:
            self.reason = str(exc)
            return
        except Exception as exc:  # NVMLError while listing devices
            self.reason = f"NVML error: {error_text(exc)}"
            return
        if not self._handles:
            self.reason = "NVML found no GPU devices"
            return
        self._nvml = nvml

    @property
    def available(self) -> bool:
        return self._nvml is not None

    @property
    def device_count(self) -> int:
        return len(self._handles) if self.available else 0

    def _failed(self, index: int, what: str, exc: BaseException) -> None:
        if _not_supported(self._nvml, exc):
            self._unsupported.add((index, what))
            log.info("telemetry: gpu%d does not support %s; not sampled", index, what)
            return
        if (index, what) not in self._logged:
            self._logged.add((index, what))
            log.warning("telemetry: gpu%d %s: %s (skipped while it fails)", index, what, error_text(exc))

    def collect(self, now: float) -> list[Sample]:
        if not self.available:
            return []
        out: list[Sample] = [sample(now, self.node, self.source, "host", "gpu_count", len(self._handles))]
        for index, handle in enumerate(self._handles):
            device = f"gpu{index}"
            for reading, read in _READINGS.items():
                if (index, reading) in self._unsupported:
                    continue
                try:
                    values = read(self._nvml, handle)
                except Exception as exc:
                    self._failed(index, reading, exc)
                    continue
                out += [sample(now, self.node, self.source, device, m, v) for m, v in values.items()]
            out += self._process_memory(now, index, handle)
        return out

    def _process_memory(self, now: float, index: int, handle: Any) -> list[Sample]:
        what = "processes"
        if (index, what) in self._unsupported:
            return []
        try:
            procs = list(self._nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        except Exception as exc:
            self._failed(index, what, exc)
            return []
        out = []
        for proc in procs:
            used = getattr(proc, "usedGpuMemory", None)
            if used is None:  # NVML reports "not available" (e.g. without permissions, under MIG)
                continue
            out.append(
                sample(
                    now,
                    self.node,
                    self.source,
                    f"gpu{index}/pid{plain(proc.pid)}",
                    "gpu_process_mem_bytes",
                    used,
                )
            )
        return out
