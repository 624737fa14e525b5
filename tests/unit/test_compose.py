"""docker-compose.yml cannot run here (no Docker engine): check that it agrees with the code. The
integration test `test_compose_stack.py` runs its commands as processes."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from inferswarm.cli.parser import build_parser
from inferswarm.cli.run import check_distributed
from inferswarm.config import load_config, with_extra_agents
from inferswarm.emulator.settings import load_target_settings
from tests.compose_file import dockerfile, interpolate, services
from tests.conftest import REPO


def parse(service: dict[str, Any]) -> argparse.Namespace:
    return build_parser().parse_args([str(a) for a in service["command"]])


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}/${UNSET}/$$HOME", env) == "x/d//d//$HOME"
    assert interpolate({"a": ["${SET}"], "n": 3}, env) == {"a": ["x"], "n": 3}


def test_services_and_ports() -> None:
    s = {name: service for name, service in services().items() if "profiles" not in service}
    assert set(s) == {"target", "agent", "master", "worker"}  # what a plain `docker compose up` starts
    assert s["target"]["ports"] == ["8000:8000"] and s["master"]["ports"] == ["8089:8089"]
    assert "ports" not in s["worker"]  # scalable: workers publish nothing
    assert all(service["image"] == "inferswarm:latest" for service in s.values())
    # An init as PID 1 forwards SIGTERM and reaps; not for the agent, whose PID namespace is the host's
    # (podman refused to start it: "cannot add init binary as PID 1").
    assert all(service["init"] for name, service in s.items() if name != "agent")
    assert s["agent"]["pid"] == "host" and s["agent"]["init"] is False
    # podman-compose starts one replica unless the mode is spelled out
    assert s["worker"]["deploy"] == {"mode": "replicated", "replicas": "2"}
    assert all(service["user"] == "root" for service in s.values())
    assert services({"RUN_AS": "1000:1000"})["master"]["user"] == "1000:1000"
    assert s["master"]["stop_grace_period"] == "60s"  # SIGTERM, then time for the CSVs and the report


def test_host_network_override_puts_every_service_on_loopback() -> None:
    # deploy/compose/host-network.yml with the variables scripts/compose-smoke sets: every address the
    # stack binds or reaches is 127.0.0.1 (the smoke's load never leaves the machine).
    override = yaml.safe_load((REPO / "deploy/compose/host-network.yml").read_text())["services"]
    assert override == {name: {"network_mode": "host"} for name in ("target", "agent", "master", "worker")}
    loopback = {
        "BIND_HOST": "127.0.0.1",
        "TARGET_URL": "http://127.0.0.1:8000",
        "AGENTS": "http://127.0.0.1:9109",
        "MASTER_HOST": "127.0.0.1",
        "RESULTS_DIR": "/tmp/r",
    }
    s = services(loopback)
    target, agent, master, worker = (parse(s[name]) for name in ("target", "agent", "master", "worker"))
    assert target.host == agent.host == master.master_bind_host == master.web_host == "127.0.0.1"
    assert master.host == "http://127.0.0.1:8000" and worker.master_host == "127.0.0.1"
    assert s["master"]["environment"]["INFERSWARM_AGENTS"] == "http://127.0.0.1:9109"
    assert all(service["volumes"][1] == "/tmp/r:/app/results" for service in s.values())


def test_target_command_parses_and_its_settings_load() -> None:
    args = parse(services()["target"])
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert load_target_settings(REPO / args.config).slots >= 1


def test_master_and_worker_run_one_config_and_meet_on_one_port() -> None:
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    # the same config expression on both sides, so the fingerprint check can only pass
    assert raw["master"]["command"][1] == raw["worker"]["command"][1] == "${CONFIG:-configs/demo.yaml}"
    assert "${WORKERS" in raw["master"]["command"][raw["master"]["command"].index("--expect-workers") + 1]
    assert str(raw["worker"]["deploy"]["replicas"]).startswith("${WORKERS")
    s = services()
    master, worker = parse(s["master"]), parse(s["worker"])
    assert master.master and not master.worker and check_distributed(master) is None
    assert worker.worker and check_distributed(worker) is None
    assert worker.master_host == "master" and worker.master_port == master.master_port
    assert master.web and master.web_host == "0.0.0.0" and master.out == "results"
    assert master.host == "http://target:8000" and master.expect_workers == 2
    assert parse(services({"UI": "--headless"})["master"]).web is False
    assert load_config(REPO / master.config).name == "demo"


def test_the_master_polls_the_agent() -> None:
    s = services()
    agent = parse(s["agent"])
    assert agent.command == "agent" and agent.host == "0.0.0.0"
    config = with_extra_agents(
        load_config(REPO / "configs/demo.yaml"), s["master"]["environment"]["INFERSWARM_AGENTS"]
    )
    assert [a.url for a in config.telemetry.agents] == [f"http://agent:{agent.port}"]


def test_dockerfile_copies_what_the_services_read() -> None:
    entry, workdir, copied = dockerfile()
    assert entry == ["inferswarm"] and workdir == "/app"
    assert {"lib", "locustfiles", "configs", "test-assets"} <= set(copied)
    for service in services().values():
        for volume in service["volumes"]:
            host, container = volume.split(":")[:2]
            assert container.startswith("/app/") and (host == "./results" or (REPO / host).is_dir())


def test_the_job_tester_runs_the_orchestrator_matrix_on_the_crontab_schedule() -> None:
    from inferswarm.orchestrators.config import load_orchestrators_config
    from inferswarm.orchestrators.schedule import cron_problem

    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["job-tester"]
    assert raw["profiles"] == ["job-tester"]  # started only on request
    tester = services({"CRONTAB_SCHEDULE": "*/15 * * * *"})["job-tester"]
    args = parse(tester)
    assert args.command == "orchestrators" and args.every == "*/15 * * * *" and args.out == "results"
    assert cron_problem(parse(services()["job-tester"]).every) is None  # the default schedule: hourly
    assert args.webhook_host == "0.0.0.0"  # the gateway reaches the webhook from its own container
    config = load_orchestrators_config(REPO / args.config)
    assert tester["ports"] == [f"{config.webhook.port}:{config.webhook.port}"]
    assert set(tester["environment"]) >= {config.leaderboard.secret_env, str(config.gateway.token_env)}
    assert tester["stop_grace_period"] == "150s" and config.gateway.request_timeout_s < 150
