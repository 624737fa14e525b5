from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inferswarm.config import load_config
from inferswarm.rundir import (
    CSV_PREFIX_NAME,
    CYCLE_SUMMARY,
    MASK,
    STATUS_COLUMNS,
    CsvAppender,
    RunFiles,
    RunRecord,
    make_run_dir,
    masked_config,
    scrub,
    write_csv_atomic,
)
from tests.conftest import base_config


def test_run_dir_name_and_collisions(tmp_path: Path) -> None:
    now = datetime(2026, 11, 22, 18, 40, 5, tzinfo=UTC)
    first = make_run_dir(tmp_path / "results", "demo", now)
    second = make_run_dir(tmp_path / "results", "demo", now)
    assert first.name == "20261122T184005Z-demo" and second.name == "20261122T184005Z-demo-2"
    assert first.is_dir() and second.is_dir()


def test_run_json_masks_and_scrubs_secrets(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    data = base_config()
    data["target"]["secret_headers"] = [{"header": "Authorization", "env": "TOK", "prefix": "Bearer "}]
    data["capabilities"][0]["headers"] = {"X-Trace": "on"}
    config = load_config(write_config(data))
    dumped = masked_config(config)
    assert dumped["capabilities"][0]["headers"] == {"X-Trace": "on"}
    assert dumped["target"]["secret_headers"][0]["env"] == "TOK"  # the name, never the value

    record = RunRecord(tmp_path, config, secrets=["Bearer tok-value-999"])
    record.start(epoch_s=1000.0, note="sent Bearer tok-value-999 somewhere")
    record.end("completed", 0, epoch_s=1012.5)
    text = (tmp_path / "run.json").read_text()
    assert "tok-value-999" not in text
    saved = json.loads(text)
    assert saved["note"] == f"sent {MASK} somewhere"
    assert (saved["status"], saved["exit_code"], saved["duration_s"]) == ("completed", 0, 12.5)
    assert saved["started_at"] == "1970-01-01T00:16:40.000Z"
    assert saved["versions"]["locust"] and saved["host"]["cpu_count"] >= 1


def test_scrub_nested() -> None:
    assert scrub({"a": ["xSECRETx", {"SECRET": 1}]}, ["SECRET"]) == {"a": [f"x{MASK}x", {MASK: 1}]}


def test_run_files_are_named_by_the_csv_prefix(tmp_path: Path) -> None:
    files = RunFiles(tmp_path, "run1")
    assert files.path("stages") == tmp_path / "run1_stages.csv"
    assert files.path("cycle_summary") == tmp_path / CYCLE_SUMMARY
    names = files.names(cycles=False, telemetry=False)
    assert "cycles" not in names and "cycle_summary" not in names and "telemetry" not in names
    assert set(files.names()) - set(names) == {"cycles", "cycle_summary", "telemetry"}
    assert RunFiles(tmp_path).path("steps") == tmp_path / f"{CSV_PREFIX_NAME}_steps.csv"
    without_log = files.names(request_log=False)
    assert set(files.names()) - set(without_log) == {"requests", "requests_stream"}
    assert files.path("requests") == tmp_path / "run1_requests.parquet"


def test_atomic_csv_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "status.csv"
    write_csv_atomic(path, STATUS_COLUMNS, [["a", 200, 3]])
    write_csv_atomic(path, STATUS_COLUMNS, [["b", 503, 1], ["c", 0, 2]])
    assert path.read_text() == "name,status,count\nb,503,1\nc,0,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["status.csv"]  # no temporary file left behind


def test_appender_flushes_every_batch(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "steps.csv"
    appender = CsvAppender(path, ["a", "b"])
    assert path.read_text() == "a,b\n"  # the header is on disk before any row
    appender.rows([[1, 2], [3, 4]])
    assert path.read_text() == "a,b\n1,2\n3,4\n"  # readable while still open
    appender.close()
