"""Read a run directory into pandas frames, tolerating what a killed or empty run leaves behind.

Every problem becomes one line in `RunData.notes` (a missing file, rows dropped from a truncated file,
`N/A` cells); whatever could be read is still returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import JsonValue, ValidationError

from inferswarm.config import GoodputConfig
from inferswarm.report.requests import Requests, columns_for
from inferswarm.report.telemetry import NUMERIC_NA, Telemetry, read_telemetry
from inferswarm.requests_file import read_requests
from inferswarm.rundir import RunFiles

JsonObject = dict[str, JsonValue]


def object_of(value: JsonValue) -> JsonObject:
    """`value` when it is a JSON object, else an empty one (a section run.json lacks, or holds mangled)."""
    return value if isinstance(value, dict) else {}


@dataclass
class RunData:
    run_dir: Path
    prefix: str
    run: JsonObject = field(default_factory=dict)
    """run.json as read (empty when it is missing or unreadable)."""
    stages: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    stats: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    steps: pd.DataFrame | None = None
    step_latency: pd.DataFrame | None = None
    status_codes: pd.DataFrame | None = None
    telemetry: Telemetry | None = None
    requests: Requests | None = None
    """The request log (only the columns the report needs); None when the run wrote none."""
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> JsonObject:
        return object_of(self.run.get("config"))

    @property
    def goodput(self) -> GoodputConfig | None:
        """The config's goodput SLOs (None without them, or when run.json's section does not fit)."""
        raw = self.config.get("goodput")
        if raw is None:
            return None
        try:
            return GoodputConfig.model_validate(raw)
        except ValidationError:
            return None


def _read(
    data: RunData,
    name: str,
    numeric: list[str],
    required: list[str],
    dtype: dict[str, Any] | None = None,
    usecols: set[str] | None = None,
    empty_is_fine: bool = False,
) -> pd.DataFrame | None:
    """`PREFIX_name.csv` with `numeric` columns as numbers and rows lacking a `required` cell skipped;
    None (with a note) when it cannot be read. `empty_is_fine`: a file without rows is no problem (the
    failures of a run where nothing failed), so it gets no note."""
    path = data.run_dir / f"{data.prefix}_{name}.csv"
    if not path.is_file():
        data.notes.append(f"{path.name}: missing")
        return None
    try:
        frame = pd.read_csv(
            path,
            na_values=NUMERIC_NA,
            keep_default_na=False,
            on_bad_lines="skip",
            dtype=dtype,
            usecols=None if usecols is None else usecols.__contains__,
        )
    except pd.errors.EmptyDataError:
        data.notes.append(f"{path.name}: empty file")
        return None
    except (ValueError, pd.errors.ParserError) as exc:
        data.notes.append(f"{path.name}: unreadable ({exc})")
        return None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        data.notes.append(f"{path.name}: missing columns {', '.join(missing)}")
        return None
    for column in numeric:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    before = len(frame)
    frame = frame.dropna(subset=required)
    if len(frame) < before:
        data.notes.append(f"{path.name}: {before - len(frame)} incomplete row(s) skipped (truncated or N/A)")
    if frame.empty and not empty_is_fine:
        data.notes.append(f"{path.name}: no rows")
    result: pd.DataFrame = frame.reset_index(drop=True)
    return result


PERCENTILE_COLUMNS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]


def _load_telemetry(data: RunData) -> Telemetry | None:
    path = data.run_dir / f"{data.prefix}_telemetry.csv"
    if not path.is_file():
        data.notes.append(f"{path.name}: missing (no telemetry: utilization figures are left out)")
        return None
    try:
        telemetry = read_telemetry(path)
    except (pa.ArrowInvalid, OSError) as exc:
        data.notes.append(f"{path.name}: unreadable ({str(exc).splitlines()[0]})")
        return None
    if telemetry.skipped_rows:
        data.notes.append(
            f"{path.name}: {telemetry.skipped_rows} incomplete row(s) skipped (truncated or malformed)"
        )
    if not telemetry.metrics:
        data.notes.append(f"{path.name}: no usable rows")
        return None
    return telemetry


def _load_requests(data: RunData) -> Requests | None:
    """The request log: its Parquet file, or the stream a run that did not end cleanly left."""
    files = RunFiles(data.run_dir, data.prefix)
    parquet, stream = files.path("requests"), files.path("requests_stream")
    try:
        read = read_requests(parquet, stream, columns_for(data.goodput))
    except (OSError, ValueError, KeyError) as exc:
        name = parquet.name if parquet.is_file() else stream.name
        data.notes.append(f"{name}: unreadable ({str(exc).splitlines()[0] if str(exc) else exc!r})")
        return None
    if read is None:
        return None
    if read.source == "stream":
        cut = "; its last batch was cut short and is left out" if read.cut else ""
        data.notes.append(
            f"{stream.name}: the request log of a run that did not end cleanly, {read.rows} rows read{cut}"
        )
    if not read.rows:
        data.notes.append(f"{read.path.name}: no rows (latency from Locust's statistics)")
        return None
    return Requests.from_batches(read.rows, read.batches())


def load_run(run_dir: Path) -> RunData:
    """Everything a report needs from `run_dir`; raises FileNotFoundError only if the directory is absent."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    run: JsonObject = {}
    notes: list[str] = []
    try:
        loaded = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        run = loaded if isinstance(loaded, dict) else {}
    except FileNotFoundError:
        notes.append("run.json: missing (config, versions and SLOs unknown)")
    except (OSError, ValueError) as exc:
        notes.append(f"run.json: unreadable ({exc})")
    prefix = str(run.get("csv_prefix") or "locust")
    data = RunData(run_dir, prefix, run, notes=notes)
    data.stages = _read(
        data,
        "stages",
        ["stage", "users", "start_epoch_s", "end_epoch_s"],
        ["stage", "users", "start_epoch_s", "end_epoch_s"],
    )
    data.history = _read(
        data,
        "stats_history",
        [
            "Timestamp",
            "User Count",
            "Requests/s",
            "Failures/s",
            "Total Request Count",
            "Total Failure Count",
            *PERCENTILE_COLUMNS,
        ],
        ["Timestamp", "Name", "Total Request Count"],
        dtype={"Name": "category"},
        # only what the report uses: a day-long history of many capabilities is a million rows
        usecols={
            "Timestamp",
            "User Count",
            "Name",
            "Requests/s",
            "Failures/s",
            "Total Request Count",
            "Total Failure Count",
            "50%",
            "90%",
            "95%",
            "99%",
            "100%",
        },
    )
    data.stats = _read(
        data,
        "stats",
        [
            "Request Count",
            "Failure Count",
            "Requests/s",
            "Failures/s",
            "Average Response Time",
            "Max Response Time",
            *PERCENTILE_COLUMNS,
        ],
        ["Name", "Request Count"],
    )
    data.failures = _read(
        data, "failures", ["Occurrences"], ["Name", "Error", "Occurrences"], empty_is_fine=True
    )
    data.steps = _read(
        data,
        "steps",
        ["stage", "requests", "failures", "window_start_epoch_s", "window_end_epoch_s", "warmup_s"],
        ["stage", "name", "requests", "window_start_epoch_s", "window_end_epoch_s"],
    )
    data.step_latency = _read(
        data,
        "step_latency",
        ["stage", "response_time_ms", "count"],
        ["stage", "name", "response_time_ms", "count"],
    )
    data.status_codes = _read(data, "status_codes", ["status", "count"], ["name", "status", "count"])
    data.history = _while_the_test_ran(data)
    data.telemetry = _load_telemetry(data)
    data.requests = _load_requests(data)
    return data


