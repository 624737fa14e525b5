"""Read a run directory into pandas frames, tolerating what a killed or empty run leaves behind.

Every problem becomes one line in `RunData.notes` (a missing file, rows dropped from a truncated file,
`N/A` cells); whatever could be read is still returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

NUMERIC_NA = ["N/A", "n/a", "nan", ""]


@dataclass
class RunData:
    run_dir: Path
    prefix: str
    run: dict[str, Any] = field(default_factory=dict)
    stages: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    stats: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    steps: pd.DataFrame | None = None
    step_latency: pd.DataFrame | None = None
    status_codes: pd.DataFrame | None = None
    telemetry: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        config = self.run.get("config")
        return config if isinstance(config, dict) else {}


def _read(
    data: RunData,
    name: str,
    numeric: list[str],
    required: list[str],
    dtype: dict[str, Any] | None = None,
    usecols: list[str] | None = None,
) -> pd.DataFrame | None:
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
            usecols=usecols,
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
    if frame.empty:
        data.notes.append(f"{path.name}: no rows")
    return frame.reset_index(drop=True)


PERCENTILE_COLUMNS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
TELEMETRY_METRICS = {
    "gpu_util_pct",
    "gpu_mem_used_bytes",
    "gpu_mem_total_bytes",
    "gpu_energy_j",
    "gpu_power_w",
    "cpu_util_pct",
    "mem_util_pct",
    "process_cpu_pct",
    "generator_saturated",
}


def _read_telemetry(data: RunData) -> pd.DataFrame | None:
    """Only the metrics the report uses, with the repeated strings as categories: a day-long run has
    tens of millions of rows, and this keeps them at about 20 bytes each."""
    path = data.run_dir / f"{data.prefix}_telemetry.csv"
    if not path.is_file():
        data.notes.append(f"{path.name}: missing (no telemetry: utilization figures are left out)")
        return None
    parts = []
    dtype = {"node": "category", "source": "category", "device": "category", "metric": "category"}
    try:
        reader = pd.read_csv(
            path,
            usecols=["timestamp", "node", "source", "device", "metric", "value"],
            dtype=dtype,
            na_values=NUMERIC_NA,
            keep_default_na=False,
            on_bad_lines="skip",
            chunksize=2_000_000,
            engine="c",
        )
        for chunk in reader:
            chunk = chunk[chunk["metric"].isin(TELEMETRY_METRICS)]
            chunk = chunk[~chunk["device"].astype(str).str.startswith("cpu")]  # per-core rows: not used
            for column in ("timestamp", "value"):
                chunk[column] = pd.to_numeric(chunk[column], errors="coerce")
            parts.append(chunk.dropna(subset=["timestamp", "value"]))
    except pd.errors.EmptyDataError:
        data.notes.append(f"{path.name}: empty file")
        return None
    except (ValueError, pd.errors.ParserError) as exc:
        data.notes.append(f"{path.name}: unreadable ({exc})")
        return None
    if not parts:
        data.notes.append(f"{path.name}: no rows")
        return None
    frame = pd.concat(parts, ignore_index=True)
    for column in dtype:
        frame[column] = frame[column].astype(str).astype("category")
    if frame.empty:
        data.notes.append(f"{path.name}: no usable rows")
        return None
    return frame


def load_run(run_dir: Path) -> RunData:
    """Everything a report needs from `run_dir`; raises FileNotFoundError only if the directory is absent."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    run: dict[str, Any] = {}
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
    data.failures = _read(data, "failures", ["Occurrences"], ["Name", "Error", "Occurrences"])
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
    data.telemetry = _read_telemetry(data)
    return data
