"""Host samples (psutil's figures) and the sampling process's own CPU and memory.

CPU utilization is computed from the change in psutil's CPU times between two samples, so the first
call only primes it; counters (network, disk) are cumulative bytes, rates are for the report to take.
On Linux the figures are read from /proc files kept open (`inferswarm.telemetry.procfs`: psutil's values
for a fifth of its time and a tenth of its system calls); anywhere else, or after anything unexpected
there, from psutil itself.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psutil

from inferswarm.telemetry import procfs
from inferswarm.telemetry.samples import Sample, sample

log = logging.getLogger("inferswarm.telemetry")


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


def psutil_reading() -> procfs.HostReading:
    """What `HostSampler` reports, from psutil (where /proc cannot be read directly)."""
    mem = psutil.virtual_memory()
    nics = psutil.net_io_counters(pernic=True)
    disk = psutil.disk_io_counters()
    return procfs.HostReading(
        cpu=psutil.cpu_times(percpu=True),
        mem_total=mem.total,
        mem_available=mem.available,
        swap_used=psutil.swap_memory().used,
        nics={n: (c.bytes_sent, c.bytes_recv) for n, c in nics.items()},
        disk=None if disk is None else (disk.read_bytes, disk.write_bytes),  # None in some containers
    )


def _fallback(what: str, exc: Exception) -> None:
    log.info("telemetry: reading %s through psutil from now on (%s: %s)", what, type(exc).__name__, exc)


class HostSampler:
    """CPU (total and per core), memory, swap, network and disk byte counters, 1-minute load."""

    source = "host"

    def __init__(self, node: str, per_core: bool = True) -> None:
        self.node = node
        self.per_core = per_core
        self._cpu: list[Any] = psutil.cpu_times(percpu=True)
        self._files: procfs.HostFiles | None = None
        if procfs.is_linux() and self._cpu:
            times_type = type(self._cpu[0])
            try:
                self._files = procfs.HostFiles(times_type, len(times_type._fields))
                self._files.read()  # the counters' first values, as psutil's first call takes them
            except Exception as exc:
                _fallback("the host", exc)
                self._close()

    def _read(self) -> procfs.HostReading:
        if self._files is not None:
            try:
                return self._files.read()
            except Exception as exc:
                _fallback("the host", exc)
                self._close()
        return psutil_reading()

    def _close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def collect(self, now: float) -> list[Sample]:
        def s(device: str, metric: str, value: Any) -> Sample:
            return sample(now, self.node, self.source, device, metric, value)

        out: list[Sample] = []
        reading = self._read()
        cpu = reading.cpu
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
        total = reading.mem_total
        used = total - reading.mem_available  # what node_exporter users compute, so sources agree
        out += [
            s("host", "mem_used_bytes", used),
            s("host", "mem_total_bytes", total),
            s("host", "mem_util_pct", round(100.0 * used / total, 2) if total else 0.0),
            s("host", "swap_used_bytes", reading.swap_used),
        ]
        nics = reading.nics
        # Loopback is not network: a demo on one machine would otherwise count its load twice.
        out += [
            s("host", "net_rx_bytes", sum(c[1] for n, c in nics.items() if _is_network(n))),
            s("host", "net_tx_bytes", sum(c[0] for n, c in nics.items() if _is_network(n))),
        ]
        if reading.disk is not None:  # None in some containers
            out += [
                s("host", "disk_read_bytes", reading.disk[0]),
                s("host", "disk_write_bytes", reading.disk[1]),
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
        self._files: procfs.ProcessFiles | None = None
        if procfs.is_linux():
            try:
                self._files = procfs.ProcessFiles(self.process.pid)
                self._files.cpu_percent()  # prime: the first reading is always 0
                self._files.rss()
                return
            except Exception as exc:
                _fallback("this process", exc)
                self._close()
        self.process.cpu_percent()  # prime: the first reading is always 0

    def _close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None

    def _read(self) -> tuple[float, int]:
        if self._files is not None:
            try:
                return self._files.cpu_percent(), self._files.rss()
            except Exception as exc:
                _fallback("this process", exc)
                self._close()
                self.process.cpu_percent()  # primed again: this reading is lost, as a first one is
                return 0.0, self.process.memory_info().rss
        with self.process.oneshot():
            return self.process.cpu_percent(), self.process.memory_info().rss

    def collect(self, now: float) -> list[Sample]:
        cpu, rss = self._read()
        return [
            sample(now, self.node, self.source, self.device, "process_cpu_pct", round(cpu, 2)),
            sample(now, self.node, self.source, self.device, "process_rss_bytes", rss),
        ]
