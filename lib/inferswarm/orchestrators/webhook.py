"""The embedded webhook server the gateway asks which orchestrators to use (`-orchWebhookUrl`).

`GET /orchestrators` answers `[{"address": "<service URI>"}]` for the pinned orchestrator, or every
known orchestrator when none is pinned (as seed 002's tester does); any other method gets 405, any other
path 404. Each fetch is counted, so the tester can wait until the gateway has seen a new pin.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/orchestrators"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, {"error": "not found"})
            return
        self._answer(200, self.server.webhook.fetched())

    def _refuse(self) -> None:
        self._answer(405, {"error": "method not allowed"}, allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def _answer(self, status: int, document: Any, allow: str | None = None) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the gateway polls often; fetches are counted instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    webhook: Webhook


class Webhook:
    """The webhook server on its own thread; `pin()` chooses what it answers."""

    def __init__(self, host: str, port: int, all_uris: list[str]) -> None:
        self._lock = threading.Condition()
        self._all = list(all_uris)
        self._pinned: str | None = None
        self._fetches = 0
        self._pinned_at_fetch = 0
        self._server = _Server((host, port), _Handler)
        self._server.webhook = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{PATH}"

    def start(self) -> Webhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fetched(self) -> list[dict[str, str]]:
        with self._lock:
            self._fetches += 1
            self._lock.notify_all()
            uris = [self._pinned] if self._pinned is not None else self._all
            return [{"address": uri} for uri in uris]

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def set_all(self, uris: list[str]) -> None:
        """What to answer while no orchestrator is pinned (discovery's service URIs)."""
        with self._lock:
            self._all = list(uris)

    def pin(self, service_uri: str | None) -> None:
        """Answer only `service_uri` from now on (None: every orchestrator)."""
        with self._lock:
            self._pinned = service_uri
            self._pinned_at_fetch = self._fetches

    def wait_for_fetch(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Whether the gateway fetched the list since the last pin, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._fetches <= self._pinned_at_fetch:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._lock.wait(min(left, 0.2))
            return True
