"""A real HTTP server on 127.0.0.1 for in-process Locust tests: gevent's WSGI server, so it shares the
test's event loop (Locust has monkey-patched the process) and a handler may sleep or stream.

Each test routes `(method, path)` to a handler that gets the request and returns a `Reply`; every request
the server received is kept in `requests`, in order. `raw_server` speaks raw bytes for faults.
"""

from __future__ import annotations

import http
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b"{}"
    """A bytes body is sent with its length; an iterable is streamed (chunked) as it is produced."""
    content_type: str = "application/json"
    delay_s: float = 0.0
    """Sleep this long before answering (a slow service)."""
    headers: tuple[tuple[str, str], ...] = ()
    """More response headers (Set-Cookie, Location)."""


Handler = Callable[[Request], Reply]


@dataclass
class Loopback:
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str, handler: Handler | Reply) -> None:
        self.routes[(method, path)] = handler if callable(handler) else (lambda _request: handler)

    def hits(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, body)
        self.requests.append(request)
        handler = self.routes.get((request.method, request.path))
        reply = handler(request) if handler is not None else Reply(404, b'{"detail": "no route"}')
        if reply.delay_s:
            gevent.sleep(reply.delay_s)
        status = f"{reply.status} {http.HTTPStatus(reply.status).phrase}"
        out_headers = [("Content-Type", reply.content_type), *reply.headers]
        if isinstance(reply.body, bytes):
            out_headers.append(("Content-Length", str(len(reply.body))))
            start_response(status, out_headers)
            return [reply.body]
        start_response(status, out_headers)
        return reply.body


def sse(events: Iterable[str], gap_s: float) -> Iterator[bytes]:
    """Server-sent events, one `data:` line each, `gap_s` apart (the first after one gap)."""
    for data in events:
        gevent.sleep(gap_s)
        yield f"data: {data}\n\n".encode()


class _NoDelayServer(WSGIServer):
    """pywsgi writes a response's head and body in separate sends; with Nagle's algorithm on, the body
    then waits for the client's delayed ACK (about 40 ms on Linux), which would cap every test's request
    rate at ~25 per connection per second. Real servers (uvicorn, nginx) set TCP_NODELAY too."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def serve() -> Iterator[Loopback]:
    """Run a `Loopback` for the duration of a fixture."""
    loopback = Loopback()
    server = _NoDelayServer(("127.0.0.1", 0), loopback.app, log=None, error_log=None)
    server.start()
    loopback.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield loopback
    finally:
        server.stop(timeout=1)


def read_request(sock: socket.socket) -> bytes:
    """One HTTP request's bytes (head and a Content-Length body) as a raw handler receives them."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


def header_of(request: bytes, name: str) -> str:
    """A header's value in a raw request ("" when absent)."""
    for line in request.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return ""


RawHandler = Callable[[socket.socket, bytes], None]
"""Gets the connection and the request read from it; answers (or not) with raw bytes."""


@contextmanager
def raw_server(handler: RawHandler) -> Iterator[str]:
    """A server on 127.0.0.1 that answers each connection's first request with raw bytes: the faults no
    well-behaved server makes (a body shorter than its length, a chunked body cut short, no answer). Its
    connections are closed when the block ends (handlers still running are killed after 1 s)."""

    def handle(sock: socket.socket, _address: Any) -> None:
        try:
            handler(sock, read_request(sock))
        except OSError:
            pass  # the client gave up (closed): what a fault test often wants
        finally:
            sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop(timeout=1)
