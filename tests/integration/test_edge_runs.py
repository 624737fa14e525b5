"""Seed 001's three edge tests as shipped (configs/edge-*.yaml), run headless against the reference target
emulating a Groundlight edge endpoint: the ramp's edge share falls when the pods saturate, the FPS test's
frames per second match the service time, and the readiness test finds each pod's online time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferswarm.emulator.launcher import ReferenceTarget, free_port
from tests.conftest import REPO
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

CONFIGS = REPO / "configs"
ENV = {"GROUNDLIGHT_API_TOKEN": "test-token", "INFERSWARM_NO_PNG": "1"}


def run_config(
    name: str, out: Path, load: str, *extra: str, timeout_s: float = 90
) -> tuple[int, str, dict[str, Any], Path]:
    """`inferswarm run configs/<name>` with a load override; (exit code, output, results.json, run dir)."""
    proc = inferswarm(
        "run", str(CONFIGS / name), "--out", str(out), *extra, env={**ENV, "INFERSWARM_LOAD": load}
    )
    stdout, stderr = proc.communicate(timeout=timeout_s)
    run_dir = only_run_dir(out)
    return proc.returncode, stdout + stderr, read_json(run_dir / "results.json"), run_dir


def write_settings(path: Path, detectors: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"seed": 15, "edge": {"ready_after_s": 0, "detectors": detectors}}))
    return path


def test_edge_ramp_edge_share_falls_when_the_pods_saturate(tmp_path: Path) -> None:
    # configs/edge-target.yaml: 2 slots + 4 waiting per pod; beyond 6 queries at once the BINARY detector
    # escalates to the cloud. Clients back to back: 6, 12, then 18 at once.
    load = '{"step_users": 6, "max_users": 18, "step_duration_s": 3, "per_user_rps": null}'
    code, output, results, run_dir = run_config(
        "edge-ramp.yaml", tmp_path / "out", load, "--serve-target", str(CONFIGS / "edge-target.yaml")
    )
    assert code == 0, output[-3000:]
    # the endpoint's status page (telemetry.edge_status) polled into the run's telemetry
    rows = [r for r in read_csv(run_dir / "locust_telemetry.csv") if r["source"] == "edge-status"]
    by_metric: dict[str, list[float]] = {}
    for row in rows:
        assert (row["node"], row["device"]) in {("edge", "host"), ("edge", "source")}
        by_metric.setdefault(row["metric"], []).append(float(row["value"]))
    assert len(by_metric["cpu_util_pct"]) >= 5 and all(0 <= v <= 100 for v in by_metric["cpu_util_pct"])
    assert all(0 < v <= 100 for v in by_metric["mem_util_pct"]) and min(by_metric["mem_total_bytes"]) > 0
    assert by_metric["edge_pods_running"][-1] == 2 and set(by_metric["source_up"]) == {1.0}
    sources = read_json(run_dir / "run.json")["telemetry"]["sources"]
    assert [s["kind"] for s in sources] == ["edge-status"] and sources[0]["url"].endswith(
        "/status/metrics.json"
    )
    edge = results["edge"]
    shares = [step["capabilities"]["binary"]["edge_share"] for step in edge["steps"]]
    assert len(shares) == 3
    assert shares[0] > 0.8  # a pod with room: only the low-confidence tenth escalates
    assert shares[0] > shares[1] > shares[2] and shares[2] < shares[0] - 0.15, shares
    run = edge["capabilities"]["binary"]
    assert run["edge"] + run["cloud"] == run["answers"] > 0
    assert run["cloud_ms"]["p50"] > run["edge_ms"]["p95"]  # escalations are the slow answers
    assert set(run["by_source"]) >= {"algorithm"}


FPS_SERVICE_MS = 40.0


def test_edge_fps_matches_the_service_time(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path / "target.yaml",
        [
            {
                "id": "det_binary_demo",
                "mode": "BINARY",
                "online_after_s": 0,
                "service_time": {"distribution": "fixed", "mean_ms": FPS_SERVICE_MS},
                "slots": 1,
                "escalation_share": 0,
            }
        ],
    )
    code, output, results, _ = run_config(
        "edge-fps.yaml", tmp_path / "out", '{"duration_s": 6}', "--serve-target", str(settings)
    )
    assert code == 0, output[-3000:]
    edge = results["edge"]
    fps = edge["fps"]
    [step] = results["steps"]
    assert step["users"] == 1 and fps == step["success_rps"]
    figures = edge["capabilities"]["binary"]
    assert figures["edge_share"] == 1.0 and figures["cloud"] == 0
    # One client back to back: each frame's cycle is its answer's time plus the client's own gap before
    # the next, so FPS is one over the mean cycle and the pod's fixed service time bounds it. The mean,
    # not the median: a few slow answers on a busy machine lower the FPS as they should (the median hid
    # them: 22.0 FPS against 1000 / 43 ms = 23.3).
    answers = edge["steps"][0]["capabilities"]["binary"]["edge_ms"]
    assert FPS_SERVICE_MS <= answers["p50"] < 2 * FPS_SERVICE_MS, answers
    assert fps <= 1000.0 / FPS_SERVICE_MS
    # One frame in flight: the answers counted in the window took no longer in all than the window,
    # plus the one that began before it (a 340 ms stall there, on a loaded machine, made FPS 8 % more
    # than 1 / mean), plus the mean's 1 ms rounding (edge_ms is a Locust histogram).
    window_ms, longest_ms = step["seconds"] * 1000.0, step["max_ms"]
    mean_ms = answers["avg"]
    assert fps * (mean_ms - 1.0) <= 1000.0 * (1 + longest_ms / window_ms), (fps, mean_ms, longest_ms)
    # and the client's gap between frames (its HTTP, JSON and image work) is small next to the answer
    assert fps >= 0.8 * 1000.0 / mean_ms, (fps, mean_ms)


READINESS_DETECTORS = [
    {
        "id": "det_binary_demo",
        "mode": "BINARY",
        "online_after_s": 1.5,
        "pod_starts": "first_query",
        "before_online": "escalate",
        "service_time": {"distribution": "fixed", "mean_ms": 5},
        "escalation_share": 0,
    },
    {
        "id": "det_count_demo",
        "mode": "COUNT",
        "online_after_s": 3.0,
        "pod_starts": "first_query",
        "before_online": "not_ready",
        "service_time": {"distribution": "fixed", "mean_ms": 5},
        "escalation_share": 0,
    },
]
INTERVAL_S = 0.5
READINESS_LOAD = f'{{"interval_s": {INTERVAL_S}, "timeout_s": 30, "connect_timeout_s": 30}}'


def check_readiness(run_dir: Path, results: dict[str, Any]) -> list[dict[str, str]]:
    readiness = read_json(run_dir / "run.json")["readiness"]
    assert readiness["outcome"] == "ready", readiness
    delays = {"binary": 1.5, "count": 3.0}
    for name, delay in delays.items():
        first = readiness["detectors"][name]["first_edge_s"]
        # The pod comes up `delay` after the detector's first query; the next iteration finds it (one
        # interval at most), and its answer takes a few ms more.
        assert abs(first - delay) <= INTERVAL_S + 0.1, (name, first, delay)
    assert readiness["time_to_all_ready_s"] == pytest.approx(
        readiness["detectors"]["count"]["first_edge_s"], abs=INTERVAL_S + 0.1
    )
    assert results["edge"]["readiness"]["outcome"] == "ready"
    # the endpoint's own routes, polled alongside: each detector's readiness flipped when its pod came up
    assert readiness["route_polls"] >= 3
    for name, delay in delays.items():
        said = readiness["detectors"][name]["endpoint_ready_s"]
        first = readiness["detectors"][name]["first_edge_s"]
        assert said is not None and abs(said - delay) <= INTERVAL_S + 0.1, (name, said, delay)
        assert said <= first + INTERVAL_S + 0.1  # the route says so no later than the next edge answer
        assert results["edge"]["readiness"]["detectors"][name]["endpoint_ready_s"] == said
    assert readiness["health_ready"]["endpoint_ready_s"] <= INTERVAL_S + 0.1  # ready_after_s: 0
    routes = read_csv(run_dir / "locust_readiness_routes.csv")
    by_detector = {(r["name"], r["detector_id"], r["ready"]) for r in routes if r["name"]}
    assert by_detector >= {
        ("binary", "det_binary_demo", "0"),
        ("binary", "det_binary_demo", "1"),
        ("count", "det_count_demo", "0"),
        ("count", "det_count_demo", "1"),
    }
    assert "/edge-detector-readiness" in (run_dir / "summary.md").read_text()
    rows = read_csv(run_dir / "locust_readiness.csv")
    answers = {(r["name"], r["answer"]) for r in rows}
    assert {("binary", "cloud"), ("count", "not_ready"), ("binary", "edge"), ("count", "edge")} <= answers
    return rows


def test_edge_readiness_finds_each_pods_online_time(tmp_path: Path) -> None:
    settings = write_settings(tmp_path / "target.yaml", READINESS_DETECTORS)
    code, output, results, run_dir = run_config(
        "edge-readiness.yaml", tmp_path / "out", READINESS_LOAD, "--serve-target", str(settings)
    )
    assert code == 0, output[-3000:]
    assert "READINESS: all 2 detectors answered from the edge" in output
    check_readiness(run_dir, results)


def test_edge_readiness_tolerates_refusals_until_the_endpoint_comes_up(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    settings = write_settings(tmp_path / "target.yaml", READINESS_DETECTORS)
    port = free_port()
    started: list[ReferenceTarget] = []

    def start_late() -> None:
        # The endpoint comes up only after the run was refused (seed 001: helm install after the script
        # starts). Waiting for the first refused row, not a fixed 2 s: on a busy CI machine the run took
        # longer than that to send anything, found the endpoint up and saw no refusal.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            ",refused," in csv.read_text() for csv in (tmp_path / "out").glob("*/locust_readiness.csv")
        ):
            time.sleep(0.05)
        started.append(ReferenceTarget(settings, port=port).__enter__())

    late = threading.Thread(target=start_late)
    late.start()
    try:
        code, output, results, run_dir = run_config(
            "edge-readiness.yaml",
            tmp_path / "out",
            READINESS_LOAD,
            "--host",
            f"http://127.0.0.1:{port}",
            timeout_s=120,
        )
    finally:
        late.join()
        for target in started:
            target.stop()
    assert code == 0, output[-3000:]
    rows = check_readiness(run_dir, results)
    refused = [r for r in rows if r["answer"] == "refused"]
    assert refused and all(r["status"] == "0" for r in refused)
    routes = read_csv(run_dir / "locust_readiness_routes.csv")
    assert routes[0]["status"] == "0" and routes[0]["ready"] == ""  # the routes were refused too
    first_iteration = int(refused[0]["iteration"])
    assert first_iteration == 1  # the first iterations were refused, and the run went on
