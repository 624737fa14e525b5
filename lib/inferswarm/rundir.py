"""The run directory contract: every file name and CSV column a run writes, `run.json`, one atomic writer.

Writers (the Locust listeners, the CLI) and readers (the report) take names and columns from here, so a
file is described once. Files rewritten while the run goes on (run.json, status codes, cycles) are
replaced atomically (write, then rename), so a reader never sees half a file; append-only CSVs are
flushed per row instead. run.json never holds a secret: the config is dumped with credential-looking
headers masked, and any secret value that still appears anywhere is replaced as a last line of defence.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from inferswarm.config import RunConfig
from inferswarm.secrets import Scrubber, is_sensitive_header

MASK = "***"
RUN_JSON = "run.json"
CSV_PREFIX_NAME = "locust"
CYCLE_SUMMARY = "cycle_summary.txt"

# PREFIX_stages.csv: one row per stage as it ends (the load kind's plan plus when it really ran).
STAGE_COLUMNS = [
    "stage",
    "name",
    "users",
    "spawn_rate",
    "planned_start_s",
    "planned_end_s",
    "start_epoch_s",
    "end_epoch_s",
    "completed",
    "rps",
]
# `users` of an open-loop stage is its ceiling on requests in flight; `rps` its offered rate (empty when
# the stage is closed loop).
# PREFIX_steps.csv: requests and failures per stage and name in the measured window (after warm-up).
STEPS_COLUMNS = [
    "stage",
    "name",
    "requests",
    "failures",
    "window_start_epoch_s",
    "window_end_epoch_s",
    "warmup_s",
]
# PREFIX_step_latency.csv: the window's exact response-time histogram (Locust's rounding).
LATENCY_COLUMNS = ["stage", "name", "response_time_ms", "count"]
# PREFIX_status_codes.csv: HTTP statuses per capability (0 = no HTTP response).
STATUS_COLUMNS = ["name", "status", "count"]
# PREFIX_cycles.csv: cycle mode's outcomes per cycle and capability.
CYCLE_OUTCOMES = ("ok", "failed", "missed")
CYCLE_COLUMNS = ["cycle", "name", *CYCLE_OUTCOMES]
# PREFIX_readiness.csv: the readiness load kind's timeline, one row per request as it was answered.
# `answer`: edge, cloud, answer (no source said), not_ready (503), refused (no connection), or another
# failure category; `t_s`: seconds since the test started.
READINESS_ANSWERS = ("edge", "cloud", "answer", "not_ready", "refused")
READINESS_COLUMNS = [
    "iteration",
    "name",
    "t_s",
    "start_epoch_s",
    "end_epoch_s",
    "status",
    "answer",
    "response_ms",
]

# PREFIX_readiness_routes.csv: the endpoint's readiness routes polled alongside, one row per reading:
# `/health/ready` (name empty) and each detector's entry of `/edge-detector-readiness`; `status` 0 when
# nothing answered, `ready` 1/0 or empty when the answer did not say.
READINESS_ROUTE_COLUMNS = ["t_s", "epoch_s", "route", "name", "detector_id", "status", "ready"]

# PREFIX_requests.parquet (PREFIX_requests.arrows while the run goes on): one row per request, exactly as
# measured (Locust's own statistics round response times to about 2 significant digits). Column -> its
# Arrow type. Latency from the intended start = (send_epoch_s - intended_epoch_s) * 1000 + response_ms.
REQUEST_COLUMN_TYPES: dict[str, str] = {
    # the capability's stats name
    "capability": "string",
    # who sent it: "local" in a local run, the worker's Locust client id in a distributed one
    "node": "string",
    # when the schedule wanted it sent (open-loop load); equal to send_epoch_s for closed-loop users
    "intended_epoch_s": "float64",
    # when it was sent (time.time() just before the request left)
    "send_epoch_s": "float64",
    # from the send to the response's headers (a stream's first bytes come with them); null: no response
    "first_byte_ms": "float64",
    # service latency from the send to the end: exactly the response time Locust was given
    "response_ms": "float64",
    # the HTTP status it ended with (0: no complete HTTP answer; a polled job: the last poll's)
    "status": "int32",
    # whether it counted as a success
    "ok": "bool",
    # the failure category (`FailureCategory`), "" for a success; never the failure's text
    "category": "string",
    # body bytes read (a stream's bytes as received)
    "bytes_received": "int64",
    # a stream's time to first token; null for a request that did not stream
    "ttft_ms": "float64",
    # a stream's mean inter-token latency; null without a stream or with a single token
    "itl_ms": "float64",
    # a stream's output tokens; null for a request that did not stream
    "output_tokens": "int64",
    # request body bytes sent (0 without a body)
    "bytes_sent": "int64",
    # the server's own time for a successful request when it says it (a tensor server's Server-Timing);
    # null otherwise. Network overhead = response_ms - server_ms.
    "server_ms": "float64",
}
REQUEST_COLUMNS = list(REQUEST_COLUMN_TYPES)

# An orchestrator-matrix run (`inferswarm orchestrators`): its run.json has `"kind": "orchestrators"`.
ORCH_KIND = "orchestrators"
# What discovery found: the endpoint used, every orchestrator with its pipelines, models (warm, capacity)
# and hardware, the notices (unknown capabilities skipped), the filters and the planned cells.
ORCH_DISCOVERY = "orchestrators.json"
# One leaderboard AI stat per line, exactly the bytes posted (and signed), in the order they were made.
ORCH_STATS_JSONL = "orchestrator_stats.jsonl"
# The same stats as a table, with what the leaderboard never sees: the service URI, the jobs behind the
# stat, whose round trips the mean is of, and how the post went.
ORCH_STAT_COLUMNS = [
    "region",
    "orchestrator",
    "service_uri",
    "pipeline",
    "model",
    "model_is_warm",
    "jobs",
    "successes",
    "success_rate",
    # mean round trip in seconds: of the successful jobs, or of all jobs when none succeeded (`rtt_of`)
    "round_trip_time",
    "rtt_of",
    # the stat's `errors` as JSON: [{"error_code", "message", "count"}]
    "errors",
    "timestamp",
    # posted | dry_run | failed (refused or retries spent) | not_posted (the run stopped first)
    "post_status",
    "post_http_status",
    "post_attempts",
    "post_error",
]
ORCH_STATS_CSV = "orchestrator_stats.csv"
# One row per test job, as it ended.
ORCH_JOB_COLUMNS = [
    "orchestrator",
    "service_uri",
    "pipeline",
    "model",
    "job",
    "start_epoch_s",
    # from the send to the end of the body read
    "round_trip_s",
    # 0: no HTTP answer
    "status",
    "ok",
    # the failure category ("" for a success), as in load runs
    "category",
    # the leaderboard's error_code: the HTTP status, or the category in capitals without an answer
    "error_code",
    # the failure's message (secrets masked), "" for a success
    "message",
    "bytes_received",
]
ORCH_JOBS_CSV = "orchestrator_jobs.csv"
# With a `load:` step: one row per orchestrator loaded through the pinned gateway (a whole `inferswarm
# run` each, its run directory under ORCH_LOAD_DIR); the figures are its results.json's totals.
ORCH_LOAD_DIR = "load"
ORCH_LOAD_COLUMNS = [
    "orchestrator",
    "service_uri",
    "capabilities",
    "users",
    "duration_s",
    # the step's run.json status (completed, stopped, ...), failed (no run directory), or skipped (no cell
    # of the orchestrator answered its test job)
    "status",
    "requests",
    "failures",
    "failure_ratio",
    "rps",
    "success_rps",
    # latency of successful requests
    "p50_ms",
    "p95_ms",
    "run_dir",
    "note",
]
ORCH_LOAD_CSV = "orchestrator_load.csv"


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory, named by Locust's CSV prefix."""

    run_dir: Path
    prefix: str = CSV_PREFIX_NAME

    def path(self, key: str) -> Path:
        return self.run_dir / self.names()[key]

    def names(
        self,
        cycles: bool = True,
        telemetry: bool = True,
        readiness: bool = True,
        readiness_routes: bool = True,
        request_log: bool = True,
    ) -> dict[str, str]:
        """File key -> file name, as run.json's `files` lists them. `requests_stream` is the request log
        while the run goes on; at a clean end it becomes `requests` and is removed."""
        p = self.prefix
        names = {
            "stages": f"{p}_stages.csv",
            "stats": f"{p}_stats.csv",
            "stats_history": f"{p}_stats_history.csv",
            "failures": f"{p}_failures.csv",
            "exceptions": f"{p}_exceptions.csv",
            "steps": f"{p}_steps.csv",
            "step_latency": f"{p}_step_latency.csv",
            "status_codes": f"{p}_status_codes.csv",
        }
        if cycles:
            names["cycles"] = f"{p}_cycles.csv"
            names["cycle_summary"] = CYCLE_SUMMARY
        if telemetry:
            names["telemetry"] = f"{p}_telemetry.csv"
        if readiness:
            names["readiness"] = f"{p}_readiness.csv"
            if readiness_routes:
                names["readiness_routes"] = f"{p}_readiness_routes.csv"
        if request_log:
            names["requests"] = f"{p}_requests.parquet"
            names["requests_stream"] = f"{p}_requests.arrows"
        return names


