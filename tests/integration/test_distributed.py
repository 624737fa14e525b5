"""Distributed runs with real processes on loopback: `inferswarm run --master` and two `--worker`s.

Each test starts the reference target, one master and its workers as separate `inferswarm run`
processes (each wrapping its own Locust process), and reads what the master alone wrote.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from inferswarm.emulator.launcher import ReferenceTarget, free_port
from inferswarm.requests_file import StreamFile
from tests.conftest import REPO, base_config
from tests.integration.runs import aggregated_history, inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

StartTarget = Callable[[dict[str, Any]], ReferenceTarget]
FAST = {"service_time": {"distribution": "fixed", "mean_ms": 5}}
TARGET = {
    "slots": 16,
    "capabilities": {
        "openai": {"ttft_ms": 60, "token_delay_ms": 5, "output_tokens": 8},
        "gpu-check": FAST,
    },
}
# Produced by every run with telemetry on; the report adds the rest.
RUN_FILES = {
    "run.json",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "locust_stages.csv",
    "locust_steps.csv",
    "locust_step_latency.csv",
    "locust_status_codes.csv",
    "locust_telemetry.csv",
    "locust_requests.parquet",
    "locust_report.html",
    "report.html",
    "results.json",
    "summary.md",
}


def llm_config(target: ReferenceTarget, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=[
            {
                "name": "chat",
                "kind": "openai",
                "api": "chat",
                "model": "m",
                "params": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
            },
            {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "t"}},
        ],
        load={"shape": "stages", "per_user_rps": 4, "stages": stages},
        telemetry={"interval_s": 0.5},
    )


class Cluster:
    """One `inferswarm run --master` and its `--worker`s, all on 127.0.0.1; everything is stopped at exit."""

    def __init__(self, config: Path, out: Path, workers: int, report: bool) -> None:
        self.config = config
        self.out = out
        self.port = free_port()
        self.master = inferswarm(
            "run",
            str(config),
            "--master",
            "--expect-workers",
            str(workers),
            "--master-bind-host",
            "127.0.0.1",
            "--master-port",
            str(self.port),
            "--worker-wait",
            "60",
            "--out",
            str(out),
            *([] if report else ["--no-report"]),
        )
        self.workers: list[subprocess.Popen[str]] = []

    def worker(self, config: Path | None = None, *args: str, env: dict[str, str] | None = None) -> Any:
        proc = inferswarm(
            "run",
            str(config or self.config),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(self.port),
            *args,
            env=env,
        )
        self.workers.append(proc)
        return proc

    def run_dir(self, timeout_s: float = 30) -> Path:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = list(self.out.glob("*/run.json")) if self.out.exists() else []
            if found:
                return found[0].parent
            time.sleep(0.1)
        raise AssertionError("the master wrote no run directory")

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.master.poll() is not None:
                raise AssertionError(
                    f"the master ended before {what}: {self.master.communicate()[1][-3000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for proc in [self.master, *self.workers]:
            for child in locust_children(proc):
                child.kill()
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def locust_children(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The Locust process an `inferswarm run` started (its own session, so found by parentage)."""
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(config: Path, workers: int = 2, report: bool = False) -> Cluster:
        made.append(Cluster(config, tmp_path / "results", workers, report))
        return made[-1]

    yield make
    for c in made:
        c.stop()


def under_way(run_dir: Path, seconds: int) -> Callable[[], bool]:
    """True once the master's history has `seconds` rows with users and requests, so every worker has
    sent at least one report with its users (workers report every 3 s)."""

    def check() -> bool:
        if not (run_dir / "locust_stats_history.csv").exists():
            return False
        rows = aggregated_history(run_dir)
        return sum(int(r["User Count"]) > 0 and int(r["Total Request Count"]) > 0 for r in rows) >= seconds

    return check


def rows_by_name(run_dir: Path) -> dict[str, dict[str, str]]:
    return {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}