def test_spans(data: RunData) -> list[tuple[float, float]]:
    """When a test ran: the stages' (start, end), stages less than a second apart merged (a web-UI run
    started twice has two spans). Empty without stages."""
    stages = data.stages
    if stages is None or stages.empty:
        return []
    spans: list[tuple[float, float]] = []
    for start, end in sorted(zip(stages["start_epoch_s"], stages["end_epoch_s"], strict=True)):
        if spans and start <= spans[-1][1] + 1.0:
            spans[-1] = (spans[-1][0], max(spans[-1][1], float(end)))
        else:
            spans.append((float(start), float(end)))
    return spans


def _while_the_test_ran(data: RunData) -> pd.DataFrame | None:
    """The history rows written while a test ran. Locust writes a row every second whether a test runs
    or not, and after a test stops (the web UI's stop) it keeps writing the last window's rates with 0
    users: those rows are not traffic. A row stamped `t` (whole seconds, rounded down) was written in
    [t, t + 1), so it belongs to a span (start, end) when start - 1 < t <= end. Without stages, the rows
    with 0 users after the last row with users are left out."""
    history = data.history
    if history is None or history.empty:
        return history
    ts = history["Timestamp"].to_numpy(dtype=float)
    spans = test_spans(data)
    if spans:
        low = np.array([start - 1.0 for start, _ in spans])
        high = np.array([end for _, end in spans])
        index = np.searchsorted(low, ts, side="left") - 1
        keep = (index >= 0) & (ts <= high[np.clip(index, 0, None)])
    elif "User Count" in history:
        users = history["User Count"].to_numpy(dtype=float)
        busy = ts[users > 0]
        keep = ts <= busy.max() if len(busy) else np.ones(len(ts), dtype=bool)
    else:
        return history
    if keep.all():
        return history
    seconds = len(np.unique(ts[~keep]))
    data.notes.append(
        f"{data.prefix}_stats_history.csv: {seconds} s of history written while no test ran left out "
        "(Locust repeats its last rates after a test stops: not traffic)"
    )
    kept: pd.DataFrame = history[keep].reset_index(drop=True)
    return kept
