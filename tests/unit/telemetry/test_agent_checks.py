"""`inferswarm agent`'s GET /checks: the server-side half of seed 003 (GPU through NVML, load, clock)."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from inferswarm.checks.model import TEST_KEYS
from inferswarm.telemetry.agent import AgentSampler, create_app
from tests.fake_nvml import H100, FakeNvml, NVMLError


class NoDriver(FakeNvml):
    def nvmlInit(self) -> None:
        raise NVMLError(9, "Driver Not Loaded")


def checks_of(nvml: Any) -> dict[str, Any]:
    sampler = AgentSampler("agent@test", interval_s=1.0, nvml_module=nvml)
    sampler.sample_once()
    with TestClient(create_app(sampler)) as client:
        before = time.time()
        response = client.get("/checks")
        after = time.time()
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    assert before <= data["time_epoch_s"] <= after  # this machine's clock, read while answering
    assert set(data) >= {"hostname", "time_epoch_s", "gpu", "load", "checks"}
    assert set(data["load"]) == {"cpu_pct", "mem_pct", "loadavg"}
    for check in data["checks"]:
        assert tuple(check) == TEST_KEYS
    return data


def test_a_gpu_machine_reports_its_gpus_and_passes(fresh_nvml: None) -> None:
    data = checks_of(FakeNvml([H100, H100]))
    gpu = data["gpu"]
    assert gpu["visible"] is True and gpu["count"] == 2 and gpu["nvml"] == "ok"
    assert gpu["names"] == ["NVIDIA H100 80GB HBM3"] * 2
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses["nvml_readable"] == "PASS" and statuses["gpu_detection"] == "PASS"
    assert statuses["telemetry_sampling"] == "PASS"


def test_without_a_driver_the_gpu_is_not_visible_and_says_why(fresh_nvml: None) -> None:
    data = checks_of(NoDriver([]))
    gpu = data["gpu"]
    assert gpu["visible"] is False and gpu["count"] == 0 and "Driver Not Loaded" in gpu["nvml"]
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses["nvml_readable"] == "WARN" and statuses["gpu_detection"] == "WARN"


def test_no_devices_is_not_a_visible_gpu(fresh_nvml: None) -> None:
    data = checks_of(FakeNvml([]))
    assert data["gpu"]["visible"] is False and data["gpu"]["nvml"] == "ok"