def test_master_merges_requests_derived_stats_stages_and_telemetry_of_two_workers(
    start_target: StartTarget,
    write_config: Callable[..., Path],
    cluster: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    target = start_target(TARGET)
    data = llm_config(target, [{"duration_s": 3, "users": 4}, {"duration_s": 3, "users": 8}])
    # where a worker would put a run directory if it made one (the master is given --out)
    data["output"] = {"dir": str(tmp_path / "worker-side")}
    config = write_config(data)
    c = cluster(config, 2, report=True)
    workers = [c.worker(), c.worker()]
    c.wait_for(lambda: all(locust_children(w) for w in workers), 30, "the workers' Locust processes")
    pids = sorted(p.pid for w in workers for p in locust_children(w))
    stdout, stderr = c.master.communicate(timeout=120)
    assert c.master.returncode == 0, stderr[-3000:]
    for worker in workers:
        w_out, w_err = worker.communicate(timeout=30)
        assert worker.returncode == 0, w_err[-2000:]
        assert "accepted this worker" in w_err and "results are written by the master" in w_out
    run_dir = only_run_dir(c.out)
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    assert not (tmp_path / "worker-side").exists()  # only the master writes

    # Request counts: the master's totals are exactly the sum of what each worker reported.
    run = read_json(run_dir / "run.json")
    assert (run["mode"], run["status"], run["exit_code"]) == ("master", "completed", 0)
    joined = run["workers"]["joined"]
    assert sorted(w["pid"] for w in joined) == pids
    stats = rows_by_name(run_dir)
    aggregated = int(stats["Aggregated"]["Request Count"])
    assert all(w["requests"] > 20 for w in joined), joined
    assert sum(w["requests"] for w in joined) == aggregated
    assert int(stats["chat"]["Request Count"]) + int(stats["gpu-check"]["Request Count"]) == aggregated
    # Every request in the request log, each under the Locust client id of the worker that sent it.
    log = pq.read_table(run_dir / "locust_requests.parquet", columns=["node", "capability"])
    assert log.num_rows == aggregated
    by_node = Counter(log.column("node").to_pylist())
    assert by_node == {w["id"]: w["requests"] for w in joined}
    assert Counter(log.column("capability").to_pylist())["chat"] == int(stats["chat"]["Request Count"])
    served = target.stats()
    assert served is not None

    # Derived statistics from both workers are merged: one TTFT sample per finished stream.
    chat_ok = int(stats["chat"]["Request Count"]) - int(stats["chat"]["Failure Count"])
    assert int(stats["chat:ttft"]["Request Count"]) == chat_ok > 20
    assert 60 <= float(stats["chat:ttft"]["Median Response Time"]) < 130  # ttft_ms: 60
    assert stats["chat:output_tokens"]["Average Response Time"].startswith("8")

    # The master's shape recorded both stages; the user count reached 8 across the two workers.
    stages = read_csv(run_dir / "locust_stages.csv")
    assert [(s["users"], s["completed"]) for s in stages] == [("4", "true"), ("8", "true")]
    assert max(int(r["User Count"]) for r in aggregated_history(run_dir)) == 8

    # Telemetry from three nodes: the master and both workers.
    nodes = {r["node"] for r in read_csv(run_dir / "locust_telemetry.csv")}
    assert {w["node"] for w in joined} | {n for n in nodes if n.startswith("master@")} == nodes
    assert len(nodes) == 3

    results = read_json(run_dir / "results.json")
    assert results["workers"]["joined"] == 2 and results["workers"]["lost"] == []
    assert results["pipelines"]["chat"]["ttft_ms"]["p50"] >= 60
    assert "2 worker(s) joined" in (run_dir / "summary.md").read_text()
    assert f"results in {run_dir}" in stdout


def test_a_master_splits_the_offered_rate_so_its_workers_send_it_together(
    start_target: StartTarget, write_config: Callable[..., Path], cluster: Callable[..., Cluster]
) -> None:
    target = start_target(TARGET)
    data = base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=[
            {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "t"}}
        ],
        load={
            "shape": "rate",
            "arrival": "constant",
            "stages": [{"duration_s": 5, "rps": 40}],
            "max_concurrency": 8,
        },
        telemetry={"enabled": False},
    )
    c = cluster(write_config(data), 2)
    workers = [c.worker(), c.worker()]
    _, stderr = c.master.communicate(timeout=90)
    assert c.master.returncode == 0, stderr[-3000:]
    for worker in workers:
        worker.communicate(timeout=30)
    run_dir = only_run_dir(c.out)
    [stage] = read_csv(run_dir / "locust_stages.csv")
    seconds = float(stage["end_epoch_s"]) - float(stage["start_epoch_s"])
    joined = read_json(run_dir / "run.json")["workers"]["joined"]
    # each worker sent about half, and together the offered rate over the stage
    assert len(joined) == 2 and all(abs(w["requests"] / seconds - 20) < 2 for w in joined), (
        seconds,
        [(w["requests"], w.get("failures")) for w in joined],
        read_json(run_dir / "run.json").get("schedule"),
    )
    requests = int(rows_by_name(run_dir)["Aggregated"]["Request Count"])
    assert requests / seconds == pytest.approx(40, rel=0.03)
    served = target.stats()
    # the target may also have seen a request still in flight when the users were stopped (uncounted)
    assert served is not None and requests <= served["requests"]["gpu-check"] <= requests + 8


