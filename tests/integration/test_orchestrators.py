"""`inferswarm orchestrators` end to end: real processes on loopback, the reference target as the gateway
(its emulated orchestrators, a real webhook client) and as the leaderboard (HMAC checked over raw bodies)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferswarm.emulator.launcher import ReferenceTarget, free_port
from tests.conftest import REPO
from tests.integration.http import request
from tests.integration.runs import inferswarm, read_csv, read_json

pytestmark = pytest.mark.integration

SECRET = "lb-secret-4f1e"
A, B, C, D = (f"0x{c}" + "0" * 37 + f"{c}{i}" for c, i in zip("abcd", "1234", strict=True))
TARGET_SETTINGS = REPO / "configs" / "orchestrators-target.yaml"
EXPECTED_CELLS = {
    (A, "llm", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
    (A, "text-to-image", "ByteDance/SDXL-Lightning"),
    (A, "text-to-image", "stabilityai/sdxl-turbo"),
    (B, "image-to-image", "timbrooks/instruct-pix2pix"),
    (B, "upscale", "stabilityai/stable-diffusion-x4-upscaler"),
    (C, "audio-to-text", "openai/whisper-large-v3"),
    (D, "text-to-image", "ByteDance/SDXL-Lightning"),
}


class Network:
    """The emulated gateway and leaderboard, listening for a tester's webhook on a known port."""

    def __init__(self, target: ReferenceTarget, webhook_port: int) -> None:
        self.target = target
        self.webhook_port = webhook_port

    def get(self, path: str) -> Any:
        status, _, body = request(f"{self.target.url}{path}", "GET")
        assert status == 200, (path, status)
        return json.loads(body)

    def config(self, tmp_path: Path, **overrides: Any) -> Path:
        config = yaml.safe_load((REPO / "configs" / "orchestrators.yaml").read_text())
        config.update(
            {
                "gateway": {"url": self.target.url, "request_timeout_s": 10},
                "webhook": {"port": self.webhook_port},
                "leaderboard": {"url": f"{self.target.url}/api", "backoff_s": 0.05, "retries": 2},
                "assets_dir": str(REPO / "test-assets"),
                **overrides,
            }
        )
        path = tmp_path / "orchestrators.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def network() -> Iterator[Network]:
    port = free_port()
    hook = f"http://127.0.0.1:{port}/orchestrators"
    with ReferenceTarget(
        TARGET_SETTINGS, extra_args=["--orch-webhook-url", hook], env={"LEADERBOARD_SECRET": SECRET}
    ) as target:
        yield Network(target, port)


def run_tester(
    config: Path, out: Path, *args: str, secret: str = SECRET, timeout: float = 60
) -> tuple[int, str]:
    proc = inferswarm(
        "orchestrators", str(config), "--out", str(out), *args, env={"LEADERBOARD_SECRET": secret}
    )
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def stats_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "orchestrator_stats.jsonl").read_text().splitlines()]


