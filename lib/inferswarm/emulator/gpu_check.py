"""The gpu-check answer, from real NVML readings, or an honest "no GPU" when there are none."""

from __future__ import annotations

import time
from typing import Any

from inferswarm.nvml import NvmlUnavailable, as_text, error_text, open_nvml

SYSTEM_INFO = {"capability": "gpu-check", "version": "1.0", "routed_via": "agent-net"}


def _device(nvml: Any, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    device: dict[str, Any] = {"device_id": index}
    device["uuid"] = as_text(nvml.nvmlDeviceGetUUID(handle))
    device["name"] = as_text(nvml.nvmlDeviceGetName(handle))
    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    total, used, free = int(mem.total), int(mem.used), int(mem.free)
    device["memory"] = {
        "total_bytes": total,
        "free_bytes": free,
        "used_bytes": used,
        "usage_percentage": round(100.0 * used / total, 2) if total else 0.0,
    }
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        device["compute_capability"] = {
            "major": int(major),
            "minor": int(minor),
            "version": f"{major}.{minor}",
        }
    except Exception as exc:  # older drivers lack it; report rather than invent
        device["compute_capability"] = {"error": error_text(exc)}
    try:
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        device["utilization"] = {"gpu_percent": int(rates.gpu), "memory_percent": int(rates.memory)}
    except Exception as exc:
        device["utilization"] = {"error": error_text(exc)}
    return device


def gpu_check_report(nvml_module: Any = None) -> dict[str, Any]:
    """The gpu-check JSON. Never invents device data: without NVML it says so with gpu_count 0."""
    report: dict[str, Any] = {"status": "success", "timestamp": round(time.time(), 3)}
    try:
        nvml = open_nvml(nvml_module)
        count = int(nvml.nvmlDeviceGetCount())
    except NvmlUnavailable as exc:
        report.update(status="no_gpu", message=str(exc), gpu_count=0, devices={})
        report["system_info"] = dict(SYSTEM_INFO)
        return report
    except Exception as exc:
        report.update(status="no_gpu", message=f"NVML error: {error_text(exc)}", gpu_count=0, devices={})
        report["system_info"] = dict(SYSTEM_INFO)
        return report
    devices: dict[str, Any] = {}
    failed = 0
    for index in range(count):
        try:
            devices[str(index)] = _device(nvml, index)
        except Exception as exc:  # one broken device must not hide the others
            devices[str(index)] = {"device_id": index, "error": error_text(exc)}
            failed += 1
    report["gpu_count"] = count
    report["devices"] = devices
    if count == 0:
        report.update(status="no_gpu", message="NVML found no GPU devices")
    elif failed:
        report.update(status="partial", message=f"{failed} of {count} devices could not be read")
    report["system_info"] = dict(SYSTEM_INFO)
    return report
