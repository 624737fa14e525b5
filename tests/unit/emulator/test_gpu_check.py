"""gpu-check against a fake NVML at the one seam (inferswarm.nvml): several devices, missing metrics,
errors mid-query, and no NVML at all."""

from __future__ import annotations

from typing import Any

import pytest

from inferswarm import nvml
from inferswarm.emulator.gpu_check import gpu_check_report
from tests.fake_nvml import H100, FakeNvml, NVMLError, gpu_lost

# NVML's remembered state (the seam caches success or failure) is reset around every test
pytestmark = pytest.mark.usefixtures("fresh_nvml")


def test_seed_000_shape_for_two_devices() -> None:
    fake = FakeNvml([H100, {**H100, "uuid": "GPU-bbbb", "util": (99, 80)}])
    report = gpu_check_report(fake)
    assert report["status"] == "success" and report["gpu_count"] == 2
    assert report["system_info"] == {"capability": "gpu-check", "version": "1.0", "routed_via": "agent-net"}
    dev0 = report["devices"]["0"]
    assert dev0["uuid"] == "GPU-aaaa" and dev0["name"] == "NVIDIA H100 80GB HBM3"
    assert dev0["memory"] == {
        "total_bytes": 85_899_345_920,
        "free_bytes": 83_751_862_272,
        "used_bytes": 2_147_483_648,
        "usage_percentage": 2.5,
    }
    assert dev0["compute_capability"] == {"major": 9, "minor": 0, "version": "9.0"}
    assert dev0["utilization"] == {"gpu_percent": 37, "memory_percent": 12}
    assert report["devices"]["1"]["utilization"]["gpu_percent"] == 99


def test_missing_metric_is_reported_not_invented() -> None:
    fake = FakeNvml([{**H100, "cc": NVMLError(3, "Not Supported"), "util": gpu_lost()}])
    dev = gpu_check_report(fake)["devices"]["0"]
    assert dev["compute_capability"] == {"error": "Not Supported"}
    assert dev["utilization"] == {"error": "GPU is lost"}
    assert dev["memory"]["used_bytes"] == 2_147_483_648


def test_one_broken_device_does_not_hide_the_other() -> None:
    fake = FakeNvml([{**H100, "name": NVMLError(999, "Unknown Error")}, H100])
    report = gpu_check_report(fake)
    assert report["status"] == "partial" and report["gpu_count"] == 2
    assert report["devices"]["0"] == {"device_id": 0, "error": "Unknown Error"}
    assert report["devices"]["1"]["name"] == "NVIDIA H100 80GB HBM3"


def test_no_devices() -> None:
    report = gpu_check_report(FakeNvml([]))
    assert (report["status"], report["gpu_count"], report["devices"]) == ("no_gpu", 0, {})


def test_no_nvml_library_gives_gpu_count_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise OSError("NVML Shared Library Not Found")

    monkeypatch.setattr(nvml, "_load_module", missing)
    report = gpu_check_report()
    assert report["status"] == "no_gpu" and report["gpu_count"] == 0 and report["devices"] == {}
    assert "NVML Shared Library Not Found" in report["message"]
    # the failure is remembered: a second call does not try again
    monkeypatch.setattr(nvml, "_load_module", lambda: pytest.fail("NVML load retried"))
    assert gpu_check_report()["gpu_count"] == 0