def test_the_matrix_tests_each_orchestrator_pinned_and_posts_signed_stats(
    network: Network, tmp_path: Path
) -> None:
    code, stderr = run_tester(network.config(tmp_path), tmp_path / "out")
    assert code == 0, stderr
    [run_dir] = (tmp_path / "out").iterdir()

    # exactly the supported cells, nothing the orchestrators do not advertise
    stats = stats_of(run_dir)
    assert {(s["orchestrator"], s["pipeline"], s["model"]) for s in stats} == EXPECTED_CELLS
    assert len(stats) == len(EXPECTED_CELLS)
    by_orch = {s["orchestrator"]: s for s in stats}
    assert by_orch[C]["success_rate"] == 0 and by_orch[D]["success_rate"] == 0
    assert by_orch[C]["errors"][0]["error_code"] == "503"
    assert "no orchestrators available" in by_orch[C]["errors"][0]["message"]
    assert "Service Unavailable Error" in by_orch[D]["errors"][0]["message"]
    assert all(s["success_rate"] == 1 for s in stats if s["orchestrator"] in (A, B))
    cold = [s for s in stats if s["model"] == "stabilityai/sdxl-turbo"]
    assert cold[0]["model_is_warm"] is False

    # each job was served by the orchestrator the webhook pinned (the gateway's own record, in order)
    served = network.get("/gateway/served")["jobs"]
    jobs = read_csv(run_dir / "orchestrator_jobs.csv")
    assert len(served) == len(jobs) == len(EXPECTED_CELLS)
    for job, routed in zip(jobs, served, strict=True):
        assert (routed["pipeline"], routed["model"]) == (job["pipeline"], job["model"])
        if job["orchestrator"] == C:  # down: the gateway found no orchestrator to send it to
            assert routed["orchestrator"] is None and routed["status"] == 503
        else:
            assert routed["orchestrator"] == job["orchestrator"], routed
    # the leaderboard stored every stat: its HMAC check over the raw body passed for each
    stored = network.get("/api/raw_stats")["stats"]
    assert sorted(s["body_sha256"] for s in stored) == sorted(
        __import__("hashlib").sha256(line).hexdigest()
        for line in (run_dir / "orchestrator_stats.jsonl").read_bytes().splitlines()
    )
    rows = read_csv(run_dir / "orchestrator_stats.csv")
    assert {r["post_status"] for r in rows} == {"posted"} and {r["post_attempts"] for r in rows} == {"1"}

    record = read_json(run_dir / "run.json")
    assert record["kind"] == "orchestrators" and record["status"] == "complete" and record["exit_code"] == 0
    assert record["summary"] == {
        "orchestrators": 4,
        "cells": 7,
        "jobs": 7,
        "successes": 5,
        "stats_posted": 7,
        "stats_failed": 0,
        "dry_run": False,
    }
    assert SECRET not in (run_dir / "run.json").read_text() and SECRET not in stderr
    discovery = read_json(run_dir / "orchestrators.json")
    assert discovery["source"] == "getNetworkCapabilities" and len(discovery["cells"]) == 7
    matrix = read_json(run_dir / "matrix.json")
    assert json.dumps(matrix).count(C) >= 1
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert "**Down (not answering): " + C in (run_dir / "summary.md").read_text()


def test_a_wrong_secret_is_refused_403_reported_and_not_retried(network: Network, tmp_path: Path) -> None:
    config = network.config(tmp_path, filters={"orchestrators": {"include": [B]}})
    code, stderr = run_tester(config, tmp_path / "out", secret="not-the-secret")
    assert code == 1, stderr
    [run_dir] = (tmp_path / "out").iterdir()
    rows = read_csv(run_dir / "orchestrator_stats.csv")
    assert len(rows) == 2
    assert {(r["post_status"], r["post_http_status"], r["post_attempts"]) for r in rows} == {
        ("failed", "403", "1")
    }
    assert all("request can not be authenticated" in r["post_error"] for r in rows)
    assert network.get("/api/raw_stats")["stats"] == []
    assert "not-the-secret" not in (run_dir / "run.json").read_text()
    assert read_json(run_dir / "run.json")["summary"]["stats_failed"] == 2


def test_legacy_discovery_and_a_region_the_leaderboard_does_not_know(
    network: Network, tmp_path: Path
) -> None:
    config = network.config(tmp_path, region="XYZ")
    code, stderr = run_tester(config, tmp_path / "bad-region")
    assert code == 1 and "region 'XYZ' is not one of the leaderboard's regions" in stderr
    assert network.get("/gateway/served")["jobs"] == []  # refused before any job

    legacy = network.config(
        tmp_path, gateway={"url": network.target.url, "discovery": "legacy"}, jobs_per_cell=2
    )
    code, stderr = run_tester(legacy, tmp_path / "legacy")
    assert code == 0, stderr
    [run_dir] = (tmp_path / "legacy").iterdir()
    assert read_json(run_dir / "orchestrators.json")["source"] == "getOrchestratorAICapabilities"
    stats = stats_of(run_dir)
    assert {(s["orchestrator"], s["pipeline"], s["model"]) for s in stats} == EXPECTED_CELLS
    assert len(read_csv(run_dir / "orchestrator_jobs.csv")) == 2 * len(EXPECTED_CELLS)


