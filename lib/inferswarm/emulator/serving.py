"""How `inferswarm serve` runs the reference target under uvicorn: bounded headers and a read timeout.

uvicorn's h11 protocol arms no timer while it waits for a request: a client that connects and sends
half a request line (or half a body) and then nothing holds its connection, and its buffers, forever.
`timeout_keep_alive` only covers the gap after a response. `ReadTimeoutH11Protocol` closes a
connection when the server has waited `read_timeout_s` for the next bytes of a request (request line,
headers or body) and none came; a body the app is not reading yet (flow control) does not count.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

READ_TIMEOUT_S = 10.0
"""Longest wait for the next bytes of a request before the connection is closed."""
KEEP_ALIVE_S = 5
"""Idle keep-alive connections are closed after this (uvicorn's default, stated)."""
MAX_HEADER_BYTES = 16 * 1024
"""Request line plus headers; more is refused 400 by h11 (its default, stated)."""
WAITING = (h11.IDLE, h11.SEND_BODY)
"""The client's states in which the server is waiting for it."""


class ReadTimeoutH11Protocol(H11Protocol):
    read_timeout_s: float = READ_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None

    def _rearm(self) -> None:
        self._disarm()
        if self.conn.their_state in WAITING and not self.transport.is_closing():
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.conn.their_state not in WAITING:
            return
        if self.flow.read_paused:  # the app has not taken the body yet: the client is not idle
            self._rearm()
            return
        self.transport.close()  # connection_lost tells a waiting app: http.disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._rearm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._rearm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_timeout(read_timeout_s: float) -> type[ReadTimeoutH11Protocol]:
    """ReadTimeoutH11Protocol with another timeout (tests use a short one)."""
    if read_timeout_s == READ_TIMEOUT_S:
        return ReadTimeoutH11Protocol
    return type("ReadTimeoutH11Protocol", (ReadTimeoutH11Protocol,), {"read_timeout_s": read_timeout_s})


def server_config(
    app: Any, host: str, port: int, log_level: str = "info", read_timeout_s: float = READ_TIMEOUT_S
) -> Config:
    """The uvicorn config of `inferswarm serve`."""
    return Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=protocol_with_timeout(read_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
