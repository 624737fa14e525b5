"""Telemetry in real runs: a local run on the stats clock, master + 2 workers, agent and Prometheus
sources over loopback HTTP, and a run killed with SIGTERM."""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inferswarm.emulator.launcher import ReferenceTarget, free_port, wait_for_http
from inferswarm.telemetry.remote import AgentPoller, PrometheusPoller
from tests.conftest import REPO, base_config
from tests.integration.runs import aggregated_history, inferswarm, only_run_dir, read_csv, read_json

LOCUST_MASTER_PORT = 5557  # Locust's default --master-bind-port

pytestmark = pytest.mark.integration

StartTarget = Callable[[dict[str, Any]], ReferenceTarget]
DATA = REPO / "tests" / "unit" / "telemetry" / "data"
FAST = {"service_time": {"distribution": "fixed", "mean_ms": 5}}
TARGET = {"slots": 8, "capabilities": {"prompt-enhance": FAST, "gpu-check": FAST}}


def capabilities() -> list[dict[str, Any]]:
    return [
        {"name": "prompt-enhance", "kind": "json", "path": "/prompt-enhance", "params": {"prompt": "a"}},
        {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "t"}},
    ]


def telemetry_config(
    target: ReferenceTarget, stages: list[dict[str, Any]], **telemetry: Any
) -> dict[str, Any]:
    return base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=capabilities(),
        load={"shape": "stages", "per_user_rps": 5, "stages": stages},
        telemetry=telemetry,
    )


def series(rows: list[dict[str, str]], node_prefix: str, metric: str, device: str = "host") -> list[float]:
    return [
        float(r["timestamp"])
        for r in rows
        if r["node"].startswith(node_prefix) and r["metric"] == metric and r["device"] == device
    ]


