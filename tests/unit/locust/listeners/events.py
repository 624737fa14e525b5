"""Environments for listener tests, and request events as the client fires them."""

from __future__ import annotations

from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.locust.outcome import SLOT, STATUS


def local_env() -> Environment:
    env = Environment()
    env.create_local_runner()  # logs request events into env.stats
    return env


def env_on(side: type[WorkerRunner] | type[MasterRunner]) -> Environment:
    """An environment on a worker or a master: the listeners only ask which side they are on, so the
    runner is an instance that was never started (no sockets, no greenlets)."""
    env = Environment()
    runner = object.__new__(side)
    runner.greenlet = None  # what Locust's Runner.__del__ looks at
    env.runner = runner
    return env


def fire(
    env: Environment,
    name: str,
    status: int | None = 200,
    slot: int | None = None,
    exception: BaseException | None = None,
    response_time: float = 10.0,
    context: dict[str, Any] | None = None,
) -> None:
    if context is None:
        context = {} if status is None else {STATUS: status}
        if slot is not None:
            context[SLOT] = slot
    env.events.request.fire(
        request_type="POST",
        name=name,
        response_time=response_time,
        response_length=0,
        exception=exception,
        context=context,
    )
