"""docker-compose.yml, run without Docker: every service's command and environment, exactly as the file
and the Dockerfile give them, as local processes on loopback.

What stands in for Docker, and nothing else: the image's ENTRYPOINT is this interpreter's `inferswarm`;
its WORKDIR is a temporary folder laid out like the image (the Dockerfile's COPY folders, the
compose volumes, with ./results redirected to the test's folder); service names resolve to 127.0.0.1 and
each container port is remapped to a free loopback port; 0.0.0.0 binds become 127.0.0.1. If a command,
a variable or a port in the file stops working with the code, this test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferswarm.emulator.launcher import free_port, wait_for_http
from tests.compose_file import dockerfile, interpolate
from tests.conftest import REPO
from tests.integration.runs import only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

# The compose variables a user would set for a short headless stress test with two workers.
VARIABLES = {
    "UI": "--headless",
    "WORKERS": "2",
    "LOAD": json.dumps({"shape": "stages", "stages": [{"duration_s": 5, "users": 6}]}),
}
PORT_FLAGS = {"--port", "--master-port", "--web-port"}
HOST_FLAGS = {"--master-host"}


class Stack:
    """The compose services as processes: started in dependency order, all stopped at the end."""

    def __init__(self, tmp: Path, variables: Mapping[str, str]) -> None:
        self.compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        self.services: dict[str, dict[str, Any]] = interpolate(self.compose["services"], variables)
        entry, self.workdir, copied = dockerfile()
        assert entry == ["inferswarm"], entry
        self.app = tmp / "app"
        self.app.mkdir()
        for folder in copied:
            (self.app / folder).symlink_to(REPO / folder)
        self.results = tmp / "results"
        self.results.mkdir()
        self.ports: dict[str, int] = {}
        self.procs: dict[str, list[subprocess.Popen[str]]] = {}
        self.logs = tmp / "logs"
        self.logs.mkdir()

    def mount(self, service: dict[str, Any]) -> None:
        for volume in service.get("volumes", []):
            host, container = volume.split(":")[:2]
            assert container.startswith(self.workdir + "/"), volume
            path = self.app / container.removeprefix(self.workdir + "/")
            source = self.results if host == "./results" else (REPO / host).resolve()
            if path.is_symlink():
                path.unlink()
            path.symlink_to(source)

    def port(self, container_port: str) -> str:
        return str(self.ports.setdefault(container_port, free_port()))

    def localize(self, value: str, previous: str | None = None) -> str:
        """Service names to 127.0.0.1, container ports to this machine's free ports."""
        if previous in PORT_FLAGS:
            return self.port(value)
        if previous in HOST_FLAGS:
            assert value in self.services, f"{previous} {value}: not a service of the file"
            return "127.0.0.1"
        value = value.replace("0.0.0.0", "127.0.0.1")
        names = "|".join(map(re.escape, [*self.services, "127.0.0.1", "localhost"]))
        return re.sub(rf"\b({names}):(\d+)\b", lambda m: f"127.0.0.1:{self.port(m.group(2))}", value)

    def command(self, service: dict[str, Any]) -> list[str]:
        args = [str(a) for a in service["command"]]
        local = [self.localize(a, args[i - 1] if i else None) for i, a in enumerate(args)]
        return [sys.executable, "-m", "inferswarm.cli", *local]

    def env(self, service: dict[str, Any]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("INFERSWARM_")}
        given = {k: self.localize(str(v)) for k, v in (service.get("environment") or {}).items()}
        return {**base, **given}

    def start(self, name: str, replicas: int = 1) -> list[subprocess.Popen[str]]:
        service = self.services[name]
        self.mount(service)
        started = []
        for i in range(replicas):
            log = (self.logs / f"{name}-{i}.log").open("w")
            started.append(
                subprocess.Popen(
                    self.command(service),
                    cwd=self.app,
                    env=self.env(service),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        self.procs[name] = started
        return started

    def healthy(self, name: str, timeout_s: float) -> None:
        """Run the service's own healthcheck command (localized) until it passes."""
        test = [self.localize(str(a)) for a in self.services[name]["healthcheck"]["test"]]
        assert test[0] == "CMD" and test[1] == "python", test
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if subprocess.run([sys.executable, *test[2:]], capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} never became healthy: {self.log(name)}")

    def log(self, name: str, index: int = 0) -> str:
        return (self.logs / f"{name}-{index}.log").read_text()

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
        for procs in self.procs.values():
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, VARIABLES)
    yield s
    s.stop()


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: spec.get("condition", "service_started") for d, spec in deps.items()}


def test_compose_services_run_a_headless_stress_test_as_processes(stack: Stack) -> None:
    services = stack.services
    runnable = [n for n, s in services.items() if not s.get("profiles")]
    assert set(runnable) == {"target", "agent", "master", "worker"}
    # Start in the file's dependency order, honouring service_healthy.
    order: list[str] = []
    while len(order) < len(runnable):
        ready = [n for n in runnable if n not in order and set(depends_on(services[n])) <= set(order)]
        assert ready, f"a dependency cycle or an unknown service in {runnable}"
        order += ready
    assert order == ["target", "agent", "master", "worker"]
    for name in order:
        replicas = int((services[name].get("deploy") or {}).get("replicas", 1))
        for dep, condition in depends_on(services[name]).items():
            # service_healthy: the dependency's healthcheck already passed, just below, when it started
            assert condition == "service_started" or "healthcheck" in services[dep], (name, dep)
        stack.start(name, replicas)
        if "healthcheck" in services[name]:
            stack.healthy(name, 30)
        if name == "agent":
            assert wait_for_http(f"http://127.0.0.1:{stack.ports['9109']}/health", 30), stack.log("agent")
    workers = stack.procs["worker"]
    assert len(workers) == 2  # deploy.replicas: ${WORKERS}

    (master,) = stack.procs["master"]
    try:
        master.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the master did not finish: {stack.log('master')[-3000:]}")
    assert master.returncode == 0, stack.log("master")[-3000:]
    for i, worker in enumerate(workers):
        assert worker.wait(30) == 0, stack.log("worker", i)[-2000:]
        assert "accepted this worker" in stack.log("worker", i)

    # Results on the "host", in ./results, written by the master alone.
    run_dir = only_run_dir(stack.results)
    assert run_dir.name.endswith("-demo")
    run = read_json(run_dir / "run.json")
    assert (run["mode"], run["status"], run["headless"]) == ("master", "completed", True)
    assert run["target"] == f"http://127.0.0.1:{stack.ports['8000']}"
    assert len(run["workers"]["joined"]) == 2 and not run["workers"]["refused"]
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    for capability in ("text-to-image", "prompt-enhance", "gpu-check"):
        assert int(stats[capability]["Request Count"]) > 0
    nodes = {r["node"] for r in read_csv(run_dir / "locust_telemetry.csv")}
    workers_seen = {n for n in nodes if n.startswith("worker@")}
    others = nodes - workers_seen - {n for n in nodes if n.startswith("master@")}
    # the agent beside the target, and the target's own gpu-check route (demo.yaml telemetry.gpu_check)
    assert len(workers_seen) == 2 and {n.split("@")[0] for n in others} == {"agent", "target"}, nodes
    sources = run["telemetry"]["sources"]
    assert sources[0]["url"] == f"http://127.0.0.1:{stack.ports['9109']}" and sources[0]["kind"] == "agent"
    assert (run_dir / "report.html").is_file() and (run_dir / "summary.md").is_file()
