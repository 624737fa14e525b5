"""Linux /proc readings for the host and process samplers: psutil's values at a fraction of its cost.

psutil opens, reads and closes a file per call and parses more than the samplers report (all of
/proc/vmstat for the swap figure, an access() per disk to leave partitions out, ...): about 0.5 ms and
100 system calls per sample set. Inside Locust the sampling thread releases and takes back the GIL around
every one of those calls, each time stopping the users' thread. Here each file is opened once and read
whole with `pread` from offset 0 on every sample (procfs makes the file anew for a read from the start,
which top and vmstat rely on), and only the fields the samplers report are parsed, line for line as
psutil parses them, so the values are psutil's (tests/unit/telemetry/test_procfs.py compares both on
the same files). Counters are kept from going backwards exactly like psutil's `nowrap`.

Anything unexpected raises; the samplers then go back to psutil for good (`inferswarm.telemetry.host`).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
DISK_SECTOR_SIZE = 512
READ_BLOCK = 64 * 1024
"""Bytes asked for per read. A multi-record file (net/dev, diskstats) comes a kernel page or so per read
whatever is asked for, so a file is read until a read returns nothing."""


def procfs_path() -> str:
    """psutil's /proc (its documented `PROCFS_PATH` setting, which tests point at fixed files)."""
    return str(psutil.PROCFS_PATH)


def is_linux() -> bool:
    return psutil.LINUX


class ProcFile:
    """A /proc file kept open; `read()` gives its whole current content."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._fd = fd
        self._closer = weakref.finalize(self, os.close, fd)

    def read(self) -> bytes:
        first = os.pread(self._fd, READ_BLOCK, 0)
        if not first:
            return first
        pieces = [first]
        offset = len(first)
        while True:
            piece = os.pread(self._fd, READ_BLOCK, offset)
            if not piece:
                return first if len(pieces) == 1 else b"".join(pieces)
            pieces.append(piece)
            offset += len(piece)

    def close(self) -> None:
        self._closer()


Counters = tuple[int, ...]


class NoWrap:
    """psutil's `nowrap` for one function's per-name counters: a counter that went down wrapped (or its
    device restarted), so what it had counted is carried on top of it; a name that disappears drops
    what it carried. The first call returns its input unchanged."""

    def __init__(self) -> None:
        self._last: Mapping[str, Counters] | None = None
        self._carried: dict[str, list[int]] = {}

    def __call__(self, counters: Mapping[str, Counters]) -> dict[str, Counters]:
        last = self._last
        self._last = counters
        if last is None:
            return dict(counters)
        for gone in last.keys() - counters.keys():
            self._carried.pop(gone, None)
        out: dict[str, Counters] = {}
        for name, values in counters.items():
            before = last.get(name)
            if before is None:
                out[name] = values
                continue
            carried = self._carried.get(name)
            for i, (value, old) in enumerate(zip(values, before, strict=True)):
                if value < old:
                    if carried is None:
                        carried = self._carried[name] = [0] * len(values)
                    carried[i] += old
            out[name] = (
                values if carried is None else tuple(v + c for v, c in zip(values, carried, strict=True))
            )
        return out


class HostReading(NamedTuple):
    """What `HostSampler` reports, from one read of each file."""

    cpu: list[Any]
    """psutil's per-CPU times (its own namedtuple type)."""
    mem_total: int
    mem_available: int
    swap_used: int
    nics: dict[str, Counters]
    """interface -> (bytes sent, bytes received), psutil's nowrap applied."""
    disk: tuple[int, int] | None
    """(read bytes, written bytes) summed over the storage devices; None when there is none."""


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines()


def parse_per_cpu(data: bytes, times_type: Callable[..., Any], fields: int) -> list[Any]:
    """psutil's `per_cpu_times`: every `cpuN` line after the first (all-CPU) line, in seconds."""
    out = []
    for line in _lines(data)[1:]:
        if line.startswith(b"cpu"):
            values = line.split()
            out.append(times_type(*[float(x) / CLOCK_TICKS for x in values[1 : fields + 1]]))
    return out


