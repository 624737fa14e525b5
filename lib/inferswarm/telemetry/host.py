"""Host samples (psutil) and the sampling process's own CPU and memory.

CPU utilization is computed from the change in psutil's CPU times between two samples, so the first
call only primes it; counters (network, disk) are cumulative bytes, rates are for the report to take.
"""

from __future__ import annotations

import os
from typing import Any

import psutil

from inferswarm.telemetry.samples import Sample, sample


def _total(times: Any) -> float:
    # On Linux guest time is already counted in user/nice; psutil's cpu_percent subtracts it too.
    return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


MIN_CPU_SECONDS = 0.02  # two clock ticks: less than that between samples is noise, not a reading


def _busy_fraction(before: Any, after: Any) -> float | None:
    total = _total(after) - _total(before)
    if total < MIN_CPU_SECONDS:
        return None
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return float(max(0.0, min(1.0, 1.0 - idle / total)))


def _is_network(nic: str) -> bool:
    return not nic.startswith("lo")


class HostSampler:
    """CPU (total and per core), memory, swap, network and disk byte counters, 1-minute load."""

    source = "host"

    def __init__(self, node: str, per_core: bool = True) -> None:
        self.node = node
        self.per_core = per_core
        self._cpu: list[Any] = psutil.cpu_times(percpu=True)

    def collect(self, now: float) -> list[Sample]:
        def s(device: str, metric: str, value: Any) -> Sample:
            return sample(now, self.node, self.source, device, metric, value)

        out: list[Sample] = []
        cpu = psutil.cpu_times(percpu=True)
        busy = [_busy_fraction(a, b) for a, b in zip(self._cpu, cpu, strict=False)]
        self._cpu = cpu
        known = [b for b in busy if b is not None]
        if known:
            out.append(s("host", "cpu_util_pct", round(100.0 * sum(known) / len(known), 2)))
            if self.per_core:
                out += [
                    s(f"cpu{i}", "cpu_util_pct", round(100.0 * b, 2))
                    for i, b in enumerate(busy)
                    if b is not None
                ]
        mem = psutil.virtual_memory()
        used = mem.total - mem.available  # what node_exporter users compute, so sources agree
        out += [
            s("host", "mem_used_bytes", used),
            s("host", "mem_total_bytes", mem.total),
            s("host", "mem_util_pct", round(100.0 * used / mem.total, 2) if mem.total else 0.0),
            s("host", "swap_used_bytes", psutil.swap_memory().used),
        ]
        nics = psutil.net_io_counters(pernic=True)
        # Loopback is not network: a demo on one machine would otherwise count its load twice.
        out += [
            s("host", "net_rx_bytes", sum(c.bytes_recv for n, c in nics.items() if _is_network(n))),
            s("host", "net_tx_bytes", sum(c.bytes_sent for n, c in nics.items() if _is_network(n))),
        ]
        disk = psutil.disk_io_counters()
        if disk is not None:  # None in some containers
            out += [
                s("host", "disk_read_bytes", disk.read_bytes),
                s("host", "disk_write_bytes", disk.write_bytes),
            ]
        if hasattr(os, "getloadavg"):
            out.append(s("host", "load_1m", round(os.getloadavg()[0], 2)))
        return out


class ProcessSampler:
    """This process: CPU (% of one core, like Locust's own check) and resident memory."""

    source = "process"

    def __init__(self, node: str, pid: int | None = None) -> None:
        self.node = node
        self.process = psutil.Process(pid)
        self.device = f"pid{self.process.pid}"
        self.process.cpu_percent()  # prime: the first reading is always 0

    def collect(self, now: float) -> list[Sample]:
        with self.process.oneshot():
            cpu = self.process.cpu_percent()
            rss = self.process.memory_info().rss
        return [
            sample(now, self.node, self.source, self.device, "process_cpu_pct", round(cpu, 2)),
            sample(now, self.node, self.source, self.device, "process_rss_bytes", rss),
        ]