@pytest.fixture
def agent() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferswarm.cli",
            "agent",
            "--port",
            str(port),
            "--interval",
            "0.2",
            "--name",
            "gpu-box",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{url}/health", 30, proc), "agent did not come up"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def exporter() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A Prometheus endpoint on loopback serving whatever text the test puts in `pages`."""
    pages = {
        "/metrics": (DATA / "dcgm-exporter.prom").read_bytes() + (DATA / "node-exporter.prom").read_bytes()
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()


def test_agent_over_http(agent: str) -> None:
    poller = AgentPoller(None, agent, timeout_s=5)
    first = poller.poll()
    got = {(s.node, s.device, s.metric) for s in first}
    assert ("gpu-box", "host", "cpu_util_pct") in got and ("gpu-box", "host", "mem_total_bytes") in got
    assert poller.name == "gpu-box"  # health rows go under the agent's own node name
    assert {(s.metric, s.value) for s in first if s.node == "gpu-box"} >= {("source_up", 1)}
    assert abs(poller.offset_s) < 0.5  # same machine: the estimated clock offset is small
    time.sleep(0.7)
    second = [s for s in poller.poll() if s.node == "gpu-box" and s.device != "source"]
    newest_first = max(s.timestamp for s in first if s.node == "gpu-box")
    # only samples taken since the last poll, and at least the ~3 sets taken in between
    assert second and min(s.timestamp for s in second) > newest_first
    assert len({s.timestamp for s in second}) >= 2

    # /metrics is Prometheus text that reads back to the same series as the JSON's latest set
    scraped = PrometheusPoller("scrape", f"{agent}/metrics", 5, "inferswarm").poll()
    latest = max(s.timestamp for s in second)
    json_set = {(s.device, s.metric) for s in second if s.timestamp == latest}
    assert len(json_set) >= 10
    assert {(s.device, s.metric) for s in scraped if s.node == "gpu-box"} == json_set


def test_prometheus_scrape_and_a_dead_source(exporter: tuple[str, dict[str, bytes]]) -> None:
    url, pages = exporter
    poller = PrometheusPoller("gpu-node-1", f"{url}/metrics", 5)
    samples = poller.poll()
    got = {(s.source, s.device, s.metric): s.value for s in samples}
    assert got[("dcgm", "gpu0", "gpu_util_pct")] == 97
    assert got[("dcgm", "gpu0", "gpu_mem_used_bytes")] == 77221 * 2**20
    assert got[("node_exporter", "host", "load_1m")] == 1.37
    assert got[("prometheus", "source", "source_up")] == 1

    missing = PrometheusPoller("gone", f"{url}/nothing", 5).poll()
    assert [(s.metric, s.value) for s in missing] == [("source_up", 0)]
    pages["/metrics"] = b"garbage{ 1\n"
    assert [(s.metric, s.value) for s in poller.poll()] == [("source_up", 0)]
    assert poller.down_reason is not None and "line 1" in poller.down_reason


def test_local_run_samples_on_the_stats_clock(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path, agent: str
) -> None:
    target = start_target(TARGET)
    stages = [{"duration_s": 3, "users": 2}, {"duration_s": 3, "users": 4}]
    config = write_config(telemetry_config(target, stages, gpu_check="gpu-check", agents=[{"url": agent}]))
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    rows = read_csv(run_dir / "locust_telemetry.csv")
    assert list(rows[0]) == ["timestamp", "node", "source", "device", "metric", "value", "unit"]

    # one host sample per second, on the whole-second grid (the last is the extra one taken at quit)...
    host = series(rows, "local@", "cpu_util_pct")[:-1]
    assert len(host) >= 5
    assert all(t - math.floor(t) < 0.2 for t in host), host
    gaps = [b - a for a, b in itertools.pairwise(host)]
    assert all(0.5 < g < 1.5 for g in gaps), gaps
    # ...so every second of Locust's stats history joins with exactly one sample
    seconds = {math.floor(t) for t in host}
    history = [int(r["Timestamp"]) for r in aggregated_history(run_dir)]
    inside = [t for t in history if min(seconds) <= t <= max(seconds)]
    assert len(inside) >= 4 and all(t in seconds for t in inside), (inside, sorted(seconds))

    # the process's own CPU, memory and loop lag; the agent's and the target's gpu-check samples
    for metric in ("process_cpu_pct", "process_rss_bytes", "loop_lag_ms"):
        assert series(rows, "local@", metric, device=f"pid{read_json(run_dir / 'run.json')['pid']}")
    assert len(series(rows, "gpu-box", "mem_used_bytes")) >= 10  # the agent samples at 0.2 s
    assert [r["value"] for r in rows if r["node"] == "target" and r["metric"] == "gpu_count"][:1] == ["0"]

    run = read_json(run_dir / "run.json")
    assert run["files"]["telemetry"] == "locust_telemetry.csv"
    assert run["telemetry"]["interval_s"] == 1.0 and run["telemetry"]["rows"] == len(rows)
    assert "NVML" in run["telemetry"]["gpu"] or "device" in run["telemetry"]["gpu"]
    assert {s["kind"] for s in run["telemetry"]["sources"]} == {"agent", "gpu-check"}
    assert run["generator_saturation"]["saturated"] is False
    # the headless console carries a telemetry line among Locust's stats
    assert "telemetry: 3 nodes" in stdout + stderr


def test_master_and_two_workers_send_samples_to_the_master(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TARGET)
    stages = [{"duration_s": 6, "users": 4}]
    # a threshold no process stays under, to see saturation flagged for workers and never for the master
    config = write_config(telemetry_config(target, stages, interval_s=0.5, saturation_cpu_pct=0.01))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = free_port()
    common = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "locustfiles" / "capabilities.py"),
        "--inferswarm-config",
        str(config),
    ]
    master = subprocess.Popen(
        [
            *common,
            "--master",
            "--headless",
            "--expect-workers",
            "2",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--csv",
            str(run_dir / "locust"),
            "--exit-code-on-error",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        _, stderr = master.communicate(timeout=90)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.communicate(timeout=30)
    assert master.returncode == 0, stderr[-3000:]
    rows = read_csv(run_dir / "locust_telemetry.csv")
    nodes = {r["node"] for r in rows}
    worker_nodes = {n for n in nodes if n.startswith("worker@")}
    assert len(worker_nodes) == 2 and any(n.startswith("master@") for n in nodes), nodes
    worker_pids = {f"pid{w.pid}" for w in workers}
    for node in worker_nodes:
        cpu = series(rows, node, "cpu_util_pct")
        assert len(cpu) >= 6, (node, cpu)  # every 0.5 s over ~6 s, batched once a second
        assert {r["device"] for r in rows if r["node"] == node and r["source"] == "process"} <= worker_pids
    flagged = {r["node"] for r in rows if r["metric"] == "generator_saturated"}
    assert flagged == worker_nodes
    run = read_json(run_dir / "run.json")
    assert run["mode"] == "master"
    assert set(run["generator_saturation"]["nodes"]) == worker_nodes


def test_sigterm_keeps_telemetry_to_the_end(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TARGET)
    config = write_config(telemetry_config(target, [{"duration_s": 60, "users": 2}], interval_s=0.5))
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    deadline = time.monotonic() + 30
    telemetry: Path | None = None
    while time.monotonic() < deadline:
        found = list(out.glob("*/locust_telemetry.csv"))
        if found and len(found[0].read_text().splitlines()) > 40:
            telemetry = found[0]
            break
        time.sleep(0.2)
    assert telemetry is not None, "no telemetry while running"
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    run = read_json(only_run_dir(out) / "run.json")
    assert run["status"] == "interrupted"
    text = telemetry.read_text()
    assert text.endswith("\n") and all(line.count(",") == 6 for line in text.splitlines())
    last = max(float(r["timestamp"]) for r in read_csv(telemetry))
    # samples continue until the end: the last is within one interval (plus shutdown) of the end
    assert run["end_epoch_s"] - last < 1.5, (run["end_epoch_s"], last)
    assert run["telemetry"]["rows"] == len(read_csv(telemetry))


def test_processes_fork_workers_that_sample_after_the_fork(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path, agent: str
) -> None:
    """`inferswarm run ... --processes 2`: Locust forks two workers; each starts its own sampling
    (NVML is opened per process, after the fork) and the master gathers all three, plus the agent
    given with --agent. The forked workers pass the same fingerprint check as remote ones.

    Locust's default master port (5557) is held meanwhile: the local master takes a free loopback port
    of its own, so two such runs on one machine do not collide."""
    target = start_target(TARGET)
    config = write_config(telemetry_config(target, [{"duration_s": 5, "users": 4}], interval_s=0.5))
    out = tmp_path / "results"
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # already taken by another process: taken all the same
            held = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            held.bind(("127.0.0.1", LOCUST_MASTER_PORT))
            held.listen()
        proc = inferswarm("run", str(config), "--out", str(out), "--agent", agent, "--processes", "2")
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    rows = read_csv(run_dir / "locust_telemetry.csv")
    nodes = {r["node"] for r in rows}
    workers = {n for n in nodes if n.startswith("worker@")}
    assert len(workers) == 2 and any(n.startswith("master@") for n in nodes) and "gpu-box" in nodes, nodes
    pids = {r["device"] for r in rows if r["source"] == "process" and r["node"] in workers}
    assert len(pids) == 2  # two forked processes, each reporting itself
    run = read_json(run_dir / "run.json")
    assert [s["url"] for s in run["telemetry"]["sources"]] == [agent]
    assert sorted(w["node"] for w in run["workers"]["joined"]) == sorted(workers)
    assert sum(w["requests"] for w in run["workers"]["joined"]) == int(
        next(r for r in read_csv(run_dir / "locust_stats.csv") if r["Name"] == "Aggregated")["Request Count"]
    )


def test_telemetry_off_writes_no_csv(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TARGET)
    config = write_config(telemetry_config(target, [{"duration_s": 2, "users": 1}], enabled=False))
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    assert not (run_dir / "locust_telemetry.csv").exists()
    run = read_json(run_dir / "run.json")
    assert run["telemetry"] == {"enabled": False} and "telemetry" not in run["files"]
    assert not re.search(r"^telemetry: \d+ node", stdout + stderr, re.M)  # no console summary line
    assert int(read_csv(run_dir / "locust_stats.csv")[-1]["Request Count"]) > 0  # the load itself ran
