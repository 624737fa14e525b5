"""The tensor section of a report: per tensor size, transfer rates, latency, the server's compute time,
the network overhead, and a local CPU baseline with the size where the remote server starts to win.

Seed 003's analysis, from the request log: for each request that succeeded and whose server said its own
time (`server_ms`), overhead = client response time - server time: what the network, (de)serialisation
and queueing in front of the server cost. The CPU baseline is the same operation done with numpy on the
machine writing the report (the load generator at the end of `inferswarm run`), timed as the median of a
few repetitions on data of the same shape and type; remote "wins" at a size when its median client time
is below the local CPU's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from inferswarm.report.load import JsonObject, RunData, object_of
from inferswarm.report.results import TensorSection, TensorSize
from inferswarm.rundir import RunFiles

COLUMNS = ["capability", "send_epoch_s", "response_ms", "ok", "bytes_sent", "bytes_received", "server_ms"]
MB = 1_000_000.0
BASELINE_BUDGET_S = 2.0
"""Time allowed for all CPU baselines of one report (the largest sizes get fewer repetitions)."""
BASELINE_REPEATS = 7


def _tensor_facts(data: RunData) -> dict[str, JsonObject]:
    """Capability -> what run.json says of it, for the tensor capabilities, in config order."""
    info = object_of(data.run.get("capabilities_info"))
    return {name: object_of(facts) for name, facts in info.items() if object_of(facts).get("tensor") is True}


def _log(data: RunData, names: list[str]) -> dict[str, dict[str, np.ndarray]] | None:
    path = RunFiles(data.run_dir, data.prefix).path("requests")
    if not path.is_file():
        return None
    table = pq.read_table(path, columns=COLUMNS, filters=[("capability", "in", names)])
    out: dict[str, dict[str, np.ndarray]] = {}
    capability = np.asarray(table.column("capability").to_numpy(zero_copy_only=False))
    for name in names:
        mask = capability == name
        out[name] = {
            column: np.asarray(table.column(column).to_numpy(zero_copy_only=False))[mask]
            for column in COLUMNS[1:]
        }
    return out


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def _percentile(values: np.ndarray, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else None


def cpu_baseline_ms(operation: str, shape: list[int], datatype: str, budget_s: float) -> float | None:
    """Median time of `operation` with numpy on this machine, on seeded data of `shape` and `datatype`."""
    from inferswarm.protocols.tensor_codec import dtype_of
    from inferswarm.protocols.tensor_ops import OPERATIONS

    function = OPERATIONS.get(operation)
    if function is None:
        return None
    try:
        dtype = dtype_of(datatype)
    except ValueError:
        return None
    data = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    timings: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(BASELINE_REPEATS):
        started = time.perf_counter()
        function(data)
        timings.append((time.perf_counter() - started) * 1000.0)
        if time.perf_counter() > deadline:
            break
    return float(np.median(timings))


def _size_row(
    name: str, facts: JsonObject, rows: Mapping[str, np.ndarray] | None, budget_s: float
) -> TensorSize:
    raw_shape = facts.get("shape")
    shape = [int(d) for d in raw_shape if isinstance(d, int)] if isinstance(raw_shape, list) else []
    entry: dict[str, Any] = {
        "capability": name,
        "size": str(facts.get("size") or "x".join(map(str, shape))),
        "shape": shape,
        "datatype": str(facts.get("datatype", "")),
        "operation": str(facts.get("operation", "")),
        "bytes_sent": facts.get("bytes_sent"),
    }
    baseline = cpu_baseline_ms(entry["operation"], shape, entry["datatype"], budget_s) if shape else None
    entry["cpu_baseline_ms"] = baseline
    if rows is None or not len(rows["ok"]):
        return TensorSize.model_validate(entry)
    ok = rows["ok"].astype(bool)
    client = rows["response_ms"][ok].astype(np.float64)
    server = rows["server_ms"][ok].astype(np.float64)
    overhead = client - server  # NaN where the server said nothing
    sent = rows["bytes_sent"][ok].astype(np.float64)
    received = rows["bytes_received"][ok].astype(np.float64)
    start = rows["send_epoch_s"].astype(np.float64)
    end = start + rows["response_ms"].astype(np.float64) / 1000.0
    span_s = float(end.max() - start.min()) if len(start) else 0.0
    server_p50 = _median(server)
    overhead_p50 = _median(overhead)
    entry.update(
        requests=len(ok),
        successes=int(ok.sum()),
        timed_by_server=int((~np.isnan(server)).sum()),
        client_p50_ms=_median(client),
        client_p95_ms=_percentile(client, 95),
        client_p99_ms=_percentile(client, 99),
        server_p50_ms=server_p50,
        overhead_p50_ms=overhead_p50,
        overhead_p95_ms=_percentile(overhead, 95),
        overhead_pct_of_compute=(
            overhead_p50 / server_p50 * 100.0 if overhead_p50 is not None and server_p50 else None
        ),
        upload_mb_s=float(sent.sum()) / MB / span_s if span_s > 0 else None,
        download_mb_s=float(received.sum()) / MB / span_s if span_s > 0 else None,
        per_request_upload_mb_s=_median(sent / MB / (client / 1000.0)) if len(client) else None,
    )
    if baseline is not None and entry["client_p50_ms"] is not None:
        entry["remote_wins"] = entry["client_p50_ms"] < baseline
    return TensorSize.model_validate(entry)


def tensor_section(data: RunData) -> TensorSection | None:
    """The section for a run with tensor capabilities; None for any other run."""
    facts = _tensor_facts(data)
    if not facts:
        return None
    names = list(facts)
    log = _log(data, names)
    notes: list[str] = []
    if log is None:
        notes.append("no request log (output.request_log: false): no server time or overhead per size")
    budget = BASELINE_BUDGET_S / max(len(names), 1)
    sizes = [_size_row(name, facts[name], None if log is None else log.get(name), budget) for name in names]
    sizes.sort(key=lambda s: (s.bytes_sent or 0, s.capability))
    untimed = [s.capability for s in sizes if s.successes and not s.timed_by_server]
    if untimed:
        notes.append(
            f"the server said nothing of its own time for {', '.join(untimed)}: no overhead there "
            "(configure the capability's server_timing)"
        )
    wins = [s for s in sizes if s.remote_wins]
    losing = [s for s in sizes if s.remote_wins is False]
    if wins and losing and all(not s.remote_wins for s in sizes[: sizes.index(wins[0])]):
        break_even = f"remote beats the local CPU from {wins[0].size} on"
    elif wins and not losing:
        break_even = "remote beat the local CPU at every size tested"
    elif losing and not wins:
        break_even = "remote never beat the local CPU in the sizes tested"
    elif wins:
        break_even = "remote and the local CPU cross more than once: " + ", ".join(
            f"{s.size} {'remote' if s.remote_wins else 'CPU'}" for s in sizes if s.remote_wins is not None
        )
    else:
        break_even = None
    overheads = [s.overhead_p50_ms for s in sizes if s.overhead_p50_ms is not None]
    return TensorSection(
        sizes=sizes,
        break_even=break_even,
        overhead_ms_p50=float(np.median(overheads)) if overheads else None,
        baseline_host=socket.gethostname(),
        notes=notes,
    )