def make_run_dir(base: Path, name: str, now: datetime | None = None) -> Path:
    """Create `base/<UTC timestamp>-<name>/`; a numeric suffix keeps two runs in one second apart."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        suffix = f"-{attempt + 1}" if attempt else ""
        candidate = base / f"{stamp}-{name}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"cannot create a run directory under {base}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {
        "inferswarm": _version("inferswarm"),
        "locust": _version("locust"),
        "gevent": _version("gevent"),
        "python": platform.python_version(),
    }


def host_info() -> dict[str, Any]:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": psutil.virtual_memory().total,
    }


def masked_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data, credential-looking header values replaced by a mask."""
    data: dict[str, Any] = config.model_dump(mode="json")
    data["target"]["headers"] = {
        k: (MASK if is_sensitive_header(k) else v) for k, v in data["target"]["headers"].items()
    }
    for cap in data["capabilities"]:
        cap["headers"] = {k: (MASK if is_sensitive_header(k) else v) for k, v in cap["headers"].items()}
    return data


def scrub(value: Any, secrets: Iterable[str] | Scrubber) -> Any:
    """Replace every occurrence of a secret anywhere in a JSON-like value, in every form a server may
    echo it in (the token without its `Bearer `, base64: `inferswarm.secrets.secret_forms`)."""
    scrubber = secrets if isinstance(secrets, Scrubber) else Scrubber(secrets)
    if not scrubber:
        return value
    if isinstance(value, str):
        return scrubber.replace(value)
    if isinstance(value, dict):
        return {scrub(k, scrubber): scrub(v, scrubber) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, scrubber) for v in value]
    return value


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader sees the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not leave half a copy beside the file
            tmp.unlink(missing_ok=True)
        raise


def overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite an existing file's content where it is: the last resort when no temporary copy can be
    written (a full disk), since a file rewritten over its own length mostly reuses its own blocks."""
    data = text.encode("utf-8")
    with path.open("r+b") as handle:
        handle.write(data)
        handle.truncate(len(data))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv_atomic(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


class CsvAppender:
    """An append-only CSV whose header and every batch of rows reach the OS at once (a killed run
    keeps all it wrote)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self.rows([columns])

    def rows(self, rows: Iterable[Sequence[Any]]) -> None:
        self._writer.writerows(rows)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def end_fields(
    data: dict[str, Any], status: str, exit_code: int | None, epoch_s: float | None = None
) -> dict[str, Any]:
    """The fields that close a run.json, its duration measured from the recorded start."""
    now = time.time() if epoch_s is None else epoch_s
    start = data.get("start_epoch_s")
    return {
        "status": status,
        "exit_code": exit_code,
        "ended_at": iso(now),
        "end_epoch_s": round(now, 3),
        "duration_s": round(now - start, 3) if isinstance(start, int | float) else None,
    }


def opening_fields(
    name: str, description: str, source: Path | None, config: dict[str, Any], secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """What every run.json starts with: who ran what, where and with which versions; not yet started."""
    values = [s for s in secrets if s]
    return {
        "schema": 1,
        "name": name,
        "description": description,
        "config_file": str(source) if source else None,
        "config": config,
        "versions": versions(),
        "host": host_info(),
        "command": [MASK if any(s in a for s in values) else a for a in sys.argv],
        "pid": os.getpid(),
        "status": "running",
        "started_at": None,
        "start_epoch_s": None,
        "ended_at": None,
        "end_epoch_s": None,
        "duration_s": None,
        "exit_code": None,
        "files": {},
    }


class RunRecord:
    """Keeps run.json in step with the run: written at start, updated at the end."""

    def __init__(self, run_dir: Path, config: RunConfig, secrets: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RUN_JSON
        self._secrets = list(secrets)
        self.data = opening_fields(
            config.name, config.description, config.source, masked_config(config), self._secrets
        )

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def start(self, epoch_s: float | None = None, **fields: Any) -> None:
        now = time.time() if epoch_s is None else epoch_s
        self.update(started_at=iso(now), start_epoch_s=round(now, 3), **fields)

    def end(self, status: str, exit_code: int | None, epoch_s: float | None = None, **fields: Any) -> None:
        self.update(**end_fields(self.data, status, exit_code, epoch_s), **fields)

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, scrub(self.data, self._secrets))


def read_run_json(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
