"""TCP connect samples against a local listening socket and a closed port."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from inferswarm.checks.context import CheckContext
from inferswarm.checks.model import Status
from inferswarm.checks.network import check_connect, check_tls, tcp_samples
from inferswarm.config import parse_config
from inferswarm.emulator.launcher import free_port
from inferswarm.secrets import Scrubber
from tests.conftest import base_config


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def context(url: str, **checks: object) -> CheckContext:
    config = parse_config(base_config(target={"base_url": url}, checks=checks))
    return CheckContext(config, url, {}, Scrubber())


def test_n_samples_against_a_listening_socket(listening: int) -> None:
    times = tcp_samples("127.0.0.1", listening, 4, 2.0)
    assert len(times) == 4 and all(0 <= t < 2000 for t in times)
    ctx = context(f"http://127.0.0.1:{listening}", tcp_samples=3)
    check = check_connect(ctx)
    assert check.status is Status.PASS and ctx.unreachable is None
    facts = json.loads(check.details)
    assert facts["samples"] == 3 and facts["port"] == listening
    assert facts["min_ms"] <= facts["median_ms"] <= facts["max_ms"]


def test_a_closed_port_fails_once_and_quickly() -> None:
    port = free_port()
    ctx = context(f"http://127.0.0.1:{port}", tcp_samples=50, timeout_s=5)
    started = time.monotonic()
    check = check_connect(ctx)
    assert time.monotonic() - started < 1.0  # refused once, not 50 times or for the timeout
    assert check.status is Status.FAIL and "connection refused" in check.details
    assert ctx.unreachable is not None and str(port) in ctx.unreachable
    with pytest.raises(ConnectionRefusedError):
        tcp_samples("127.0.0.1", port, 1, 1.0)


def test_tls_is_skipped_for_http_and_for_an_unreachable_https_target() -> None:
    assert check_tls(context("http://127.0.0.1:1")).status is Status.SKIP
    ctx = context("https://127.0.0.1:1")
    ctx.unreachable = "refused"
    skipped = check_tls(ctx)
    assert skipped.status is Status.SKIP and "target unreachable" in skipped.details


def test_a_tls_handshake_with_a_plain_tcp_server_fails_within_the_timeout(listening: int) -> None:
    ctx = context(f"https://127.0.0.1:{listening}", timeout_s=0.5)
    started = time.monotonic()
    check = check_tls(ctx)
    assert check.status is Status.FAIL and time.monotonic() - started < 2.0
