"""The request log in the report: exact latency percentiles, latency from the intended start, schedule
lag and goodput, over any window and capability.

Percentiles are numpy's (linear interpolation between the two nearest requests) over the requests
themselves, not Locust's histogram buckets (rounded to about 2 significant digits). A request belongs to
a window by when it ended (`send_epoch_s + response_ms / 1000`), as Locust counts it in a step's
statistics when it fires its event.

Latency from the intended start = (send_epoch_s - intended_epoch_s) * 1000 + response_ms: what a client
on an open-loop schedule waited. `schedule lag` = (send_epoch_s - intended_epoch_s) * 1000: how late the
load generator sent it (0 for closed-loop users, whose intended start is their send).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from inferswarm.config import GoodputConfig
from inferswarm.load.arrivals import LATE_MS

# A request sent more than LATE_MS after its intended start counts in `late_requests`: past a timer's
# ordinary jitter, the load generator (or its event loop) was behind its schedule.
QUANTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0}
LAG_QUANTILES = {"schedule_lag_p50_ms": 50.0, "schedule_lag_p99_ms": 99.0}
BASE_COLUMNS = ("capability", "intended_epoch_s", "send_epoch_s", "response_ms", "ok")


def columns_for(goodput: GoodputConfig | None) -> list[str]:
    """The request log's columns the report reads: stream timings only when a goodput SLO needs them."""
    extra = []
    if goodput is not None and goodput.ttft_ms is not None:
        extra.append("ttft_ms")
    if goodput is not None and goodput.itl_ms is not None:
        extra.append("itl_ms")
    return [*BASE_COLUMNS, *extra]


