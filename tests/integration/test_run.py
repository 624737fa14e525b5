"""Real headless Locust runs against the reference target on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from inferswarm.emulator.launcher import ReferenceTarget
from inferswarm.rundir import REQUEST_COLUMNS
from tests.conftest import REPO, base_config
from tests.integration.runs import aggregated_history, inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

StartTarget = Callable[[dict[str, Any]], ReferenceTarget]
SLOW_100MS = {"service_time": {"distribution": "fixed", "mean_ms": 100}, "gpu": True}
TWO_SLOTS = {
    "slots": 2,
    "queue_depth": 0,
    "capabilities": {name: SLOW_100MS for name in ("text-to-image", "prompt-enhance", "gpu-check")},
}


def seed_000_config(target: ReferenceTarget, **load: Any) -> dict[str, Any]:
    ramp = {"shape": "ramp", "step_users": 2, "step_duration_s": 2, "max_users": 6, "per_user_rps": 10}
    ramp.update(load)
    return base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=[
            {
                "name": "text-to-image",
                "kind": "json",
                "path": "/text-to-image",
                "params": {"prompt": "a cat"},
            },
            {
                "name": "prompt-enhance",
                "kind": "json",
                "path": "/prompt-enhance",
                "params": {"prompt": "a dog"},
            },
            {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "t"}},
        ],
        load=ramp,
    )


def test_headless_ramp_run(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TWO_SLOTS)
    config = write_config(seed_000_config(target))
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    assert f"results in {run_dir}" in stdout
    assert run_dir.name.endswith("-t")

    # Every capability sent requests, under its fixed stats name.
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    capabilities = {"text-to-image", "prompt-enhance", "gpu-check"}
    # Each with its success-latency entry holding its successes exactly, where it had any. Each user
    # runs one capability (one user class each), so the third capability's user first spawns at 4 users
    # on 2 slots and may see nothing but 503s (61 of 61 on a busy CI machine): no entry is then right.
    assert (
        capabilities | {"Aggregated"}
        <= set(stats)
        <= capabilities | {f"{c}:ok" for c in capabilities} | {"Aggregated"}
    )
    assert all(int(r["Request Count"]) > 0 for r in stats.values())
    for c in capabilities:
        successes = int(stats[c]["Request Count"]) - int(stats[c]["Failure Count"])
        ok = stats.get(f"{c}:ok")
        assert (int(ok["Request Count"]) if ok else 0) == successes, c
        assert ok is None or ok["Type"] == "success"
    assert sum(f"{c}:ok" in stats for c in capabilities) >= 2  # the first step's two users never fail

    # The recorded stages are the configured steps, each about its planned length.
    stages = read_csv(run_dir / "locust_stages.csv")
    assert [(s["users"], s["completed"]) for s in stages] == [("2", "true"), ("4", "true"), ("6", "true")]
    for stage in stages:
        assert 1.0 <= float(stage["end_epoch_s"]) - float(stage["start_epoch_s"]) <= 3.5

    # The history's user count climbs in the configured steps and never goes down.
    history = aggregated_history(run_dir)
    users = [int(r["User Count"]) for r in history]
    assert users == sorted(users)
    assert {2, 4, 6} <= set(users) <= {0, 2, 4, 6}

    # Capacity failures only once users exceed the 2 slots, and labelled as capacity.
    step2_start = float(stages[1]["start_epoch_s"])
    before = [r for r in history if int(r["Timestamp"]) < step2_start - 0.5]
    assert before and all(int(r["Total Failure Count"]) == 0 for r in before)
    failures = read_csv(run_dir / "locust_failures.csv")
    assert failures and {f["Error"] for f in failures} == {"capacity: HTTP 503"}
    assert int(stats["Aggregated"]["Failure Count"]) == sum(int(f["Occurrences"]) for f in failures) > 0
    target_stats = target.stats()
    assert target_stats is not None
    # Locust drops the requests its users had in flight when the shape stopped them; the target saw them.
    unreported = target_stats["gpu"]["rejected"] - int(stats["Aggregated"]["Failure Count"])
    assert 0 <= unreported <= 6

    run = read_json(run_dir / "run.json")
    assert (run["status"], run["exit_code"], run["mode"], run["headless"]) == ("completed", 0, "local", True)
    assert run["name"] == "t" and run["config"]["load"]["max_users"] == 6
    assert run["target"] == target.url and run["planned_duration_s"] == 6
    assert run["start_epoch_s"] <= float(stages[0]["start_epoch_s"]) < float(stages[-1]["end_epoch_s"])
    assert float(stages[-1]["end_epoch_s"]) <= run["end_epoch_s"]
    assert run["duration_s"] == pytest.approx(run["end_epoch_s"] - run["start_epoch_s"], abs=0.01)
    assert run["versions"]["locust"] and run["versions"]["inferswarm"] == "0.1.0"
    assert all((run_dir / name).is_file() for name in run["files"].values())
    assert (run_dir / "locust_report.html").stat().st_size > 1000

    # The request log: one row per request Locust counted, exactly the response times it was given
    # (its stats keep their own rounding); the stream it was written as is gone once it became Parquet.
    log = pq.read_table(run_dir / "locust_requests.parquet")
    assert log.column_names == REQUEST_COLUMNS
    assert log.num_rows == int(stats["Aggregated"]["Request Count"])
    assert "requests" in run["files"] and "requests_stream" not in run["files"]
    assert not (run_dir / "locust_requests.arrows").exists()
    by_name = Counter(log.column("capability").to_pylist())
    assert by_name == {c: int(stats[c]["Request Count"]) for c in capabilities}
    failed = [r for r in log.select(["ok", "category", "status"]).to_pylist() if not r["ok"]]
    assert len(failed) == int(stats["Aggregated"]["Failure Count"])
    assert {(r["category"], r["status"]) for r in failed} == {("capacity", 503)}
    assert set(log.column("node").to_pylist()) == {"local"}
    response = log.column("response_ms").to_pylist()
    served = [ms for ms, ok in zip(response, log.column("ok").to_pylist(), strict=True) if ok]
    assert min(served) >= 100  # the target's fixed 100 ms (a 503 is answered at once)
    assert max(response) == pytest.approx(float(stats["Aggregated"]["Max Response Time"]), abs=1)
    results = read_json(run_dir / "results.json")
    assert results["latency_source"] == "request_log"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_keeps_complete_outputs(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path, signum: int
) -> None:
    target = start_target(TWO_SLOTS)
    config = write_config(seed_000_config(target, step_duration_s=20, max_users=10))
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dirs = list(out.glob("*/locust_stats_history.csv")) if out.exists() else []
        if dirs and len(aggregated_history(dirs[0].parent)) >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the run never wrote its stats history")
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == 0

    run_dir = only_run_dir(out)
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert len(aggregated_history(run_dir)) >= 2
    stages = read_csv(run_dir / "locust_stages.csv")
    assert stages[-1]["completed"] == "false"  # the 20 s step was cut short
    run = read_json(run_dir / "run.json")
    assert run["status"] == "interrupted" and run["exit_code"] == 0
    assert run["ended_at"] and run["duration_s"] < 20


def test_misspelt_key_exits_2_with_one_line(write_config: Callable[..., Path], tmp_path: Path) -> None:
    data = base_config()
    data["load"]["step_user"] = data["load"].pop("step_users")
    config = write_config(data)
    proc = inferswarm("run", str(config), "--out", str(tmp_path / "results"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert stderr.strip().splitlines() == [
        f"inferswarm: {config}: load.step_user: unknown key 'step_user' (did you mean 'step_users'?)"
    ]
    assert not (tmp_path / "results").exists()


def test_plain_locust_with_env_config(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TWO_SLOTS)
    data = seed_000_config(target, step_duration_s=1, max_users=2)
    data["output"] = {"request_log": False}
    config = write_config(data)
    prefix = tmp_path / "manual" / "locust"
    env = {**os.environ, "INFERSWARM_CONFIG": str(config)}
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfiles" / "capabilities.py"), "--headless"]
    cmd += ["--csv", str(prefix), "--csv-full-history", "text-to-image", "gpu-check"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {r["Name"] for r in read_csv(prefix.parent / "locust_stats.csv")}
    # user classes picked by capability name (each with its success-latency entry)
    assert names == {"text-to-image", "gpu-check", "text-to-image:ok", "gpu-check:ok", "Aggregated"}
    assert [s["users"] for s in read_csv(prefix.parent / "locust_stages.csv")] == ["2"]
    run = read_json(prefix.parent / "run.json")
    assert run["status"] == "completed"
    # the request log switched off: no file, none listed
    assert not list(prefix.parent.glob("locust_requests.*"))
    assert not {"requests", "requests_stream"} & set(run["files"])


def test_plain_locust_bad_config_exits_2(write_config: Callable[..., Path]) -> None:
    config = write_config(base_config(capabilities=[{"name": "a", "kind": "grpc", "path": "/a"}]))
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfiles" / "capabilities.py"), "--headless"]
    cmd += ["--inferswarm-config", str(config)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"inferswarm: {config}: capabilities[0].kind: unknown kind 'grpc'; "
        "valid: 'byoc', 'groundlight', 'json', 'livepeer', 'multipart', 'openai', 'tensor'"
    )
    assert "Traceback" not in result.stderr


def test_secret_token_is_sent_but_never_written(
    start_target: StartTarget,
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "tok-7f3a9c1e-never-log-me"
    monkeypatch.setenv("TEST_TARGET_TOKEN", token)
    target = start_target({**TWO_SLOTS, "slots": 8, "auth_token_env": "TEST_TARGET_TOKEN"})
    data = seed_000_config(target, step_duration_s=1, max_users=2)
    data["target"]["secret_headers"] = [{"header": "Authorization", "env": "RUN_TOKEN", "prefix": "Bearer "}]
    config = write_config(data)
    out = tmp_path / "results"

    proc = inferswarm(
        "run", str(config), "--out", str(out), "--", "--loglevel", "DEBUG", env={"RUN_TOKEN": token}
    )
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0  # the token reached the target: no 401s
    assert token not in stdout and token not in stderr
    for path in run_dir.iterdir():
        assert token not in path.read_text(errors="replace"), path.name

    # Without the token the same target answers 401, classified as a client error.
    wrong = inferswarm("run", str(config), "--out", str(tmp_path / "wrong"), env={"RUN_TOKEN": "nope"})
    wrong.communicate(timeout=60)
    failures = read_csv(only_run_dir(tmp_path / "wrong") / "locust_failures.csv")
    assert {f["Error"] for f in failures} == {"client_error: HTTP 401"}


def _success_rate(history: list[dict[str, str]], start: float, end: float) -> float:
    rows = [r for r in history if start <= int(r["Timestamp"]) <= end]
    assert len(rows) >= 3, rows
    first, last = rows[0], rows[-1]
    ok = lambda r: int(r["Total Request Count"]) - int(r["Total Failure Count"])  # noqa: E731
    return (ok(last) - ok(first)) / (int(last["Timestamp"]) - int(first["Timestamp"]))


def test_throughput_flattens_at_simulated_capacity(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # 2 slots x 100 ms = at most 20 successful requests/s. Stage 1 offers 10/s, stage 2 offers 40/s.
    # A small queue keeps both slots busy (with none, Erlang loss would carry only ~40 % of 40/s).
    target = start_target({"slots": 2, "queue_depth": 2, "capabilities": {"prompt-enhance": SLOW_100MS}})
    data = seed_000_config(target)
    data["capabilities"] = data["capabilities"][1:2]
    data["load"] = {
        "shape": "stages",
        "per_user_rps": 5,
        "stages": [{"duration_s": 5, "users": 2}, {"duration_s": 8, "users": 8}],
    }
    out = tmp_path / "results"
    proc = inferswarm("run", str(write_config(data)), "--out", str(out))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    stages = read_csv(run_dir / "locust_stages.csv")
    history = aggregated_history(run_dir)
    below = _success_rate(history, float(stages[0]["start_epoch_s"]) + 1, float(stages[0]["end_epoch_s"]))
    above = _success_rate(history, float(stages[1]["start_epoch_s"]) + 2, float(stages[1]["end_epoch_s"]))
    assert 7 <= below <= 13  # tracks the offered 10/s
    assert 14 <= above <= 24  # capped near 20/s although 40/s is offered
    assert above / below < 2.8  # four times the load, nowhere near four times the throughput
    failures = read_csv(run_dir / "locust_failures.csv")
    assert {f["Error"] for f in failures} == {"capacity: HTTP 503"}


def test_a_typo_in_a_user_class_after_dashdash_is_one_line_and_no_run_directory(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(base_config())
    out = tmp_path / "results"
    # --no-preflight: nothing listens at base_config's target, and a failed preflight (exit 1, its run
    # directory kept) would stop the run before Locust could refuse its input
    proc = inferswarm("run", str(config), "--out", str(out), "--no-preflight", "--", "text-to-imag")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert stderr.strip().splitlines() == [
        f"inferswarm: {config}: user classes after --: no capability named 'text-to-imag' "
        "(did you mean 'text-to-image'?)"
    ]
    assert "report:" not in stdout
    assert not out.exists() or not any(out.iterdir())


def test_help_after_dashdash_is_locusts_help_and_no_run_directory(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(base_config())
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out), "--", "--help")
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "Usage: locust" in stdout
    assert not out.exists()


def test_a_run_against_nothing_listening_has_no_verdict_and_exits_4(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from inferswarm.emulator.launcher import free_port

    closed = f"http://127.0.0.1:{free_port()}"  # bound a moment ago, closed now: nothing listens
    config = write_config(base_config(target={"base_url": closed, "request_timeout_s": 2}))
    out = tmp_path / "results"
    # --no-preflight: its connect check would stop the run before any request (exit 1); here the load
    # itself meets nothing
    proc = inferswarm("run", str(config), "--out", str(out), "--no-report", "--no-preflight")
    proc.communicate(timeout=90)
    assert proc.returncode == 0  # --no-report: no verdict asked for
    run_dir = only_run_dir(out)
    report = inferswarm("report", str(run_dir), "--no-png")
    stdout, _ = report.communicate(timeout=120)
    assert report.returncode == 4, stdout
    assert "unreachable" in stdout and "saturation at" not in stdout
    proc = inferswarm("run", str(config), "--out", str(tmp_path / "again"), "--no-preflight")
    proc.communicate(timeout=120)
    assert proc.returncode == 4  # `run` passes the report's verdict on
