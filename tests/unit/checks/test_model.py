"""The result model: seed 003's JSON shape exactly, the summary, the status rules, the tables."""

from __future__ import annotations

import json
from pathlib import Path

from inferswarm.checks.model import (
    CHECKS_JSON,
    Check,
    CheckReport,
    Status,
    details_json,
    markdown_table,
    preflight_markdown,
)


def report(*statuses: Status) -> CheckReport:
    r = CheckReport(target="http://127.0.0.1:8000")
    r.add(Check(f"c{i}", s, f"details {i}", 1.25) for i, s in enumerate(statuses))
    return r


def test_the_json_has_seed_003s_keys_and_types() -> None:
    data = json.loads(report(Status.PASS, Status.FAIL).to_json())
    assert list(data) == ["test_info", "tests", "summary"]
    info = data["test_info"]
    assert list(info) == ["hostname", "timestamp", "test_type", "target", "inferswarm_version"]
    assert info["test_type"] == "client_side" and info["target"] == "http://127.0.0.1:8000"
    for test in data["tests"]:
        assert list(test) == ["name", "status", "details", "timing_ms", "timestamp"]
        assert isinstance(test["name"], str) and isinstance(test["details"], str)
        assert isinstance(test["timing_ms"], int | float) and isinstance(test["timestamp"], str)
    assert [t["status"] for t in data["tests"]] == ["PASS", "FAIL"]


def test_structured_details_are_json_text() -> None:
    text = details_json({"gpu_count": 1, "gpu_name": "Tesla T4"})
    assert isinstance(text, str) and json.loads(text) == {"gpu_count": 1, "gpu_name": "Tesla T4"}


def test_only_a_fail_fails_the_report() -> None:
    assert report(Status.PASS, Status.WARN, Status.SKIP).ok
    failing = report(Status.PASS, Status.FAIL, Status.WARN, Status.SKIP, Status.SKIP)
    assert not failing.ok and [c.name for c in failing.failed] == ["c1"]
    assert failing.summary() == {"passed": 1, "failed": 1, "warned": 1, "skipped": 2}
    assert report().ok and report().summary() == {"passed": 0, "failed": 0, "warned": 0, "skipped": 0}


def test_the_console_table_lists_every_check_and_cuts_long_details() -> None:
    r = report(Status.PASS)
    r.add([Check("long", Status.WARN, "x" * 500)])
    lines = r.table().splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "MS", "DETAILS"]
    assert lines[1].split()[:3] == ["PASS", "c0", "1.2"] or lines[1].split()[:3] == ["PASS", "c0", "1.3"]
    assert lines[2].startswith("WARN") and lines[2].endswith("...") and len(lines[2]) < 200
    assert lines[-1] == "1 passed, 0 failed, 1 warned, 0 skipped"


def test_the_markdown_section_comes_from_checks_json(tmp_path: Path) -> None:
    assert preflight_markdown(tmp_path) == ""  # no checks.json: no section
    r = report(Status.PASS, Status.FAIL)
    r.add([Check("pipe", Status.WARN, "a | b")])
    (tmp_path / CHECKS_JSON).write_text(r.to_json())
    text = preflight_markdown(tmp_path)
    assert "## Preflight checks" in text and "| FAIL | c1 |" in text and "a / b" in text
    assert markdown_table({"tests": []}) == []
    (tmp_path / CHECKS_JSON).write_text("{not json")
    assert preflight_markdown(tmp_path) == ""
