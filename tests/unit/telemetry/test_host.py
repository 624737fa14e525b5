"""Host and process samplers against the real machine (psutil needs no seam)."""

from __future__ import annotations

import os
import time
from collections import namedtuple

import psutil

from inferswarm.telemetry.host import HostSampler, ProcessSampler, _busy_fraction
from inferswarm.telemetry.samples import METRIC_UNITS

Times = namedtuple("Times", "user nice system idle iowait guest guest_nice")


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_host_sampler_reports_every_host_metric() -> None:
    sampler = HostSampler("local@h")
    spin(0.3)
    samples = sampler.collect(5.0)
    got = {(s.device, s.metric): s.value for s in samples}
    cores = psutil.cpu_count()
    assert cores is not None
    assert {d for d, m in got if m == "cpu_util_pct"} == {"host", *(f"cpu{i}" for i in range(cores))}
    # we just kept one core busy for 0.3 s, so the host cannot have been idle
    assert 100.0 / cores * 0.5 <= got[("host", "cpu_util_pct")] <= 100.0
    total = psutil.virtual_memory().total
    assert got[("host", "mem_total_bytes")] == total
    assert 0 < got[("host", "mem_used_bytes")] < total
    assert abs(got[("host", "mem_util_pct")] - 100.0 * got[("host", "mem_used_bytes")] / total) < 0.01
    for metric in ("swap_used_bytes", "net_rx_bytes", "net_tx_bytes", "load_1m"):
        assert got[("host", metric)] >= 0
    assert all(s.unit == METRIC_UNITS[s.metric] and s.source == "host" for s in samples)


def test_per_core_can_be_left_out() -> None:
    sampler = HostSampler("n", per_core=False)
    spin(0.1)
    assert {s.device for s in sampler.collect(1.0) if s.metric == "cpu_util_pct"} == {"host"}


def test_cpu_utilization_from_time_deltas() -> None:
    before = Times(10, 0, 5, 80, 5, 0, 0)
    after = Times(40, 0, 15, 120, 5, 2, 0)  # +30 user +10 system +40 idle (guest is inside user)
    assert _busy_fraction(before, after) == 0.5
    assert _busy_fraction(before, before) is None  # no time passed: no reading rather than 0 %


def test_process_sampler_sees_its_own_busy_loop() -> None:
    # The share of a core this process got while it spun, measured by the process itself: on a busy
    # machine (the test shards side by side on 2 cores) a spinning process gets well under one core
    # (45 % was seen), so the sampler is compared with what the process really got.
    sampler = ProcessSampler("n")
    wall, cpu = time.perf_counter(), time.process_time()
    spin(0.4)
    got_pct = 100.0 * (time.process_time() - cpu) / (time.perf_counter() - wall)
    got = {s.metric: s for s in sampler.collect(2.0)}
    # /proc counts CPU time in 10 ms ticks: 0.4 s of it is known to within a few percent
    assert got_pct > 10 and abs(got["process_cpu_pct"].value - got_pct) <= 10, (
        got["process_cpu_pct"],
        got_pct,
    )
    assert got["process_cpu_pct"].device == f"pid{os.getpid()}"
    assert (
        got["process_rss_bytes"].value == psutil.Process().memory_info().rss
        or got["process_rss_bytes"].value > 10 * 2**20
    )
