"""A Locust environment with a local runner (which logs request events into stats), and the request
events it fired, for in-process tests of the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from locust.env import Environment


@pytest.fixture
def env() -> Iterator[Environment]:
    environment = Environment()
    runner = environment.create_local_runner()  # the runner is what logs request events into stats
    yield environment
    runner.quit()


@pytest.fixture
def fired(env: Environment) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: events.append(kw))
    return events
