"""A slow NVML must not stall the gevent loop: sampling runs in the native thread pool, and the
loop-lag probe proves it (and proves it would see the stall otherwise)."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
from gevent import monkey

from inferswarm.locust.sampling import GreenSampling
from inferswarm.telemetry.sampling import LocalSampling
from tests.fake_nvml import H100, FakeNvml

# NVML's remembered state (the seam caches success or failure) is reset around every test
pytestmark = pytest.mark.usefixtures("fresh_nvml")

real_sleep = monkey.get_original("time", "sleep")  # blocks the calling OS thread, like a wedged driver
STALL_S = 0.3


def slow_power() -> Any:
    real_sleep(STALL_S)
    return 250_000


def lag_during_collect(in_thread: bool) -> tuple[float, list[Any]]:
    sampling = GreenSampling(LocalSampling("n", nvml_module=FakeNvml([{**H100, "power_mw": slow_power}])))
    sampling.probe.period_s = 0.01
    sampling.probe.start()
    gevent.sleep(0.05)
    sampling.probe.read_ms()
    samples = sampling.collect(in_thread=in_thread)
    gevent.sleep(0.05)  # let the probe wake up and record what it saw
    sampling.probe.stop()
    lags = [s.value for s in samples if s.metric == "loop_lag_ms"]
    return max([*lags, sampling.probe.read_ms()]), samples


def test_slow_nvml_in_the_thread_pool_leaves_the_loop_free() -> None:
    lag_ms, samples = lag_during_collect(in_thread=True)
    assert lag_ms < 100, lag_ms  # the 300 ms NVML stall happened off the loop
    power = [s.value for s in samples if s.metric == "gpu_power_w"]
    assert power == [250.0]  # and the reading still arrived
    assert {"cpu_util_pct", "process_cpu_pct", "loop_lag_ms"} <= {s.metric for s in samples}


def test_the_probe_sees_a_stall_on_the_loop() -> None:
    lag_ms, _ = lag_during_collect(in_thread=False)
    assert lag_ms >= STALL_S * 1000 * 0.8, lag_ms


def test_loop_lag_is_one_sample_of_this_process_at_the_given_time() -> None:
    local = LocalSampling("n", gpu=False)
    sampling = GreenSampling(local)
    assert sampling.gpu_note == "disabled in the config"
    samples = sampling.collect(now=1234.5)
    [lag] = [s for s in samples if s.metric == "loop_lag_ms"]
    assert lag.timestamp == 1234.5 and lag.node == "n" and lag.value == 0.0  # the probe never ran
    assert local.process is not None and lag.device == local.process.device
    assert {s.timestamp for s in samples} == {1234.5}


def test_no_loop_lag_without_the_process_samplers() -> None:
    sampling = GreenSampling(LocalSampling("agent", gpu=False, process=False))
    metrics = {s.metric for s in sampling.collect(now=1.0)}
    assert "loop_lag_ms" not in metrics and "process_cpu_pct" not in metrics
    assert "mem_total_bytes" in metrics  # the host is still sampled


def test_an_open_loop_process_reports_its_schedule_lag() -> None:
    readings = iter([12.5, 0.0])
    sampling = GreenSampling(LocalSampling("n", gpu=False), schedule_lag_ms=lambda: next(readings))
    for expected in (12.5, 0.0):  # the worst since the previous sample, then reset
        [lag] = [s for s in sampling.collect(now=5.0) if s.metric == "schedule_lag_ms"]
        assert (lag.value, lag.unit, lag.node) == (expected, "ms", "n")
    assert "schedule_lag_ms" not in {s.metric for s in GreenSampling(LocalSampling("n", gpu=False)).collect()}
