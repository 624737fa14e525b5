"""`inferswarm run` reports at the end: the knee of a target with known capacity is where it really is,
and a failed SLO gate makes the run exit 3."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from inferswarm.emulator.launcher import ReferenceTarget
from inferswarm.report.results import read_results
from tests.conftest import REPO, base_config
from tests.integration.runs import inferswarm, only_run_dir

pytestmark = pytest.mark.integration

# 2 slots x 100 ms fixed = 20 successful requests/s at most. Slots + queue = 4: up to 4 users can never be
# refused (each has at most one request in flight), while 6 users offering 24 req/s must be (503s), so the
# saturation step is decided by failures, not by a throughput gain near the rule's threshold.
TARGET = {
    "slots": 2,
    "queue_depth": 2,
    "capabilities": {
        "prompt-enhance": {"service_time": {"distribution": "fixed", "mean_ms": 100}, "gpu": True}
    },
}


def test_run_reports_the_knee_and_fails_its_gate(
    start_target: Callable[[dict[str, Any]], ReferenceTarget],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    target = start_target(TARGET)
    config = base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=[
            {"name": "prompt-enhance", "kind": "json", "path": "/prompt-enhance", "params": {"prompt": "a"}}
        ],
        # offered: 8, 16, 24, 32 req/s against a capacity of 20
        load={"shape": "ramp", "step_users": 2, "step_duration_s": 4, "max_users": 8, "per_user_rps": 4},
        slo=["prompt-enhance: p95_ms < 5000", "p50_ms < 1"],
        report={"warmup_s": 1},
    )
    out = tmp_path / "results"
    proc = inferswarm("run", str(write_config(config)), "--out", str(out))
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 3, stderr[-3000:]  # the run worked; the p50 gate did not hold
    run_dir = only_run_dir(out)
    assert (
        "report: SLO FAIL p50_ms < 1" in stdout and "report: SLO PASS prompt-enhance: p95_ms < 5000" in stdout
    )
    for name in ("report.html", "results.json", "summary.md"):
        assert (run_dir / name).stat().st_size > 0
    if shutil.which("chromium"):
        assert (run_dir / "per_step.png").read_bytes()[:4] == b"\x89PNG"

    results = json.loads((run_dir / "results.json").read_text())
    # a real run's results.json is what docs/results.schema.json describes, and reads back unchanged
    jsonschema.validate(results, json.loads((REPO / "docs" / "results.schema.json").read_text()))
    assert read_results(run_dir / "results.json").model_dump(mode="json") == results
    steps = results["steps"]
    assert [s["users"] for s in steps] == [2, 4, 6, 8] and all(s["exact"] for s in steps)
    # a ramp's steps are placed by users
    assert results["step_axis"]["label"] == "users" and [s["level"] for s in steps] == [2, 4, 6, 8]
    # below capacity the target serves what is offered...
    assert 6.5 <= steps[0]["success_rps"] <= 9.5 and 13 <= steps[1]["success_rps"] <= 18.5
    # ...above it, successful throughput stays near 20/s
    assert all(s["success_rps"] <= 22 for s in steps[2:])
    # the first step offered more than capacity is the saturation point; the knee is the one before
    assert results["saturation"]["users"] == 6 and results["saturation"]["knee_users"] == 4
    assert results["slo"]["passed"] is False
    assert results["summary"]["prompt-enhance"]["status_codes"]["200"] > 0
    # the headline latency is of successful requests: a fixed 100 ms service, however fast the 503s were
    assert results["measurement"]["valid"] is True
    for s in steps:
        assert s["latency_of"] == "successful" and s["p50_ms"] >= 100, s
        assert s["all_p50_ms"] <= s["p50_ms"]
    assert results["summary"]["prompt-enhance"]["p50_ms"] >= 100
    run = json.loads((run_dir / "run.json").read_text())
    assert run["files"]["steps"] == "locust_steps.csv"


def test_unreachable_target_is_no_measurement(write_config: Callable[..., Path], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base_config(
        target={"base_url": f"http://127.0.0.1:{port}", "request_timeout_s": 2},
        load={"shape": "ramp", "step_users": 1, "step_duration_s": 3, "max_users": 2, "per_user_rps": 5},
        report={"warmup_s": 0},
    )
    out = tmp_path / "results"
    # --no-preflight: its connect check would stop the run before the load meets nothing (exit 1)
    proc = inferswarm("run", str(write_config(config)), "--out", str(out), "--no-report", "--no-preflight")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    report = inferswarm("report", str(only_run_dir(out)), "--no-png")
    stdout, stderr = report.communicate(timeout=120)
    assert report.returncode == 4, stdout[-3000:] + stderr[-3000:]
    assert "report: no valid measurement: target unreachable: 100.0% of" in stdout
    assert "saturation at" not in stdout
    results = read_results(only_run_dir(out) / "results.json")
    assert results.saturation is None and results.measurement is not None
    assert results.measurement.target_unreachable
