"""gpu-check replies as telemetry, and the pollers built from a run config."""

from __future__ import annotations

import pytest

from inferswarm.config import parse_config
from inferswarm.emulator.gpu_check import gpu_check_report
from inferswarm.locust.listeners.telemetry import build_pollers
from inferswarm.telemetry.remote import (
    AgentPoller,
    GpuCheckPoller,
    PollError,
    PrometheusPoller,
    map_gpu_check,
)
from tests.conftest import base_config
from tests.fake_nvml import H100, FakeNvml

# NVML's remembered state (the seam caches success or failure) is reset around every test
pytestmark = pytest.mark.usefixtures("fresh_nvml")


def test_seed_000_gpu_check_reply_becomes_gpu_samples() -> None:
    report = gpu_check_report(FakeNvml([H100, {**H100, "util": (5, 1), "mem": (85_899_345_920, 0)}]))
    got = {(s.device, s.metric): s.value for s in map_gpu_check(report, 10.0, "target")}
    assert got == {
        ("host", "gpu_count"): 2,
        ("gpu0", "gpu_mem_used_bytes"): 2_147_483_648,
        ("gpu0", "gpu_mem_total_bytes"): 85_899_345_920,
        ("gpu0", "gpu_util_pct"): 37,
        ("gpu0", "gpu_mem_ctrl_util_pct"): 12,
        ("gpu1", "gpu_mem_used_bytes"): 0,
        ("gpu1", "gpu_mem_total_bytes"): 85_899_345_920,
        ("gpu1", "gpu_util_pct"): 5,
        ("gpu1", "gpu_mem_ctrl_util_pct"): 1,
    }


def test_byoc_worker_short_form_and_no_gpu() -> None:
    byoc = {"status": "success", "agent_id": "a", "vram_usage_mb": 1536, "gpu_count": 1, "timestamp": 1}
    got = {(s.device, s.metric): s.value for s in map_gpu_check(byoc, 1.0, "t")}
    assert got == {("host", "gpu_count"): 1, ("all", "gpu_mem_used_bytes"): 1536 * 2**20}
    no_gpu = gpu_check_report(FakeNvml([]))
    assert [(s.metric, s.value) for s in map_gpu_check(no_gpu, 1.0, "t")] == [("gpu_count", 0)]
    with pytest.raises(PollError):
        map_gpu_check(["not", "an", "object"], 1.0, "t")


def test_pollers_from_config_call_gpu_check_like_the_user_does() -> None:
    data = base_config(
        target={"base_url": "http://127.0.0.1:9", "headers": {"User-Agent": "ua"}},
        capabilities=[
            {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "x"}},
        ],
        telemetry={
            "interval_s": 0.5,
            "gpu_check": "gpu-check",
            "agents": [{"url": "http://127.0.0.1:9109"}],
            "prometheus": [{"url": "http://127.0.0.1:9400/metrics", "name": "dcgm-1", "format": "dcgm"}],
        },
    )
    pollers = build_pollers(parse_config(data), {"Authorization": "Bearer s3cret"}, "http://127.0.0.1:8123")
    agent, prom, check = pollers
    assert isinstance(agent, AgentPoller) and agent.name == "agent@127.0.0.1:9109"
    assert isinstance(prom, PrometheusPoller) and (prom.name, prom.source) == ("dcgm-1", "dcgm")
    assert isinstance(check, GpuCheckPoller)
    assert check.url == "http://127.0.0.1:8123/gpu-check"  # --host wins over the config's base_url
    assert (check.method, check.body) == ("POST", b'{"agent_id":"x"}')
    assert check.headers["Authorization"] == "Bearer s3cret" and check.headers["User-Agent"] == "ua"
    assert all(p.timeout_s == 1.0 for p in pollers)  # at least 1 s even at a 0.5 s interval
