"""scripts/compose-smoke's check of the run directory a compose run leaves on the host (the script itself
runs in CI against a real engine): it passes a healthy run and names what is wrong in a broken one."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_smoke", REPO / "scripts" / "compose_smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_smoke"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


smoke = load_script()
WORKERS = ["worker@vm/8-4026532188", "worker@vm/8-4026532192"]


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_dir(
    tmp: Path, *, failures: Sequence[tuple[str, str, int]] = (), nodes: Sequence[str] = WORKERS
) -> Path:
    """What a headless compose master leaves: run.json, the CSVs the check reads, the report files."""
    folder = tmp / "results" / "20261207T230412Z-demo"
    folder.mkdir(parents=True)
    joined = [{"node": node, "requests": 100, "failures": 0} for node in WORKERS]
    record = {"mode": "master", "status": "completed", "headless": True, "target": "http://127.0.0.1:8000"}
    (folder / "run.json").write_text(json.dumps({**record, "workers": {"joined": joined}}))
    failed = sum(n for _, _, n in failures)
    write_csv(
        folder / "locust_stats.csv", [{"Name": "Aggregated", "Request Count": 200, "Failure Count": failed}]
    )
    write_csv(
        folder / "locust_failures.csv",
        [{"Method": "POST", "Name": name, "Error": error, "Occurrences": n} for name, error, n in failures],
        ["Method", "Name", "Error", "Occurrences"],
    )
    telemetry = [
        {"node": node, "device": "host", "metric": metric, "value": 10}
        for node, metric in [
            ("master@vm", "process_cpu_pct"),
            ("agent@vm", "cpu_util_pct"),
            ("target", "gpu_count"),
        ]
        + [(node, "process_cpu_pct") for node in nodes]
    ]
    write_csv(folder / "locust_telemetry.csv", telemetry)
    (folder / "results.json").write_text(json.dumps({"steps": [{"rps": 20.0, "success_rps": 19.5}]}))
    for name in ("report.html", "summary.md"):
        (folder / name).write_text("x")
    return folder


def test_a_healthy_run_passes(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, failures=[("gpu-check", "capacity: HTTP 503", 3)])
    outcome = smoke.check_run_dir(folder.parent, 2, owner=folder.stat().st_uid)
    assert outcome.problems == [] and outcome.rps == 19.5
    assert any("requests: 200, failures: 3" in line for line in outcome.lines)


def test_failures_other_than_the_targets_answers_fail_and_are_summed_over_names(tmp_path: Path) -> None:
    failures = [
        ("gpu-check", "ConnectionRefusedError(111)", 2),
        ("chat", "ConnectionRefusedError(111)", 5),
        ("chat", "capacity: HTTP 503", 4),
    ]
    outcome = smoke.check_run_dir(run_dir(tmp_path, failures=failures).parent, 2)
    assert outcome.problems == [
        "locust_failures.csv: failures that are not the target's answers: {'ConnectionRefusedError(111)': 7}"
    ]


def test_a_missing_worker_node_and_a_wrong_worker_count_are_named(tmp_path: Path) -> None:
    outcome = smoke.check_run_dir(run_dir(tmp_path, nodes=WORKERS[:1]).parent, 2)
    assert len(outcome.problems) == 1 and "expected the master, 2 workers" in outcome.problems[0]
    outcome = smoke.check_run_dir(run_dir(tmp_path / "b").parent, 3)
    assert outcome.problems[0] == "run.json: 2 worker(s) joined, expected 3"


def test_an_interrupted_run_must_say_so_and_files_of_another_owner_are_named(tmp_path: Path) -> None:
    folder = run_dir(tmp_path)
    problems = smoke.check_run_dir(folder.parent, 2, "interrupted", owner=folder.stat().st_uid + 1).problems
    assert (
        problems[0]
        == "run.json: mode/status/headless master/completed/True, expected master/interrupted/True"
    )
    assert problems[1].startswith(f"owned by another user than {folder.stat().st_uid + 1} (RUN_AS)")
    # a web-mode check of a headless run
    problems = smoke.check_run_dir(folder.parent, 2, headless=False).problems
    assert problems == [
        "run.json: mode/status/headless master/completed/True, expected master/completed/False"
    ]


@pytest.mark.parametrize("found", [0, 2])
def test_anything_but_one_run_directory_fails(tmp_path: Path, found: int) -> None:
    for i in range(found):
        run_dir(tmp_path / str(i))
        (tmp_path / str(i) / "results" / "20261207T230412Z-demo").rename(tmp_path / f"run{i}")
    (tmp_path / "only").mkdir()
    outcome = smoke.check_run_dir(tmp_path, 2)
    assert outcome.problems == [f"{tmp_path}: expected one run directory, found {found}"]