MEMINFO_FIELDS = (b"MemTotal:", b"MemFree:", b"MemAvailable:", b"SwapTotal:", b"SwapFree:")


def parse_meminfo(data: bytes) -> dict[bytes, int]:
    """The /proc/meminfo lines psutil's total, available and swap figures come from, in bytes."""
    mems = {}
    for line in _lines(data):
        if line.startswith(MEMINFO_FIELDS):
            fields = line.split()
            mems[fields[0]] = int(fields[1]) * 1024
    return mems


def memory(mems: dict[bytes, int]) -> tuple[int, int] | None:
    """psutil's `virtual_memory()` total and available; None where psutil would estimate `available`
    itself (kernels before 3.14), which is left to psutil."""
    total = mems[b"MemTotal:"]
    free = mems[b"MemFree:"]
    avail = mems.get(b"MemAvailable:")
    if not avail:
        return None
    if avail < 0:
        avail = 0
    elif avail > total:
        avail = free
    return total, avail


def swap_used(mems: dict[bytes, int]) -> int | None:
    """psutil's `swap_memory().used`; None where psutil asks sysinfo() instead."""
    if b"SwapTotal:" not in mems or b"SwapFree:" not in mems:
        return None
    return mems[b"SwapTotal:"] - mems[b"SwapFree:"]


def parse_net_dev(data: bytes) -> dict[str, Counters]:
    """psutil's `net_io_counters(pernic=True)` raw: interface -> (bytes sent, bytes received)."""
    out: dict[str, Counters] = {}
    for line in _lines(data)[2:]:
        colon = line.rfind(b":")
        fields = line[colon + 1 :].split()
        if colon <= 0 or len(fields) != 16:
            raise ValueError(f"unexpected /proc/net/dev line {line!r}")
        out[os.fsdecode(line[:colon].strip())] = (int(fields[8]), int(fields[0]))
    return out


def parse_diskstats(data: bytes, storage: Callable[[bytes], str | None]) -> dict[str, Counters]:
    """psutil's `disk_io_counters()` raw: storage device -> (read bytes, written bytes). `storage`
    names a device's storage device (None for a partition)."""
    out: dict[str, Counters] = {}
    for line in _lines(data):
        fields = line.split()
        flen = len(fields)
        if flen == 15:
            raw_name, rsectors, wsectors = fields[3], fields[5], fields[9]
        elif flen == 14 or flen >= 18:
            raw_name, rsectors, wsectors = fields[2], fields[5], fields[9]
        elif flen == 7:
            raw_name, rsectors, wsectors = fields[2], fields[4], fields[6]
        else:
            raise ValueError(f"unexpected /proc/diskstats line {line!r}")
        name = storage(raw_name)
        if name is not None:
            out[name] = (int(rsectors) * DISK_SECTOR_SIZE, int(wsectors) * DISK_SECTOR_SIZE)
    return out


def is_storage_device(name: str) -> bool:
    """psutil's test: a whole device (sda, nvme0n1, loop1) rather than a partition (sda1)."""
    return os.access(f"/sys/block/{name.replace('/', '!')}", os.F_OK)


class StorageDevices:
    """`is_storage_device` for /proc/diskstats names, asked once per name for as long as the name stays
    listed (a partition does not become a disk; a name that leaves and comes back is asked again)."""

    def __init__(self, check: Callable[[str], bool] = is_storage_device) -> None:
        self._check = check
        self._known: dict[bytes, str | None] = {}
        self._seen: set[bytes] = set()

    def __call__(self, raw_name: bytes) -> str | None:
        """The device's name when it is a storage device, else None."""
        self._seen.add(raw_name)
        try:
            return self._known[raw_name]
        except KeyError:
            name = os.fsdecode(raw_name)
            known = self._known[raw_name] = name if self._check(name) else None
            return known

    def forget_unseen(self) -> None:
        """After a whole file: names not listed this time are asked again if they come back."""
        for name in self._known.keys() - self._seen:
            del self._known[name]
        self._seen = set()


