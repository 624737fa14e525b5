"""One telemetry sample in long form, and the metric names every source is mapped into.

A sample is (timestamp, node, source, device, metric, value, unit): the rows of `PREFIX_telemetry.csv`.
Values are plain `int`/`float` (NVML hands out ctypes values and other code numpy scalars, neither of
which msgpack, Locust's wire format, can carry), so `plain()` is applied where samples are made.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable
from typing import Any, NamedTuple

# metric name -> unit. Names carry their unit so a column of values never needs a lookup to be read.
METRIC_UNITS: dict[str, str] = {
    # GPU, per device ("gpu0", ...); per-process memory uses device "gpu0/pid1234"
    "gpu_util_pct": "%",
    "gpu_mem_ctrl_util_pct": "%",
    "gpu_mem_used_bytes": "bytes",
    "gpu_mem_total_bytes": "bytes",
    "gpu_temp_c": "C",
    "gpu_power_w": "W",
    "gpu_energy_j": "J",
    "gpu_sm_clock_mhz": "MHz",
    "gpu_throttle_reasons": "bitmask",
    "gpu_process_mem_bytes": "bytes",
    "gpu_count": "count",
    # host, device "host" (or "cpu0"... for per-core utilization)
    "cpu_util_pct": "%",
    "mem_used_bytes": "bytes",
    "mem_total_bytes": "bytes",
    "mem_util_pct": "%",
    "swap_used_bytes": "bytes",
    "net_rx_bytes": "bytes",
    "net_tx_bytes": "bytes",
    "disk_read_bytes": "bytes",
    "disk_write_bytes": "bytes",
    "load_1m": "load",
    # the sampling process itself, device "pid<N>"
    "process_cpu_pct": "%",
    "process_rss_bytes": "bytes",
    "loop_lag_ms": "ms",
    "schedule_lag_ms": "ms",
    "generator_saturated": "flag",
    "generator_behind": "flag",
    # a remote source's health: 1 when the last poll worked, 0 when it failed
    "source_up": "flag",
    "clock_offset_ms": "ms",
    # a Groundlight edge endpoint's status page (`telemetry.edge_status`): its pods, by phase
    "edge_pods_running": "count",
    "edge_pods_total": "count",
}

COLUMNS = ("timestamp", "node", "source", "device", "metric", "value", "unit")


class Sample(NamedTuple):
    timestamp: float
    node: str
    source: str
    device: str
    metric: str
    value: float
    unit: str


def plain(value: Any) -> float:
    """A ctypes/numpy/Decimal number as a plain int or float (msgpack- and CSV-safe)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)  # also turns int subclasses (NVML enums) into int
    if isinstance(value, float):
        return value
    inner = getattr(value, "value", value)  # ctypes scalars
    if hasattr(inner, "item"):  # numpy scalars
        inner = inner.item()
    return int(inner) if isinstance(inner, int) else float(inner)


def next_tick(now: float, interval_s: float) -> float:
    """The next point of the epoch-aligned sampling grid `k * interval_s` after `now`."""
    return (math.floor(now / interval_s) + 1) * interval_s


def sample(timestamp: float, node: str, source: str, device: str, metric: str, value: Any) -> Sample:
    """Build a sample of a catalogued metric (its unit comes from the catalogue)."""
    return Sample(round(timestamp, 3), node, source, device, metric, plain(value), METRIC_UNITS[metric])


def to_wire(samples: Iterable[Sample]) -> list[list[Any]]:
    return [list(s) for s in samples]


def from_wire(rows: Any) -> list[Sample]:
    """Samples from a message or JSON body; malformed rows are dropped, never trusted blindly."""
    out: list[Sample] = []
    if not isinstance(rows, list):
        return out
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != len(COLUMNS):
            continue
        ts, node, source, device, metric, value, unit = row
        if not isinstance(ts, int | float) or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(float(value)):
            continue
        out.append(Sample(float(ts), str(node), str(source), str(device), str(metric), value, str(unit)))
    return out


# The inode of Linux's initial PID namespace (PROC_PID_INIT_INO): a process outside it is in a container.
INITIAL_PID_NAMESPACE = 0xEFFFFFFC


def pid_namespace() -> int | None:
    """This process's PID namespace (its inode), or None where there is no /proc (not Linux)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def node_name(role: str) -> str:
    """`master@host`, `local@host`, `worker@host/pid` (several workers may share a host). A worker in a
    container of its own gets `worker@host/pid-<PID namespace>`: containers on the host's network share
    its hostname and often their PIDs too (two compose workers were both `worker@vm/8`, and their
    telemetry merged into one node)."""
    host = socket.gethostname()
    if role != "worker":
        return f"{role}@{host}"
    namespace = pid_namespace()
    if namespace is None or namespace == INITIAL_PID_NAMESPACE:
        return f"{role}@{host}/{os.getpid()}"
    return f"{role}@{host}/{os.getpid()}-{namespace}"
