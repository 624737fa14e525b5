from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inferswarm.config import load_config
from inferswarm.runinfo import MASK, RunRecord, make_run_dir, masked_config, scrub
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