def _summed(counters: Iterable[Counters]) -> tuple[int, int] | None:
    values = list(counters)
    if not values:
        return None
    return sum(v[0] for v in values), sum(v[1] for v in values)


class HostFiles:
    """The host's /proc files, open for the sampler's lifetime."""

    def __init__(
        self,
        cpu_times_type: Callable[..., Any],
        cpu_fields: int,
        root: str | None = None,
        storage: Callable[[str], bool] = is_storage_device,
    ) -> None:
        root = procfs_path() if root is None else root
        self._stat = ProcFile(f"{root}/stat")
        self._meminfo = ProcFile(f"{root}/meminfo")
        self._net = ProcFile(f"{root}/net/dev")
        self._disk = ProcFile(f"{root}/diskstats")
        self._cpu_times_type = cpu_times_type
        self._cpu_fields = cpu_fields
        self._net_nowrap = NoWrap()
        self._disk_nowrap = NoWrap()
        self.storage = StorageDevices(storage)

    def read(self) -> HostReading:
        cpu = parse_per_cpu(self._stat.read(), self._cpu_times_type, self._cpu_fields)
        if not cpu:
            raise ValueError("no per-CPU lines in /proc/stat")
        mems = parse_meminfo(self._meminfo.read())
        mem = memory(mems)
        if mem is None:
            vm = psutil.virtual_memory()
            mem = (vm.total, vm.available)
        swap = swap_used(mems)
        if swap is None:
            swap = psutil.swap_memory().used
        nics = self._net_nowrap(parse_net_dev(self._net.read()))
        disks = parse_diskstats(self._disk.read(), self.storage)
        self.storage.forget_unseen()
        disk = _summed(self._disk_nowrap(disks).values())
        return HostReading(cpu, mem[0], mem[1], swap, nics, disk)

    def close(self) -> None:
        for f in (self._stat, self._meminfo, self._net, self._disk):
            f.close()


class ProcessFiles:
    """One process's stat and statm files: its CPU times and resident memory, read as psutil reads
    them, and its CPU percent computed as `psutil.Process.cpu_percent()` computes it."""

    def __init__(
        self, pid: int, root: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        root = procfs_path() if root is None else root
        self._clock = clock
        self._stat = ProcFile(f"{root}/{pid}/stat")
        self._statm = ProcFile(f"{root}/{pid}/statm")
        self._last: tuple[float, float, float] | None = None
        """(monotonic s * CPUs, user s, system s) at the last reading."""

    def cpu_times(self) -> tuple[float, float]:
        data = self._stat.read()
        fields = data[data.rfind(b")") + 2 :].split()
        return float(fields[11]) / CLOCK_TICKS, float(fields[12]) / CLOCK_TICKS

    def cpu_percent(self) -> float:
        """`psutil.Process.cpu_percent()`: % of one CPU since the last call (0.0 on the first)."""
        num_cpus = psutil.cpu_count() or 1
        st2 = self._clock() * num_cpus
        user, system = self.cpu_times()
        last = self._last
        self._last = (st2, user, system)
        if last is None:
            return 0.0
        st1, user1, system1 = last
        delta_proc = (user - user1) + (system - system1)
        delta_time = st2 - st1
        try:
            overall_cpus_percent = (delta_proc / delta_time) * 100
        except ZeroDivisionError:
            return 0.0
        return round(overall_cpus_percent * num_cpus, 1)

    def rss(self) -> int:
        return int(self._statm.read().split()[1]) * PAGE_SIZE

    def close(self) -> None:
        self._stat.close()
        self._statm.close()
