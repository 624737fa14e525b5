"""Leaderboard stats: the contract's shape, an HMAC over exactly the bytes sent, retries that never post
a stat twice (PROTOCOLS.md section 4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inferswarm.orchestrators.config import LeaderboardConfig
from inferswarm.orchestrators.discovery import Cell
from inferswarm.orchestrators.jobs import JobResult
from inferswarm.orchestrators.leaderboard import Poster, make_stat, sign
from inferswarm.secrets import Scrubber
from tests.unit.orchestrators.conftest import contract

CELL = Cell("0x" + "a" * 40, "https://a.example:8935", "text-to-image", "ByteDance/SDXL-Lightning", True)


def result(
    ok: bool, rtt: float, status: int = 200, code: str = "", message: str = "", body: bytes = b""
) -> JobResult:
    return JobResult(
        CELL, 0, 1725029035.7, rtt, status, ok, "" if ok else "capacity", code, message, len(body), body
    )


class Recorder:
    """A leaderboard stand-in: answers each post from a script and keeps what it received."""

    def __init__(self, answers: list[tuple[int, bytes, float]]) -> None:
        self.answers = answers
        self.received: list[tuple[bytes, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.received.append((body, self.headers.get("Authorization", "")))
                status, text, delay = recorder.answers.pop(0) if recorder.answers else (200, b"ok", 0.0)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def do_GET(self) -> None:
                regions = json.dumps(
                    {
                        "regions": [
                            {"id": "FRA", "name": "Frankfurt", "type": "ai"},
                            {"id": "MDW", "name": "Chicago", "type": "transcoding"},
                        ]
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", str(len(regions)))
                self.end_headers()
                self.wfile.write(regions.encode())

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    instance = Recorder([])
    yield instance
    instance.server.shutdown()
    instance.server.server_close()


def poster(url: str, secret: str = "k3y", **fields: Any) -> Poster:
    config = LeaderboardConfig(url=url, backoff_s=0.01, timeout_s=1.0, **fields)
    return Poster(config, secret, threading.Event())


def test_the_stat_has_the_leaderboard_samples_fields_and_types() -> None:
    sample = contract("leaderboard-ai-stat.sample.json")
    stat = make_stat(
        "FRA",
        [
            result(False, 2.0, 503, "503", '{"error":{"message":"Service Unavailable Error"}}'),
            result(True, 0.5),
        ],
        {"prompt": "a bear", "model_id": CELL.model, "height": 512},
        True,
        Scrubber(),
    ).stat
    # The sample predates `model_is_warm` (PROTOCOLS.md's body has it, a bool); the rest is the sample's.
    assert set(stat) == set(sample) | {"model_is_warm"} and stat["model_is_warm"] is True
    numbers = ("success_rate", "round_trip_time")  # floats, as the leaderboard decodes them
    for key, value in sample.items():
        if key in numbers:
            assert isinstance(stat[key], int | float) and not isinstance(stat[key], bool), key
        else:
            assert type(stat[key]) is type(value), key
    for error in stat["errors"]:
        assert isinstance(error["error_code"], str) and isinstance(error["count"], int)
        assert set(error) <= {"error_code", "message", "count"}
    assert stat["success_rate"] == 0.5
    assert stat["round_trip_time"] == 0.5  # headline round trip: of the successful job only
    assert stat["timestamp"] == 1725029035
    assert json.loads(stat["input_parameters"]) == {"prompt": "a bear", "model_id": CELL.model, "height": 512}
    assert stat["errors"] == [
        {"error_code": "503", "message": '{"error":{"message":"Service Unavailable Error"}}', "count": 1}
    ]


def test_a_cell_with_no_success_reports_the_failures_round_trip_and_no_payload_unless_captured() -> None:
    stat = make_stat(
        "FRA",
        [result(False, 1.0, 503, "503", "x"), result(False, 3.0, 503, "503", "x")],
        {},
        False,
        Scrubber(),
    )
    assert stat.rtt_of == "failures" and stat.stat["round_trip_time"] == 2.0
    assert stat.stat["errors"] == [{"error_code": "503", "message": "x", "count": 2}]
    assert stat.stat["response_payload"] == "" and stat.stat["success_rate"] == 0.0


def test_a_secret_the_server_echoed_never_reaches_the_stat() -> None:
    echoed = result(True, 0.1, body=b'{"images": [], "auth": "Bearer tok-123456"}')
    stat = make_stat("FRA", [echoed], {}, True, Scrubber(["Bearer tok-123456"]))
    assert "tok-123456" not in stat.body.decode() and "***" in stat.stat["response_payload"]


def test_the_signature_is_over_exactly_the_bytes_sent(recorder: Recorder) -> None:
    stat = make_stat("FRA", [result(True, 0.25)], {"prompt": "ünïcode"}, False, Scrubber())
    outcome = poster(recorder.url).post(stat.body)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("posted", 200, 1)
    [(body, authorization)] = recorder.received
    assert body == stat.body  # the very bytes: nothing re-serialised the stat
    assert authorization == hmac.new(b"k3y", body, hashlib.sha256).hexdigest() == sign(b"k3y", body)
    assert not authorization.lower().startswith("bearer")


def test_5xx_is_retried_until_ok_and_4xx_is_not(recorder: Recorder) -> None:
    recorder.answers += [(500, b"db down", 0.0), (502, b"", 0.0)]
    outcome = poster(recorder.url).post(b'{"a":1}')
    assert (outcome.status, outcome.attempts) == ("posted", 3)
    assert [b for b, _ in recorder.received] == [b'{"a":1}'] * 3

    recorder.received.clear()
    recorder.answers.append((403, b'{"error":"request can not be authenticated"}', 0.0))
    refused = poster(recorder.url).post(b'{"a":2}')
    assert (refused.status, refused.http_status, refused.attempts) == ("failed", 403, 1)
    assert "request can not be authenticated" in refused.error and len(recorder.received) == 1


def test_retries_are_bounded_and_a_refused_connection_is_retried(recorder: Recorder) -> None:
    recorder.answers += [(503, b"", 0.0)] * 5
    outcome = poster(recorder.url, retries=2).post(b"{}")
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("failed", 503, 3)
    port = recorder.server.server_address[1]
    recorder.server.shutdown()
    recorder.server.server_close()
    nobody = poster(f"http://127.0.0.1:{port}/api", retries=2).post(b"{}")
    assert (nobody.status, nobody.http_status, nobody.attempts) == ("failed", None, 3)
    assert nobody.error.startswith("not delivered")


def test_no_answer_after_sending_is_not_retried_so_nothing_is_posted_twice(recorder: Recorder) -> None:
    recorder.answers.append((200, b"ok", 1.5))  # the leaderboard stored it but answers after our timeout
    outcome = poster(recorder.url, retries=3).post(b'{"once":true}')
    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert "not retried" in outcome.error
    time.sleep(0.2)
    assert len(recorder.received) == 1


def test_dry_run_posts_nothing(recorder: Recorder) -> None:
    assert poster(recorder.url, dry_run=True).post(b"{}").status == "dry_run"
    assert recorder.received == []


def test_the_region_is_checked_against_the_leaderboards_list(recorder: Recorder) -> None:
    board = poster(recorder.url)
    assert board.check_region("FRA") is None
    problem = board.check_region("XYZ")
    assert problem is not None and "'XYZ' is not one of the leaderboard's regions (FRA, MDW)" in problem
