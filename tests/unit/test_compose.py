"""docker-compose.yml cannot run here (no Docker engine); check that it still agrees with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from inferswarm.cli import build_parser
from inferswarm.config import load_config, with_extra_agents
from inferswarm.target.settings import load_target_settings
from tests.conftest import REPO


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def expand_defaults(value: str) -> str:
    """Resolve `${NAME:-default}` to its default, as compose does with the variable unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services_and_ports() -> None:
    services = compose()["services"]
    assert set(services) == {"target", "agent", "master", "worker", "report"}
    assert services["report"]["profiles"] == ["report"]  # not started by `up`, only by `run`
    assert "8089:8089" in services["master"]["ports"]
    assert "ports" not in services["worker"]  # scalable: workers publish nothing


def test_target_command_parses_and_its_settings_load() -> None:
    command = compose()["services"]["target"]["command"]
    args = build_parser().parse_args(command)
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert load_target_settings(REPO / args.config).slots >= 1


def test_agent_command_parses_and_the_master_polls_it() -> None:
    services = compose()["services"]
    args = build_parser().parse_args(services["agent"]["command"])
    assert args.command == "agent" and args.host == "0.0.0.0"
    agents = expand_defaults(services["master"]["environment"]["INFERSWARM_AGENTS"])
    config = with_extra_agents(load_config(REPO / "configs" / "demo.yaml"), agents)
    assert [a.url for a in config.telemetry.agents] == [f"http://agent:{args.port}"]


def test_report_service_reads_the_masters_run_directory() -> None:
    services = compose()["services"]
    args = build_parser().parse_args([expand_defaults(str(p)) for p in services["report"]["command"]])
    master = [expand_defaults(str(p)) for p in services["master"]["command"]]
    csv_prefix = master[master.index("--csv") + 1]
    assert args.command == "report" and args.run_dir == str(Path(csv_prefix).parent)


def test_locust_services_use_an_existing_locustfile_and_valid_config() -> None:
    services = compose()["services"]
    for name in ("master", "worker"):
        service = services[name]
        assert service["entrypoint"] == ["locust"]
        command = [expand_defaults(str(part)) for part in service["command"]]
        locustfile = command[command.index("-f") + 1]
        assert (REPO / locustfile).is_file()
        config = expand_defaults(service["environment"]["INFERSWARM_CONFIG"])
        assert load_config(REPO / config).name
    master = [expand_defaults(str(p)) for p in services["master"]["command"]]
    worker = [expand_defaults(str(p)) for p in services["worker"]["command"]]
    assert "--master" in master and master[master.index("--host") + 1] == "http://target:8000"
    assert worker[worker.index("--master-host") + 1] == "master"


def test_dockerfile_copies_what_the_services_read() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for folder in ("lib", "locustfiles", "configs", "test-assets"):
        assert f"COPY {folder} ./{folder}" in dockerfile
