"""Nothing keeps running and nothing is lost when `inferswarm run` itself is killed, hung up on, or
interrupted twice: its Locust child and its reference target die with it, and run.json says why."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import psutil
import pytest

from tests.conftest import base_config
from tests.integration.runs import aggregated_history, inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

LONG_STEP = {"shape": "ramp", "step_users": 2, "step_duration_s": 30, "max_users": 4, "per_user_rps": 5}


def start_run(write_config: Callable[..., Path], out: Path, *extra: str) -> Popen[str]:
    config = write_config(base_config(load=LONG_STEP))
    proc = inferswarm("run", str(config), "--out", str(out), "--serve-target", *extra)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(out.glob("*/locust_stats_history.csv")) if out.exists() else []
        if found and len(aggregated_history(found[0].parent)) >= 2:
            return proc
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the run never wrote its stats history")


def children(proc: Popen[str]) -> list[psutil.Process]:
    found = psutil.Process(proc.pid).children(recursive=True)
    assert len(found) >= 2, found  # the Locust child and the reference target
    return found


def test_killing_the_parent_stops_the_load_and_the_target(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    proc = start_run(write_config, out)
    kids = children(proc)
    proc.kill()  # SIGKILL: no handler of the parent runs
    proc.communicate(timeout=30)
    _, alive = psutil.wait_procs(kids, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, [p.cmdline() for p in alive]
    run_dir = only_run_dir(out)
    run = read_json(run_dir / "run.json")
    assert run["status"] == "interrupted" and run["parent_lost"] is True
    assert run["duration_s"] < 30  # not the whole plan
    stages = read_csv(run_dir / "locust_stages.csv")
    assert [s["completed"] for s in stages] == ["false"]


def test_a_hang_up_stops_the_run_like_sigterm_and_run_json_says_so(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    proc = start_run(write_config, out)
    kids = children(proc)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=90)
    assert proc.returncode == 0
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive
    run_dir = only_run_dir(out)
    run = read_json(run_dir / "run.json")
    assert (run["status"], run["parent_signal"], run["stop_signal"]) == ("interrupted", "SIGHUP", "SIGHUP")
    assert read_csv(run_dir / "locust_stages.csv")[-1]["completed"] == "false"
    assert (run_dir / "report.html").is_file()  # the report still ran, with no terminal to print to


def test_a_second_ctrl_c_does_not_cut_the_writing_short(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    proc = start_run(write_config, out, "--no-report")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopping; Locust is writing its results" in stdout
    run_dir = only_run_dir(out)
    run = read_json(run_dir / "run.json")
    assert (run["status"], run["exit_code"], run["stop_signal"]) == ("interrupted", 0, "SIGINT")
    assert [s["completed"] for s in read_csv(run_dir / "locust_stages.csv")] == ["false"]
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    assert int(stats["Aggregated"]["Request Count"]) > 0
