"""The telemetry CSV, read for a report: only the metrics a report uses, as compact numpy arrays.

A day-long run of a GPU fleet writes tens of millions of long-form rows. pyarrow parses the file a
piece at a time (on every core), each piece is filtered at once, and what is kept is stored per metric
as (timestamp, value, series id) arrays sorted by time, so any window is two binary searches away.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

NUMERIC_NA = ["N/A", "n/a", "nan", ""]
# The telemetry metrics a report reads (its GPU figures and over-time panels); other rows are skipped
# while the file is parsed.
REPORT_TELEMETRY_METRICS = (
    "gpu_util_pct",
    "gpu_mem_used_bytes",
    "gpu_mem_total_bytes",
    "gpu_energy_j",
    "cpu_util_pct",
    "mem_util_pct",
    "process_cpu_pct",
)
SEGMENT_BYTES = 64 << 20
_GPU_DEVICE = re.compile(r"^(gpu\d+|all)$")
_CATEGORICAL = ["node", "source", "device", "metric"]


@dataclass
class Series:
    """One metric's samples, sorted by time; `sid` indexes `Telemetry.series`."""

    ts: np.ndarray
    value: np.ndarray
    sid: np.ndarray

    def window(self, start: float, end: float) -> Series:
        """Samples in (start, end]."""
        lo, hi = np.searchsorted(self.ts, [start, end], side="right")
        return Series(self.ts[lo:hi], self.value[lo:hi], self.sid[lo:hi])

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Telemetry:
    series: list[tuple[str, str, str]] = field(default_factory=list)  # sid -> (node, source, device)
    metrics: dict[str, Series] = field(default_factory=dict)
    skipped_rows: int = 0

    def get(self, metric: str) -> Series | None:
        found = self.metrics.get(metric)
        return found if found is not None and len(found) else None

    def is_gpu(self, sids: np.ndarray) -> np.ndarray:
        flags = np.array([bool(_GPU_DEVICE.match(device)) for _, _, device in self.series] or [False])
        selected: np.ndarray = flags[sids]
        return selected

    def is_host(self, sids: np.ndarray) -> np.ndarray:
        flags = np.array([device == "host" for _, _, device in self.series] or [False])
        selected: np.ndarray = flags[sids]
        return selected


def _segments(path: Path) -> Iterator[bytes]:
    """The file in pieces of about SEGMENT_BYTES, each ending at a line end and starting with the header."""
    with path.open("rb") as handle:
        header = handle.readline()
        while True:
            chunk = handle.read(SEGMENT_BYTES)
            if not chunk:
                return
            yield header + chunk + handle.readline()  # finish the line the piece stopped in


def read_telemetry(path: Path) -> Telemetry:
    """Raises OSError or pyarrow.ArrowInvalid on an unreadable file; returns empty Telemetry for no rows."""
    out = Telemetry()
    keys: dict[tuple[str, str, str], int] = {}
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
        m: [] for m in REPORT_TELEMETRY_METRICS
    }
    wanted = pa.array(REPORT_TELEMETRY_METRICS)

    def bad_row(_: Any) -> str:
        out.skipped_rows += 1
        return "skip"

    convert = pacsv.ConvertOptions(
        include_columns=["timestamp", *_CATEGORICAL, "value"],
        column_types={
            "timestamp": pa.float64(),
            "value": pa.float64(),
            **{c: pa.dictionary(pa.int32(), pa.string()) for c in _CATEGORICAL},
        },
        null_values=NUMERIC_NA,
        strings_can_be_null=False,
    )
    for segment in _segments(path):
        table = pacsv.read_csv(
            pa.BufferReader(segment),
            read_options=pacsv.ReadOptions(block_size=4 << 20),
            parse_options=pacsv.ParseOptions(invalid_row_handler=bad_row),
            convert_options=convert,
        )
        for batch in table.to_batches():
            metric = batch.column("metric")
            keep = pc.take(pc.is_in(metric.dictionary, value_set=wanted), metric.indices)
            batch = batch.filter(keep).drop_null()
            if not batch.num_rows:
                continue
            # everything below works on integer codes: a piece has millions of rows
            metric = batch.column("metric")
            metric_lut = np.array(
                [
                    REPORT_TELEMETRY_METRICS.index(str(m)) if str(m) in REPORT_TELEMETRY_METRICS else -1
                    for m in metric.dictionary
                ]
            )
            mid = metric_lut[np.asarray(metric.indices)]
            # (node, source, device) -> a global series id, through this piece's own dictionaries
            node, source, device = (batch.column(c) for c in ("node", "source", "device"))
            sizes = (len(node.dictionary), len(source.dictionary), len(device.dictionary))
            code = (np.asarray(node.indices, dtype=np.int64) * sizes[1] + np.asarray(source.indices)) * sizes[
                2
            ] + np.asarray(device.indices)
            lut = np.full(sizes[0] * sizes[1] * sizes[2], -1, dtype=np.int32)
            for c in np.nonzero(np.bincount(code, minlength=len(lut)))[0]:
                n, rest = divmod(int(c), sizes[1] * sizes[2])
                s_, d = divmod(rest, sizes[2])
                key = (str(node.dictionary[n]), str(source.dictionary[s_]), str(device.dictionary[d]))
                lut[c] = keys.setdefault(key, len(keys))
            sid = lut[code]
            # per-core CPU rows are not used by the report: keep host-wide CPU only
            per_core = np.array([d.startswith("cpu") for d in device.dictionary.to_pylist()] or [False])
            mid[per_core[np.asarray(device.indices)]] = -1
            ts = np.asarray(batch.column("timestamp"))
            value = np.asarray(batch.column("value"))
            for m in np.nonzero(np.bincount(mid[mid >= 0], minlength=len(REPORT_TELEMETRY_METRICS)))[0]:
                mask = mid == m
                parts[REPORT_TELEMETRY_METRICS[int(m)]].append((ts[mask], value[mask], sid[mask]))
    out.series = [key for key, _ in sorted(keys.items(), key=lambda item: item[1])]
    for name, chunks in parts.items():
        if not chunks:
            continue
        ts = np.concatenate([c[0] for c in chunks])
        order = np.argsort(ts, kind="stable")  # nearly sorted already: cheap
        out.metrics[name] = Series(
            ts[order],
            np.concatenate([c[1] for c in chunks])[order],
            np.concatenate([c[2] for c in chunks])[order],
        )
    return out