def _floats(batch: pa.Table | pa.RecordBatch, column: str) -> np.ndarray:
    """A float column as float64, nulls as NaN."""
    return np.asarray(batch.column(column).to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass(frozen=True)
class Requests:
    """The request log's rows as arrays, sorted by when each request ended."""

    names: tuple[str, ...]
    """Capability names; `code` indexes them."""
    code: np.ndarray
    end_s: np.ndarray
    response_ms: np.ndarray
    lag_ms: np.ndarray
    ok: np.ndarray
    ttft_ms: np.ndarray | None = None
    itl_ms: np.ndarray | None = None

    @classmethod
    def from_table(cls, table: pa.Table) -> Requests:
        return cls.from_batches(table.num_rows, table.to_batches())

    @classmethod
    def from_batches(cls, rows: int, batches: Iterable[pa.RecordBatch]) -> Requests:
        """The arrays, filled a batch at a time and sorted by end: an hour at 2,000 requests/s is 7.2
        million rows, and the report's memory goal counts every copy (response times and lags are
        float32: a microsecond at a minute)."""
        names: dict[str, int] = {}
        code = np.empty(rows, np.int32)
        end = np.empty(rows, np.float64)
        response = np.empty(rows, np.float32)
        lag = np.empty(rows, np.float32)
        ok = np.empty(rows, bool)
        streams: dict[str, np.ndarray | None] = {"ttft_ms": None, "itl_ms": None}
        at = 0
        for batch in batches:
            n = batch.num_rows
            if at + n > rows:
                raise ValueError(f"the request log holds more rows than its {rows} declared")
            span = slice(at, at + n)
            capability = batch.column("capability")
            if not pa.types.is_dictionary(capability.type):
                capability = capability.dictionary_encode()
            local = np.array(
                [names.setdefault(str(v), len(names)) for v in capability.dictionary.to_pylist()]
            )
            indices = np.asarray(capability.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            code[span] = local[indices] if len(local) else 0
            send = _floats(batch, "send_epoch_s")
            taken = _floats(batch, "response_ms")
            response[span] = taken
            end[span] = send + taken / 1000.0
            lag[span] = (send - _floats(batch, "intended_epoch_s")) * 1000.0
            ok[span] = np.asarray(batch.column("ok").to_numpy(zero_copy_only=False), dtype=bool)
            for column in streams:
                if column in batch.schema.names:
                    values = streams[column]
                    if values is None:
                        values = streams[column] = np.full(rows, np.nan, np.float32)
                    values[span] = _floats(batch, column)
            at += n
        order = np.argsort(end[:at], kind="stable")
        ttft, itl = streams["ttft_ms"], streams["itl_ms"]
        return cls(
            names=tuple(names),
            code=code[order],
            end_s=end[order],
            response_ms=response[order],
            lag_ms=lag[order],
            ok=ok[order],
            ttft_ms=ttft[order] if ttft is not None else None,
            itl_ms=itl[order] if itl is not None else None,
        )

    def __len__(self) -> int:
        return len(self.end_s)

    def select(self, window: tuple[float, float] | None = None, capability: str | None = None) -> np.ndarray:
        """Indices of the requests that ended in (start, end] (all without a window), of `capability`
        (all without one; none for a capability the log does not have)."""
        if window is None:
            index = np.arange(len(self))
        else:
            low, high = np.searchsorted(self.end_s, window, side="right")
            index = np.arange(low, high)
        if capability is None:
            return index
        if capability not in self.names:
            return index[:0]
        selected: np.ndarray = index[self.code[index] == self.names.index(capability)]
        return selected


def _percentiles(values: np.ndarray, quantiles: Mapping[str, float], prefix: str = "") -> dict[str, Any]:
    if not len(values):
        return {f"{prefix}{key}": None for key in quantiles}
    points = np.percentile(values, list(quantiles.values()))
    return {f"{prefix}{key}": float(point) for key, point in zip(quantiles, points, strict=True)}


def _max(values: np.ndarray) -> float | None:
    return float(values.max()) if len(values) else None


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def good(requests: Requests, index: np.ndarray, goodput: GoodputConfig) -> int:
    """How many of the requests at `index` succeeded and met every goodput SLO given: latency from the
    intended start within `latency_ms`; TTFT and ITL within theirs where the request has them."""
    keep = requests.ok[index].copy()
    if goodput.latency_ms is not None:
        from_intended = requests.lag_ms[index] + requests.response_ms[index]
        keep &= from_intended <= goodput.latency_ms
    for limit, values in ((goodput.ttft_ms, requests.ttft_ms), (goodput.itl_ms, requests.itl_ms)):
        if limit is not None and values is not None:
            measured = values[index]
            keep &= np.isnan(measured) | (measured <= limit)
    return int(keep.sum())


def figures(
    requests: Requests,
    index: np.ndarray,
    goodput: GoodputConfig | None = None,
    seconds: float | None = None,
    with_avg: bool = False,
) -> dict[str, Any]:
    """The exact latency figures of the requests at `index`: of successful ones (`p50_ms` ... `max_ms`),
    of all (`all_*`), from the intended start (`from_intended_*`), the schedule's lag, and with `goodput`
    its counts (`goodput_rps` only given the window's `seconds`). `with_avg` adds the means."""
    ok = requests.ok[index]
    service = requests.response_ms[index]
    lag = requests.lag_ms[index]
    success = service[ok]
    from_intended = (lag + service)[ok]
    out: dict[str, Any] = {
        **_percentiles(success, QUANTILES),
        "max_ms": _max(success),
        "latency_of": "successful",
        **_percentiles(service, QUANTILES, "all_"),
        "all_max_ms": _max(service),
        **_percentiles(from_intended, QUANTILES, "from_intended_"),
        "from_intended_max_ms": _max(from_intended),
        "late_requests": int((lag > LATE_MS).sum()),
        **_percentiles(lag, LAG_QUANTILES),
        "schedule_lag_max_ms": _max(lag),
    }
    if with_avg:
        out.update(avg_ms=_mean(success), all_avg_ms=_mean(service))
    if goodput is not None:
        count = good(requests, index, goodput)
        out["goodput_requests"] = count
        out["goodput_ratio"] = count / len(index) if len(index) else None
        if seconds is not None and seconds > 0:
            out["goodput_rps"] = count / seconds
    return out


def open_loop(rows: Sequence[Any]) -> bool:
    """Whether any of `rows` (summaries or steps) was sent later than its intended start: only then does
    latency from the intended start differ from the service latency (closed-loop users have no lag)."""
    return any((getattr(row, "schedule_lag_max_ms", None) or 0.0) > 0.0 for row in rows)
