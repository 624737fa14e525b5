"""Fixtures for the unit tests: a loopback HTTP server and registries a test may add kinds to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferswarm.load import registry as load_registry
from inferswarm.protocols import base as protocol_base
from tests.unit.loopback import Loopback, serve


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    yield from serve()


@pytest.fixture
def private_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kinds registered during the test are gone after it (the built-in kinds stay registered)."""
    monkeypatch.setattr(protocol_base, "_PROTOCOLS", dict(protocol_base._PROTOCOLS))
    monkeypatch.setattr(load_registry, "_KINDS", dict(load_registry._KINDS))
