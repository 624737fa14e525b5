"""One test job: built and judged by the `livepeer` kind, timed to the end of the body, one deadline."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inferswarm.orchestrators.config import PipelineJob
from inferswarm.orchestrators.discovery import Cell
from inferswarm.orchestrators.jobs import run_job
from inferswarm.protocols import protocol_for
from inferswarm.secrets import Scrubber
from tests.conftest import ASSETS

CELL = Cell("0x" + "a" * 40, "https://a:8935", "text-to-image", "m1", True)
GOOD = json.dumps({"images": [{"url": "data:image/png;base64,AA==", "seed": 1, "nsfw": False}]}).encode()


class Gateway:
    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (200, GOOD)
        self.trickle_s = 0.0
        self.seen: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, text = gateway.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                for byte in text:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(gateway.trickle_s)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    instance = Gateway()
    yield instance
    instance.server.shutdown()
    instance.server.server_close()


def send(url: str, timeout_s: float = 5.0, token: str | None = None) -> Any:
    job = PipelineJob.model_validate({"uri": "text-to-image", "parameters": {"prompt": "a bear"}})
    capability = job.capability(CELL.model)
    request = protocol_for("livepeer").prepare(capability, ASSETS)
    if token:
        request = type(request)(
            request.method, request.path, {**request.headers, "Authorization": token}, request.body
        )
    return run_job(CELL, 0, capability, request, url, timeout_s, Scrubber([token] if token else []))


def test_a_valid_answer_is_a_success_timed_to_the_end_of_the_body(gateway: Gateway) -> None:
    result = send(gateway.url, token="Bearer tok-1")
    assert result.ok and result.status == 200 and result.bytes_received == len(GOOD)
    [seen] = gateway.seen
    assert seen["path"] == "/text-to-image" and seen["headers"]["Authorization"] == "Bearer tok-1"
    assert json.loads(seen["body"]) == {"model_id": "m1", "prompt": "a bear"}
    gateway.trickle_s = 0.002  # the body takes ~0.3 s to arrive after the headers
    slow = send(gateway.url)
    assert slow.ok and slow.round_trip_s >= len(GOOD) * 0.002


def test_an_error_answer_keeps_the_status_as_code_and_the_body_as_message(gateway: Gateway) -> None:
    gateway.answer = (503, b'{"error":{"message":"no orchestrators available"}}')
    result = send(gateway.url)
    assert (result.ok, result.status, result.category, result.error_code) == (False, 503, "capacity", "503")
    assert result.message == '{"error":{"message":"no orchestrators available"}}'


def test_a_200_that_breaks_the_pipeline_schema_fails_with_the_problem_not_the_body(gateway: Gateway) -> None:
    gateway.answer = (200, b'{"images": []}')
    result = send(gateway.url)
    assert (result.ok, result.category, result.error_code) == (False, "bad_body", "200")
    assert result.message == "text-to-image: images is empty"


def test_one_deadline_for_the_whole_job_and_no_answer_at_all(gateway: Gateway) -> None:
    gateway.trickle_s = 0.05  # ~5 s for the body: each byte arrives well within any per-read timeout
    started = time.monotonic()
    result = send(gateway.url, timeout_s=0.5)
    assert time.monotonic() - started < 2.0
    assert (result.ok, result.status, result.category, result.error_code) == (False, 0, "timeout", "TIMEOUT")
    port = gateway.server.server_address[1]
    gateway.server.shutdown()
    gateway.server.server_close()
    refused = send(f"http://127.0.0.1:{port}")
    assert (refused.category, refused.error_code) == ("connection_error", "CONNECTION_ERROR")


def test_a_secret_echoed_in_an_error_body_is_masked(gateway: Gateway) -> None:
    gateway.answer = (401, b'{"error":{"message":"bad token Bearer tok-secret-1"}}')
    result = send(gateway.url, token="Bearer tok-secret-1")
    assert "tok-secret-1" not in result.message and "***" in result.message