def test_every_runs_on_the_schedule_and_sigterm_loses_no_stat(network: Network, tmp_path: Path) -> None:
    config = network.config(tmp_path)
    out = tmp_path / "out"
    proc = inferswarm(
        "orchestrators",
        str(config),
        "--out",
        str(out),
        "--every",
        "* * * * * */2",
        env={"LEADERBOARD_SECRET": SECRET},
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        done = (
            [
                d
                for d in out.glob("*")
                if (read_json(d / "run.json") if (d / "run.json").is_file() else {}).get("status")
                == "complete"
            ]
            if out.is_dir()
            else []
        )
        if len(done) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    runs = sorted(out.iterdir())
    assert len(runs) >= 2
    statuses = [read_json(r / "run.json")["status"] for r in runs]
    assert statuses[:2] == ["complete", "complete"] and set(statuses) <= {"complete", "stopped"}
    made = [line for r in runs for line in stats_of(r)]
    rows = [row for r in runs for row in read_csv(r / "orchestrator_stats.csv")]
    assert len(rows) == len(made) and {r["post_status"] for r in rows} == {"posted"}
    assert len(network.get("/api/raw_stats")["stats"]) == len(made)  # every stat made was posted, once
    schedules = [read_json(r / "run.json")["schedule"] for r in runs]
    assert all(s["cron"] == "* * * * * */2" for s in schedules)


def test_the_load_step_runs_a_real_load_test_per_orchestrator_through_the_pinned_gateway(
    network: Network, tmp_path: Path
) -> None:
    config = network.config(
        tmp_path,
        filters={"orchestrators": {"include": [B, C]}},
        load={"users": 2, "duration_s": 2},
    )
    code, stderr = run_tester(config, tmp_path / "out", timeout=90)
    assert code == 0, stderr
    [run_dir] = (tmp_path / "out").iterdir()
    rows = {r["orchestrator"]: r for r in read_csv(run_dir / "orchestrator_load.csv")}
    assert set(rows) == {B, C}
    assert rows[C]["status"] == "skipped" and rows[C]["note"] == "no cell answered its test job"
    loaded = rows[B]
    assert loaded["status"] == "completed" and loaded["capabilities"] == "2" and loaded["users"] == "2"
    step = run_dir / loaded["run_dir"]
    results = read_json(step / "results.json")["summary"]["total"]
    assert (
        int(loaded["requests"]) == results["requests"] > 10 and float(loaded["p95_ms"]) == results["p95_ms"]
    )
    # every load request went to B: the gateway stayed pinned to it for the whole step
    served = network.get("/gateway/served")["jobs"]
    assert len(served) >= 2 + int(loaded["requests"]) and {j["orchestrator"] for j in served} <= {B, None}
    assert sum(j["orchestrator"] == B for j in served) >= int(loaded["requests"])
    assert "## Load step" in (run_dir / "summary.md").read_text()


def test_sigterm_mid_job_finishes_that_job_posts_its_stat_and_stops(tmp_path: Path) -> None:
    settings = yaml.safe_load(TARGET_SETTINGS.read_text())
    for orchestrator in settings["gateway"]["orchestrators"]:
        if orchestrator["address"] == A:
            orchestrator.update(failure="slow", slow_ms=1500)  # each of A's jobs takes 1.5 s
    slow = tmp_path / "slow-target.yaml"
    slow.write_text(yaml.safe_dump(settings))
    port = free_port()
    hook = f"http://127.0.0.1:{port}/orchestrators"
    with ReferenceTarget(
        slow, extra_args=["--orch-webhook-url", hook], env={"LEADERBOARD_SECRET": SECRET}
    ) as target:
        network = Network(target, port)
        config = network.config(tmp_path, filters={"orchestrators": {"include": [A]}})
        out = tmp_path / "out"
        proc = inferswarm("orchestrators", str(config), "--out", str(out), env={"LEADERBOARD_SECRET": SECRET})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not network.get("/stats")["gateway"]["webhook"]["polls"]:
            time.sleep(0.02)  # the gateway asked the webhook: the first job is in flight
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        [run_dir] = out.iterdir()
        jobs = read_csv(run_dir / "orchestrator_jobs.csv")
        assert len(jobs) == 1 and jobs[0]["ok"] == "True"  # the job in flight finished, and counted
        assert float(jobs[0]["round_trip_s"]) >= 1.5
        [stat] = stats_of(run_dir)
        assert stat["success_rate"] == 1
        assert len(network.get("/api/raw_stats")["stats"]) == 1  # its stat was posted before the end
        record = read_json(run_dir / "run.json")
        assert record["status"] == "stopped" and record["summary"]["cells"] == 1
        assert "SIGTERM: stopping after the job in flight" in stderr