def test_worker_killed_mid_run_is_recorded_and_the_run_completes(
    start_target: StartTarget, write_config: Callable[..., Path], cluster: Callable[..., Cluster]
) -> None:
    target = start_target(TARGET)
    # Long enough that a loss noticed late (Locust marks a worker missing after 3 silent heartbeats; a
    # busy machine adds seconds) still leaves seconds of the survivor carrying all 6 users.
    config = write_config(llm_config(target, [{"duration_s": 20, "users": 6}]))
    c = cluster(config, 2, report=True)
    victim, survivor = c.worker(), c.worker()
    run_dir = c.run_dir()
    c.wait_for(under_way(run_dir, 4), 40, "the run to be under way")
    (locust_worker,) = locust_children(victim)
    killed_at = time.time()
    locust_worker.kill()
    _, stderr = c.master.communicate(timeout=90)
    assert c.master.returncode == 0, stderr[-3000:]
    survivor.communicate(timeout=30)
    assert victim.wait(10) == 128 + signal.SIGKILL

    run = read_json(run_dir / "run.json")
    assert run["status"] == "completed"
    (lost,) = run["workers"]["lost"]
    assert lost["pid"] == locust_worker.pid and lost["users"] == 3
    # Silent from its last heartbeat (at most a second before the kill), noticed a few seconds later.
    assert killed_at - 1.5 <= lost["last_seen_epoch_s"] <= killed_at + 0.1
    assert 0 < lost["detected_epoch_s"] - killed_at < 10
    assert lost["t_s"] == pytest.approx(lost["last_seen_epoch_s"] - run["test_start_epoch_s"], abs=0.01)
    # The survivor took the lost users over: the run ends with all 6 users on one worker.
    history = aggregated_history(run_dir)
    after = [int(r["User Count"]) for r in history if int(r["Timestamp"]) > lost["detected_epoch_s"] + 2]
    assert 6 in after and set(after) <= {6, 0}, (after, lost, stderr[-6000:])  # 0: the shape's end
    assert read_csv(run_dir / "locust_stages.csv")[0]["completed"] == "true"
    stats = rows_by_name(run_dir)
    assert int(stats["Aggregated"]["Request Count"]) == sum(w["requests"] for w in run["workers"]["joined"])

    results = read_json(run_dir / "results.json")
    assert [w["node"] for w in results["workers"]["lost"]] == [lost["node"]]
    summary = (run_dir / "summary.md").read_text()
    assert f"**Lost** {lost['node']}" in summary and "with 3 users" in summary
    # the throughput figure marks it (plotly's JSON writes "/" as \u002f)
    marker = f"worker lost: {lost['node']}".replace("/", "\\u002f")
    assert marker in (run_dir / "report.html").read_text()


def test_sigterm_to_the_master_leaves_complete_outputs_and_ends_the_workers(
    start_target: StartTarget, write_config: Callable[..., Path], cluster: Callable[..., Cluster]
) -> None:
    target = start_target(TARGET)
    config = write_config(llm_config(target, [{"duration_s": 60, "users": 4}]))
    c = cluster(config, 2, report=True)
    workers = [c.worker(), c.worker()]
    run_dir = c.run_dir()
    c.wait_for(under_way(run_dir, 3), 40, "the run to be under way")
    c.master.send_signal(signal.SIGTERM)
    _, stderr = c.master.communicate(timeout=60)
    assert c.master.returncode == 0, stderr[-3000:]
    for worker in workers:
        _, w_err = worker.communicate(timeout=30)
        assert worker.returncode == 0 and "Got quit message from master" in w_err

    run = read_json(run_dir / "run.json")
    assert run["status"] == "interrupted" and run["duration_s"] < 60
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    stats = rows_by_name(run_dir)
    assert (
        int(stats["Aggregated"]["Request Count"]) == sum(w["requests"] for w in run["workers"]["joined"]) > 0
    )
    telemetry = (run_dir / "locust_telemetry.csv").read_text()
    assert telemetry.endswith("\n") and run["telemetry"]["rows"] == len(telemetry.splitlines()) - 1
    assert len({line.split(",")[1] for line in telemetry.splitlines()[1:]}) == 3
    assert read_csv(run_dir / "locust_stages.csv")[-1]["completed"] == "false"
    assert read_json(run_dir / "results.json")["summary"]["total"]["requests"] > 0


