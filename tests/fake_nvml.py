"""A fake `pynvml` module for the one NVML seam (`inferswarm.nvml.open_nvml(module)`).

Each device is a dict; a value that is an exception is raised when read, a callable is called on every
read (to change values or fail mid-run), and every read is counted so tests can see what was asked.
Scalar getters answer with ctypes values (some bindings do) to prove the samplers make them plain.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    def __init__(self, value: int, text: str) -> None:
        super().__init__(text)
        self.value = value


class NVMLError_NotSupported(NVMLError):
    def __init__(self) -> None:
        super().__init__(3, "Not Supported")


def gpu_lost() -> NVMLError:
    return NVMLError(15, "GPU is lost")


class FakeNvml:
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported

    def __init__(self, devices: list[dict[str, Any]]) -> None:
        self.devices = devices
        self.inits = 0
        self.reads: Counter[tuple[int, str]] = Counter()

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def _get(self, handle: int, key: str) -> Any:
        self.reads[(handle, key)] += 1
        value = self.devices[handle].get(key, NVMLError_NotSupported())
        if callable(value) and not isinstance(value, type):
            value = value()
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetUUID(self, handle: int) -> Any:
        return self._get(handle, "uuid")

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return self._get(handle, "name")

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        total, used = self._get(handle, "mem")
        return SimpleNamespace(total=total, used=used, free=total - used)  # struct fields read as int

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> Any:
        return self._get(handle, "cc")

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        gpu, mem = self._get(handle, "util")
        return SimpleNamespace(gpu=gpu, memory=mem)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> Any:
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return ctypes.c_uint(self._get(handle, "temp"))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> Any:
        return ctypes.c_uint(self._get(handle, "power_mw"))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> Any:
        return ctypes.c_ulonglong(self._get(handle, "energy_mj"))

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> Any:
        assert clock == 1  # NVML_CLOCK_SM
        return ctypes.c_uint(self._get(handle, "sm_mhz"))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: int) -> Any:
        return ctypes.c_ulonglong(self._get(handle, "throttle"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> Any:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self._get(handle, "procs")]


H100: dict[str, Any] = {
    "uuid": b"GPU-aaaa",  # old bindings return bytes
    "name": "NVIDIA H100 80GB HBM3",
    "mem": (85_899_345_920, 2_147_483_648),
    "cc": (9, 0),
    "util": (37, 12),
    "temp": 41,
    "power_mw": 312_500,
    "energy_mj": 9_876_543_210,
    "sm_mhz": 1980,
    "throttle": 0x4,  # SW power cap
    "procs": [(4242, 1_073_741_824), (4343, None)],  # None: NVML cannot tell (MIG, permissions)
}
