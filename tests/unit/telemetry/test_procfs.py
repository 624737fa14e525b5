"""The /proc readers give psutil's figures: both read the same fixed files (psutil's documented
`PROCFS_PATH`), step by step, counters that go backwards included."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inferswarm.telemetry import procfs
from inferswarm.telemetry.host import HostSampler, ProcessSampler, psutil_reading

pytestmark = pytest.mark.skipif(not psutil.LINUX, reason="/proc is Linux's")

STAT = """cpu  {a} 10 300 9000 40 0 20 5 0 0
cpu0 {a} 5 150 4500 20 0 10 3 7 1
cpu1 {b} 5 150 4500 20 0 10 2 0 0
intr 123 0 0
ctxt 456
btime 1700000000
processes 789
"""
MEMINFO = """MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:    {avail} kB
Buffers:          100000 kB
Cached:          3000000 kB
SwapCached:            0 kB
Active:          5000000 kB
Inactive:        4000000 kB
Shmem:             50000 kB
Slab:             200000 kB
SReclaimable:     100000 kB
SwapTotal:       1000000 kB
SwapFree:         {swap_free} kB
HugePages_Total:       0
"""
VMSTAT = "nr_free_pages 1\npswpin 10\npswpout 20\n"
NET_HEAD = "Inter-|   Receive   |  Transmit\n face |bytes packets ...|bytes packets ...\n"  # skipped
NET = (
    NET_HEAD
    + """    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: {rx} 10 0 0 0 0 0 0 {tx} 20 0 0 0 0 0 0
veth1@if2: 700 7 0 0 0 0 0 0 800 8 0 0 0 0 0 0
"""
)
NET_ETH0_GONE = (
    NET_HEAD
    + """    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
veth1@if2: 900 7 0 0 0 0 0 0 950 8 0 0 0 0 0 0
"""
)
# kernel >= 5.5 (20 fields), >= 4.18 (18), older (14), a 15-field line and an old partition line (7)
DISKSTATS = """ 259       0 nvme0n1 100 0 {r} 50 200 0 {w} 60 0 80 110 0 0 0 0 5 7
 259       1 nvme0n1p1 90 0 {r} 40 190 0 {w} 50 0 70 90 0 0 0 0 0 0
   8       0 sda 10 0 400 5 20 0 800 6 0 9 11 0 0 0 0
   8       1 sda1 10 0 400 5 20 0 800 6 0 9 11
   7       0 loop0 3 0 24 0 0 0 0 0 0 1 0
   8      16 sdb 1 2 64 4 5 6 128 7 8 9 10
   8      17 sdb1 1 32 2 64
   8      32 7 sdc 1 16 3 4 5 32 6 7 8 9 10
