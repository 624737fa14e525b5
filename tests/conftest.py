"""Shared fixtures: a run-config writer and the reference target as a real subprocess on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Locust monkey-patches the standard library with gevent on import; it must happen before anything else
# imports ssl or sockets, exactly as in a real Locust process.
import locust  # noqa: F401
import pytest
import yaml

from inferswarm import nvml
from inferswarm.emulator.launcher import ReferenceTarget

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "test-assets"


def base_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "t",
        "target": {"base_url": "http://127.0.0.1:9", "request_timeout_s": 10},
        "assets_dir": str(ASSETS),
        "capabilities": [
            {
                "name": "text-to-image",
                "kind": "json",
                "path": "/text-to-image",
                "params": {"prompt": "a cat"},
            },
        ],
        "load": {"shape": "ramp", "step_users": 1, "step_duration_s": 1, "max_users": 2},
    }
    config.update(overrides)
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(data: Any, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def start_target(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], ReferenceTarget]]:
    started: list[ReferenceTarget] = []

    def start(settings: dict[str, Any]) -> ReferenceTarget:
        path = tmp_path / f"target-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(settings))
        target = ReferenceTarget(path).__enter__()
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()


@pytest.fixture
def fresh_nvml() -> Iterator[None]:
    """The NVML seam remembers success or failure per process; tests that touch it start clean."""
    nvml.reset_for_tests()
    yield
    nvml.reset_for_tests()
