"""The reference target served in-process on loopback, with `inferswarm serve`'s own uvicorn config."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from inferswarm.emulator.app import create_app
from inferswarm.emulator.launcher import free_port
from inferswarm.emulator.serving import READ_TIMEOUT_S, server_config
from inferswarm.emulator.settings import KNOWN_CAPABILITIES, TargetSettings

INSTANT = {"distribution": "fixed", "mean_ms": 0}


def instant_settings(**overrides: Any) -> TargetSettings:
    """Every capability answers at once (no service time, no token delays)."""
    caps = {
        name: {"service_time": INSTANT, "ttft_ms": 0, "token_delay_ms": 0, "output_tokens": 3}
        for name in KNOWN_CAPABILITIES
    }
    return TargetSettings.model_validate({"capabilities": caps, **overrides})


@dataclass
class Served:
    url: str
    host: str
    port: int
    app: FastAPI


@contextmanager
def serve(settings: TargetSettings, read_timeout_s: float = READ_TIMEOUT_S) -> Iterator[Served]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, "warning", read_timeout_s))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("in-process target did not start")
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", "127.0.0.1", port, app)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served() -> Iterator[Served]:
    with serve(instant_settings()) as target:
        yield target
