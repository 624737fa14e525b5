"""`inferswarm check` and the preflight of `inferswarm run` against the reference target on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferswarm.checks.model import TEST_INFO_KEYS, TEST_KEYS
from inferswarm.emulator.launcher import ReferenceTarget, free_port, wait_for_http
from tests.conftest import REPO, base_config
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

StartTarget = Callable[[dict[str, Any]], ReferenceTarget]
FAST = {"service_time": {"distribution": "fixed", "mean_ms": 5}}
TARGET = {"capabilities": {name: FAST for name in ("text-to-image", "prompt-enhance", "gpu-check")}}
TOKEN = "tok-3b9e1f-never-in-checks"


def checks_config(url: str, **checks: Any) -> dict[str, Any]:
    return base_config(
        target={"base_url": url, "request_timeout_s": 5},
        capabilities=[
            {
                "name": "text-to-image",
                "kind": "json",
                "path": "/text-to-image",
                "params": {"prompt": "a cat"},
            },
            {"name": "prompt-enhance", "kind": "json", "path": "/prompt-enhance", "params": {"prompt": "a"}},
            {"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {"agent_id": "t"}},
        ],
        telemetry={"gpu_check": "gpu-check"},
        load={"shape": "ramp", "step_users": 1, "step_duration_s": 1, "max_users": 1, "per_user_rps": 5},
        checks=checks,
    )


def check(config: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = inferswarm("check", str(config), "--out", str(out), *args, env=env)
    stdout, stderr = proc.communicate(timeout=30)
    return proc.returncode, stdout, stderr


def statuses(out: Path) -> dict[str, str]:
    return {t["name"]: t["status"] for t in read_json(out / "checks.json")["tests"]}


def assert_seed_003_shape(data: dict[str, Any]) -> None:
    assert tuple(data) == ("test_info", "tests", "summary")
    assert tuple(data["test_info"]) == TEST_INFO_KEYS
    assert all(isinstance(v, str) for v in data["test_info"].values())
    for test in data["tests"]:
        assert tuple(test) == TEST_KEYS
        assert test["status"] in ("PASS", "FAIL", "WARN", "SKIP")
        assert isinstance(test["name"], str) and isinstance(test["details"], str)
        assert isinstance(test["timing_ms"], int | float) and isinstance(test["timestamp"], str)
    assert set(data["summary"]) == {"passed", "failed", "warned", "skipped"}


@pytest.fixture
def agent() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferswarm.cli", "agent", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{url}/health", 20, proc), "agent did not come up"  # type: ignore[arg-type]
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_healthy_target_passes_and_secrets_stay_out(
    start_target: StartTarget,
    write_config: Callable[..., Path],
    tmp_path: Path,
    agent: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHECK_TARGET_TOKEN", TOKEN)
    target = start_target({**TARGET, "auth_token_env": "CHECK_TARGET_TOKEN"})
    data = checks_config(target.url, large_payload_bytes=200_000)
    data["target"]["secret_headers"] = [
        {"header": "Authorization", "env": "CHECK_TOKEN", "prefix": "Bearer "}
    ]
    env = {"CHECK_TOKEN": TOKEN}
    out = tmp_path / "checks"
    code, stdout, stderr = check(write_config(data), out, "--agent", agent, env=env)
    assert code == 0, stdout + stderr
    got = statuses(out)
    for name in ("network_connectivity", "server_health", "request:text-to-image", "request:gpu-check"):
        assert got[name] == "PASS", name  # the token reached the target: no 401
    assert got["error_handling:prompt-enhance"] == "PASS" and got["large_payload:text-to-image"] == "PASS"
    agent_name = agent.removeprefix("http://")
    assert got[f"gpu_detection:{agent_name}"] in ("PASS", "WARN")  # WARN: no GPU on this machine
    assert got[f"clock_offset:{agent_name}"] == "PASS"  # the same clock
    assert "FAIL" not in got.values()
    text = (out / "checks.json").read_text()
    assert_seed_003_shape(read_json(out / "checks.json"))
    assert TOKEN not in text and TOKEN not in stdout and TOKEN not in stderr
    assert "network_connectivity" in stdout and "passed" in stdout.splitlines()[-2]


def test_a_dead_target_fails_fast_and_exits_1(write_config: Callable[..., Path], tmp_path: Path) -> None:
    timeout_s = 3.0
    config = write_config(checks_config(f"http://127.0.0.1:{free_port()}", timeout_s=timeout_s))
    out = tmp_path / "checks"
    started = time.monotonic()
    code, stdout, _ = check(config, out)
    elapsed = time.monotonic() - started
    assert code == 1, stdout
    assert elapsed < timeout_s + 1.0  # interpreter start included
    got = statuses(out)
    assert got["network_connectivity"] == "FAIL"
    assert got["request:text-to-image"] == "SKIP" and got["gpu_detection"] == "SKIP"
    assert_seed_003_shape(read_json(out / "checks.json"))


def test_a_target_that_never_answers_is_bounded_by_the_timeout(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = write_config(checks_config(url, timeout_s=1, tcp_samples=2))
        out = tmp_path / "checks"
        started = time.monotonic()
        code, stdout, _ = check(config, out)
        elapsed = time.monotonic() - started
    assert code == 1, stdout
    assert elapsed < 1 + 2.0
    got = statuses(out)
    assert got["network_connectivity"] == "PASS" and got["server_health"] == "FAIL"
    assert got["request:prompt-enhance"] == "SKIP"


def test_a_target_that_500s_on_bad_input_fails_error_handling(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target({**TARGET, "malformed_status": 500})
    out = tmp_path / "checks"
    code, stdout, _ = check(
        write_config(checks_config(target.url, enabled=["network", "requests", "error_handling"])), out
    )
    assert code == 1, stdout
    got = statuses(out)
    assert got["request:text-to-image"] == "PASS"  # correct requests are fine
    assert got["error_handling:text-to-image"] == "FAIL"
    [details] = [t["details"] for t in read_json(out / "checks.json")["tests"] if t["status"] == "FAIL"][:1]
    assert "HTTP 500 for bad input" in details


def test_bad_input_is_one_line_and_exit_2(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(checks_config("http://127.0.0.1:9", tcp_sample=3))
    code, _, stderr = check(config, tmp_path / "out")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "checks.tcp_sample" in stderr
    code, _, stderr = check(config, tmp_path / "out", "--host", "ftp://x")
    assert code == 2 and stderr.startswith("inferswarm: --host")


def test_run_stops_before_load_on_a_failed_check_and_runs_with_no_preflight(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target({**TARGET, "malformed_status": 500})
    config = write_config(checks_config(target.url, preflight=["network", "http", "error_handling"]))
    out = tmp_path / "stopped"
    proc = inferswarm("run", str(config), "--out", str(out), "--no-report")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout + stderr
    [line] = [x for x in stderr.splitlines() if "preflight check" in x]
    assert "error_handling:" in line and "HTTP 500" in line and "no load sent" in line
    run_dir = only_run_dir(out)
    assert not list(run_dir.glob("locust_*.csv"))  # no load at all
    run = read_json(run_dir / "run.json")
    assert run["status"] == "preflight_failed" and run["exit_code"] == 1
    assert run["preflight"]["summary"]["failed"] == 3
    assert_seed_003_shape(read_json(run_dir / "checks.json"))

    out = tmp_path / "ran"
    proc = inferswarm("run", str(config), "--out", str(out), "--no-report", "--no-preflight")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(out)
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert "preflight" not in read_json(run_dir / "run.json") and not (run_dir / "checks.json").exists()


def test_a_passing_preflight_is_recorded_in_the_run(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target(TARGET)
    out = tmp_path / "results"
    proc = inferswarm("run", str(write_config(checks_config(target.url))), "--out", str(out), "--no-report")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert "preflight checks:" in stdout
    run_dir = only_run_dir(out)
    run = read_json(run_dir / "run.json")
    assert run["status"] == "completed" and run["preflight"]["summary"]["failed"] == 0
    assert [c["name"] for c in run["preflight"]["checks"]][:3] == [
        "network_connectivity",
        "tls_handshake",
        "server_health",
    ]
    assert read_json(run_dir / "checks.json")["tests"] == run["preflight"]["checks"]


def test_a_v2_server_is_checked_for_readiness_and_each_configured_model(
    start_target: StartTarget, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    target = start_target({"tensor": {"models": [{"name": "double", "operation": "double"}]}})

    def tensor(name: str, model: str) -> dict[str, Any]:
        return {
            "name": name,
            "kind": "tensor",
            "model": model,
            "operation": "double",
            "input": {"shape": [4, 4]},
        }

    config = write_config(
        base_config(
            target={"base_url": target.url, "request_timeout_s": 5},
            capabilities=[tensor("ok", "double"), tensor("missing", "triple")],
            load={"shape": "stages", "stages": [{"duration_s": 1, "users": 1}]},
            checks={"enabled": ["http"]},
        )
    )
    code, _, _ = check(config, tmp_path / "out")
    found = statuses(tmp_path / "out")
    assert found["v2_health_ready"] == "PASS" and found["v2_model_ready:double"] == "PASS"
    assert found["v2_model_ready:triple"] == "FAIL" and code == 1  # a model the server does not have
