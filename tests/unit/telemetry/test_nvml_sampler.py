"""GPU sampling against a fake NVML: several devices, unsupported metrics, failures mid-run, no NVML."""

from __future__ import annotations

from typing import Any

import pytest

from inferswarm import nvml
from inferswarm.telemetry.nvml_sampler import GpuSampler
from inferswarm.telemetry.samples import METRIC_UNITS, Sample
from tests.fake_nvml import H100, FakeNvml, gpu_lost

# NVML's remembered state (the seam caches success or failure) is reset around every test
pytestmark = pytest.mark.usefixtures("fresh_nvml")


def by_key(samples: list[Sample]) -> dict[tuple[str, str], Sample]:
    return {(s.device, s.metric): s for s in samples}


def test_every_metric_of_every_device_in_catalogue_units() -> None:
    fake = FakeNvml([H100, {**H100, "util": (99, 80), "procs": []}])
    sampler = GpuSampler("local@h", fake)
    assert sampler.available and sampler.device_count == 2
    got = by_key(sampler.collect(1000.0))
    assert got[("host", "gpu_count")].value == 2
    expected = {
        "gpu_util_pct": 37,
        "gpu_mem_ctrl_util_pct": 12,
        "gpu_mem_used_bytes": 2_147_483_648,
        "gpu_mem_total_bytes": 85_899_345_920,
        "gpu_temp_c": 41,
        "gpu_power_w": 312.5,  # from mW
        "gpu_energy_j": 9_876_543.21,  # from mJ
        "gpu_sm_clock_mhz": 1980,
        "gpu_throttle_reasons": 4,
    }
    for metric, value in expected.items():
        s = got[("gpu0", metric)]
        assert s.value == value and s.unit == METRIC_UNITS[metric], metric
        assert type(s.value) in (int, float), f"{metric} is {type(s.value)}, not plain"
        assert (s.timestamp, s.node, s.source) == (1000.0, "local@h", "nvml")
    assert got[("gpu1", "gpu_util_pct")].value == 99
    # per-process memory where NVML knows it; the process it cannot measure is left out, not zeroed
    assert got[("gpu0/pid4242", "gpu_process_mem_bytes")].value == 1_073_741_824
    assert not any(dev == "gpu0/pid4343" for dev, _ in got)
    assert not any(dev.startswith("gpu1/") for dev, _ in got)


def test_unsupported_metric_is_asked_once_then_skipped() -> None:
    fake = FakeNvml([{k: v for k, v in H100.items() if k not in ("energy_mj", "throttle")}])
    sampler = GpuSampler("n", fake)
    for t in range(3):
        metrics = {s.metric for s in sampler.collect(float(t))}
        assert "gpu_energy_j" not in metrics and "gpu_throttle_reasons" not in metrics
        assert "gpu_power_w" in metrics
    assert fake.reads[(0, "energy_mj")] == 1 and fake.reads[(0, "throttle")] == 1
    assert fake.reads[(0, "power_mw")] == 3


def test_errors_mid_run_skip_that_reading_and_sampling_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    state = {"lost": False}

    def power() -> Any:
        return gpu_lost() if state["lost"] else 250_000

    fake = FakeNvml([{**H100, "power_mw": power}, H100])
    sampler = GpuSampler("n", fake)
    assert by_key(sampler.collect(1.0))[("gpu0", "gpu_power_w")].value == 250.0
    state["lost"] = True
    for t in (2.0, 3.0):
        got = by_key(sampler.collect(t))
        assert ("gpu0", "gpu_power_w") not in got
        assert got[("gpu0", "gpu_util_pct")].value == 37 and got[("gpu1", "gpu_power_w")].value == 312.5
    # logged once, not once per sample
    assert sum("GPU is lost" in r.getMessage() for r in caplog.records) == 1
    state["lost"] = False  # a transient error is retried, not given up on like "not supported"
    assert by_key(sampler.collect(4.0))[("gpu0", "gpu_power_w")].value == 250.0


def test_device_failing_entirely_leaves_the_others() -> None:
    broken = {key: gpu_lost() for key in H100}
    sampler = GpuSampler("n", FakeNvml([broken, H100]))
    devices = {s.device for s in sampler.collect(1.0)}
    assert "gpu1" in devices and "gpu0" not in devices


def test_no_nvml_or_no_gpu_means_empty_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise OSError("NVML Shared Library Not Found")

    monkeypatch.setattr(nvml, "_load_module", missing)
    sampler = GpuSampler("n")
    assert not sampler.available and sampler.collect(1.0) == []
    assert "NVML Shared Library Not Found" in sampler.reason

    empty = GpuSampler("n", FakeNvml([]))
    assert not empty.available and empty.reason == "NVML found no GPU devices" and empty.collect(1.0) == []