"""
STORAGE = {"nvme0n1", "sda", "loop0", "sdb", "sdc"}
PID = os.getpid()
PID_STAT = (
    f"{PID} (a (weird) name) S 1 {PID} {PID} 0 -1 4194560 100 0 0 0 {{utime}} {{stime}} 3 4 20 0 3 0 "
    "12345 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 7 0 0\n"
)
PID_STATM = "{vms} {rss} 300 5 0 400 0\n"


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "net").mkdir()
        (root / str(PID)).mkdir()
        (root / "vmstat").write_text(VMSTAT)

    def host(
        self, a: int, b: int, avail: int, swap_free: int, rx: int, tx: int, r: int, w: int, net: str = NET
    ) -> None:
        (self.root / "stat").write_text(STAT.format(a=a, b=b))
        (self.root / "meminfo").write_text(MEMINFO.format(avail=avail, swap_free=swap_free))
        (self.root / "net" / "dev").write_text(net.format(rx=rx, tx=tx))
        (self.root / "diskstats").write_text(DISKSTATS.format(r=r, w=w))

    def process(self, utime: int, stime: int, rss: int) -> None:
        (self.root / str(PID) / "stat").write_text(PID_STAT.format(utime=utime, stime=stime))
        (self.root / str(PID) / "statm").write_text(PID_STATM.format(vms=rss * 3, rss=rss))


@pytest.fixture
def fake_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProc]:
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    monkeypatch.setattr(psutil._pslinux, "is_storage_device", lambda name: name in STORAGE)
    psutil.net_io_counters.cache_clear()  # type: ignore[attr-defined]
    psutil.disk_io_counters.cache_clear()  # type: ignore[attr-defined]
    yield FakeProc(tmp_path)
    psutil.net_io_counters.cache_clear()  # type: ignore[attr-defined]
    psutil.disk_io_counters.cache_clear()  # type: ignore[attr-defined]


def host_files() -> procfs.HostFiles:
    times_type = type(psutil.cpu_times(percpu=True)[0])
    return procfs.HostFiles(times_type, len(times_type._fields), storage=lambda name: name in STORAGE)


def test_the_host_figures_are_psutils_step_by_step(fake_proc: FakeProc) -> None:
    steps = [
        dict(a=1000, b=2000, avail=8000000, swap_free=900000, rx=10**6, tx=2 * 10**6, r=1000, w=3000),
        dict(a=1500, b=2100, avail=7000000, swap_free=800000, rx=2 * 10**6, tx=3 * 10**6, r=1500, w=3500),
        # counters that went back (a wrap, a device reset): carried on top, never going backwards
        dict(a=1600, b=2200, avail=7000000, swap_free=800000, rx=500, tx=600, r=10, w=20),
        dict(a=1700, b=2300, avail=7000000, swap_free=800000, rx=900, tx=700, r=30, w=40),
        # eth0 gone: what it carried goes with it
        dict(a=1800, b=2400, avail=99999999, swap_free=800000, rx=0, tx=0, r=40, w=50, net=NET_ETH0_GONE),
        dict(a=1900, b=2500, avail=7000000, swap_free=800000, rx=100, tx=200, r=50, w=60),
    ]
    fake_proc.host(**steps[0])  # type: ignore[arg-type]
    files = host_files()
    for step in steps:
        fake_proc.host(**step)  # type: ignore[arg-type]
        ours, theirs = files.read(), psutil_reading()
        assert ours == theirs, step
    files.close()


def test_the_readers_agree_on_eth0s_carried_counts(fake_proc: FakeProc) -> None:
    """The wrap above, spelled out: after going back from 2e6 to 500, eth0 reads 2e6 + 500."""
    fake_proc.host(a=1, b=1, avail=1, swap_free=1, rx=2 * 10**6, tx=3 * 10**6, r=1500, w=3500)
    files = host_files()
    files.read()
    fake_proc.host(a=1, b=1, avail=1, swap_free=1, rx=500, tx=600, r=10, w=20)
    reading = files.read()
    assert reading.nics["eth0"] == (3 * 10**6 + 600, 2 * 10**6 + 500)
    # storage devices only (partitions left out), sectors of 512 bytes: nvme0n1 (carried), sda, loop0,
    # sdb and sdc (lines of 20, 18, 14, 14 and 15 fields)
    assert reading.disk == ((1500 + 10 + 400 + 24 + 64 + 16) * 512, (3500 + 20 + 800 + 0 + 128 + 32) * 512)
    assert reading.mem_total == 16000000 * 1024 and reading.swap_used == 999999 * 1024
    files.close()


def test_without_memavailable_psutil_estimates_it(fake_proc: FakeProc) -> None:
    fake_proc.host(a=1, b=1, avail=0, swap_free=1, rx=1, tx=1, r=1, w=1)
    assert host_files().read() == psutil_reading()  # MemAvailable 0: psutil's own estimate


def test_the_process_figures_are_psutils(fake_proc: FakeProc, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 101.5, 103.0, 103.0])
    monkeypatch.setattr(psutil, "_timer", lambda: next(clock))
    ticks = iter([100.0, 101.5, 103.0, 103.0])
    fake_proc.process(utime=1000, stime=200, rss=5000)
    process = psutil.Process(PID)
    ours = procfs.ProcessFiles(PID, clock=lambda: next(ticks))
    assert ours.cpu_percent() == process.cpu_percent() == 0.0  # the first call primes
    for utime, stime, rss in ((1100, 230, 6000), (1110, 231, 7000), (1110, 231, 7000)):
        fake_proc.process(utime=utime, stime=stime, rss=rss)
        assert ours.cpu_percent() == process.cpu_percent()
        assert ours.rss() == process.memory_info().rss == rss * procfs.PAGE_SIZE
    ours.close()


def test_a_file_longer_than_one_read_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procfs, "READ_BLOCK", 7)
    path = tmp_path / "f"
    path.write_bytes(b"0123456789" * 5)
    f = procfs.ProcFile(str(path))
    assert f.read() == b"0123456789" * 5
    path.write_bytes(b"short")  # read again from the start each time
    assert f.read() == b"short"
    f.close()


def test_the_real_proc_gives_psutils_figures() -> None:
    """On this machine: the same layout and numbers psutil reads (the figures move between two reads,
    so the stable ones are compared exactly and the moving ones loosely)."""
    files = host_files_real()
    ours, theirs = files.read(), psutil_reading()
    assert [type(c) for c in ours.cpu] == [type(c) for c in theirs.cpu]
    assert len(ours.cpu) == len(theirs.cpu) == len(psutil.cpu_times(percpu=True))
    assert ours.mem_total == theirs.mem_total
    assert set(ours.nics) == set(theirs.nics)
    assert (ours.disk is None) == (theirs.disk is None)
    files.close()


def host_files_real() -> procfs.HostFiles:
    times_type = type(psutil.cpu_times(percpu=True)[0])
    return procfs.HostFiles(times_type, len(times_type._fields))


def test_samplers_fall_back_to_psutil_when_proc_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    host, process = HostSampler("n"), ProcessSampler("n")
    assert host._files is not None and process._files is not None  # on Linux, /proc is read directly

    def broken() -> bytes:
        raise OSError("gone")

    monkeypatch.setattr(host._files._meminfo, "read", broken)
    monkeypatch.setattr(process._files._stat, "read", broken)
    time.sleep(0.1)  # CPU time to report
    metrics = {s.metric for s in host.collect(1.0)} | {s.metric for s in process.collect(1.0)}
    assert {"mem_total_bytes", "cpu_util_pct", "process_cpu_pct", "process_rss_bytes"} <= metrics
    assert host._files is None and process._files is None  # psutil from now on
    assert {s.metric for s in host.collect(2.0)} >= {"mem_total_bytes", "net_rx_bytes"}