def test_workers_leave_by_themselves_when_the_master_dies(
    start_target: StartTarget, write_config: Callable[..., Path], cluster: Callable[..., Cluster]
) -> None:
    target = start_target(TARGET)
    config = write_config(llm_config(target, [{"duration_s": 60, "users": 2}]))
    c = cluster(config, 2)
    workers = [c.worker(None, "--master-timeout", "3"), c.worker(None, "--master-timeout", "3")]
    run_dir = c.run_dir()
    c.wait_for(under_way(run_dir, 2), 40, "the run to be under way")
    (locust_master,) = locust_children(c.master)
    locust_master.kill()
    killed_at = time.monotonic()
    for worker in workers:
        _, w_err = worker.communicate(timeout=30)
        assert worker.returncode == 1
        assert "no heartbeat from the master at 127.0.0.1" in w_err and "this worker exits" in w_err
    # 3 s of silence from the last heartbeat (at most 1 s before the kill), checked twice a second.
    assert time.monotonic() - killed_at < 3 + 3
    c.master.communicate(timeout=30)
    run = read_json(run_dir / "run.json")
    assert run["status"] == "killed" and run["ended_at"]  # filled in by the `inferswarm run` around it
    # The request log the dead master was appending to became Parquet, as at a clean end.
    parquet, stream = run_dir / "locust_requests.parquet", run_dir / "locust_requests.arrows"
    assert run["files"]["requests"] == parquet.name and pq.read_metadata(parquet).num_rows > 0
    if stream.exists():  # killed inside a batch: the stream stays beside the Parquet file
        left = StreamFile(stream)
        assert sum(b.num_rows for b in left.batches()) == pq.read_metadata(parquet).num_rows and left.cut
        assert run["files"]["requests_stream"] == stream.name
    else:
        assert "requests_stream" not in run["files"]


def test_workers_with_another_config_or_code_are_refused(
    start_target: StartTarget,
    write_config: Callable[..., Path],
    cluster: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    target = start_target(TARGET)
    # Longer than a worker's report interval (3 s): its counts reach the master during the run, not only
    # in a final report that may arrive after the master has written run.json.
    good = llm_config(target, [{"duration_s": 6, "users": 2}])
    config = write_config(good)
    other = write_config(
        {**good, "capabilities": [{**good["capabilities"][1], "params": {"agent_id": "x"}}]}, "b.yaml"
    )
    # The same version number, one changed file: a copy of the package on PYTHONPATH wins over the install.
    package = tmp_path / "pkg" / "inferswarm"
    shutil.copytree(REPO / "lib" / "inferswarm", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "slo.py").write_text((package / "slo.py").read_text() + "\n# changed\n")

    c = cluster(config, 1)
    wrong_config = c.worker(other)
    _, err = wrong_config.communicate(timeout=60)
    assert wrong_config.returncode == 2, err[-2000:]
    assert "refused this worker: capability 'chat' only on the master; capability 'gpu-check' differs" in err
    wrong_code = c.worker(None, env={"PYTHONPATH": str(tmp_path / "pkg")})
    _, err = wrong_code.communicate(timeout=60)
    assert wrong_code.returncode == 2, err[-2000:]
    assert "refused this worker: inferswarm code: master " in err

    good_worker = c.worker()
    _, stderr = c.master.communicate(timeout=60)
    try:
        _, w_err = good_worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        good_worker.kill()
        _, w_err = good_worker.communicate()
        pytest.fail(
            f"the good worker outlived its master:\n{w_err[-4000:]}\n--- the master:\n{stderr[-4000:]}"
        )
    assert c.master.returncode == 0, stderr[-3000:] + "\n--- the good worker:\n" + w_err[-3000:]
    run = read_json(only_run_dir(c.out) / "run.json")
    refused = run["workers"]["refused"]
    assert len(refused) == 2 and refused[0]["problems"][0] == "capability 'chat' only on the master"
    assert refused[1]["problems"][0].startswith("inferswarm code: master ")
    assert [w["requests"] > 0 for w in run["workers"]["joined"]] == [True]
    assert int(rows_by_name(only_run_dir(c.out))["Aggregated"]["Request Count"]) > 0


def test_cli_refuses_flags_that_do_not_fit_the_role(write_config: Callable[..., Path]) -> None:
    config = str(write_config(base_config()))
    cases = {
        ("--worker",): "--worker needs --master-host",
        ("--master-host", "h"): "--master-host is for workers: add --worker",
        ("--worker", "--master-host", "h", "--out", "x"): "--out: not for a worker",
        ("--expect-workers", "2"): "--expect-workers is for the master",
        ("--master", "--master-timeout", "5"): "--master-timeout is for workers",
        (
            "--worker",
            "--master-host",
            "h",
            "--master-timeout",
            "0.5",
        ): "--master-timeout 0.5: must be between",
        ("--master", "--processes", "2"): "--processes starts its own master",
        ("--processes", "0"): "--processes 0: give a count",
    }
    for args, message in cases.items():
        proc = subprocess.run(
            [sys.executable, "-m", "inferswarm.cli", "run", config, *args], capture_output=True, text=True
        )
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)


def test_a_master_port_in_use_is_one_line_and_no_run(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = str(write_config(base_config()))
    out = str(tmp_path / "results")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "inferswarm.cli",
                "run",
                config,
                "--master",
                "--master-port",
                str(port),
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"inferswarm: --master-port {port}: cannot listen on *:{port}: Address already in use "
        "(another master on this machine? choose another port)"
    ]
    assert not (tmp_path / "results").exists()
