"""`inferswarm serve`'s transport: half-sent requests are closed after the read timeout."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from inferswarm.emulator.app import create_app
from inferswarm.emulator.serving import (
    KEEP_ALIVE_S,
    MAX_HEADER_BYTES,
    READ_TIMEOUT_S,
    ReadTimeoutH11Protocol,
    server_config,
)
from tests.integration.http import request
from tests.unit.emulator.conftest import Served, instant_settings, serve

SHORT_S = 0.5
SLACK_S = 3.0
"""Less than KEEP_ALIVE_S: a close within it is the read timeout's, not the keep-alive timer's."""


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF) before the socket's timeout; bytes are drained."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


@contextmanager
def connected(read_timeout_s: float = SHORT_S) -> Iterator[tuple[Served, socket.socket]]:
    """An in-process target with a short read timeout, and a raw connection to it."""
    with (
        serve(instant_settings(), read_timeout_s=read_timeout_s) as target,
        socket.create_connection((target.host, target.port), timeout=read_timeout_s + SLACK_S) as sock,
    ):
        yield target, sock


def stats(target: Served) -> dict[str, object]:
    return dict(json.loads(request(f"{target.url}/stats", "GET")[2]))


def test_serve_uses_the_bounded_transport() -> None:
    config = server_config(create_app(instant_settings()), "127.0.0.1", 0)
    assert config.http is ReadTimeoutH11Protocol and ReadTimeoutH11Protocol.read_timeout_s == READ_TIMEOUT_S
    assert config.timeout_keep_alive == KEEP_ALIVE_S
    assert config.h11_max_incomplete_event_size == MAX_HEADER_BYTES
    assert not config.access_log


def test_half_a_request_line_is_closed() -> None:
    assert SLACK_S < KEEP_ALIVE_S
    with connected() as (_, sock):
        sock.sendall(b"POST /prompt-enhance HT")
        assert closed_by_server(sock)


def test_a_silent_connection_is_closed() -> None:
    with connected() as (_, sock):
        assert closed_by_server(sock)


def test_half_a_request_after_a_kept_alive_one_is_closed() -> None:
    # uvicorn cancels its keep-alive timer on the first byte of the next request: nothing else would fire
    with connected() as (_, sock):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = b""
        while b'"status":"OK"' not in answer:
            answer += sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost:")
        assert closed_by_server(sock)


def test_half_a_body_is_closed_and_counted_as_a_disconnect() -> None:
    with connected() as (target, sock):
        head = b"POST /prompt-enhance HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b"Content-Length: 50\r\n\r\n" + b'{"prompt": ')
        assert closed_by_server(sock)
        deadline = time.monotonic() + 5
        while stats(target)["client_disconnects"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats(target)["client_disconnects"] == 1
        assert stats(target)["requests"] == {}


def test_a_slow_but_steady_request_is_served() -> None:
    # the timeout is per wait, not per request: bytes arriving more often than it keep the connection
    with connected() as (_, sock):
        for piece in (b"GET /hea", b"lth HTTP/1.1\r\n", b"Host: t\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(SHORT_S / 4)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_oversized_headers_are_refused() -> None:
    with connected(READ_TIMEOUT_S) as (_, sock):
        big = b"x" * (MAX_HEADER_BYTES + 1)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + big)  # still no end of headers
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ")
