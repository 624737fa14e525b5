"""The client under faults a well-behaved server never makes: bodies cut short, answers that never come or
come too slowly, secrets echoed back, bodies too large to hold. Each request is built the way a run
builds it (`build_user_classes`: the deadline is also the session's network timeout) and fires one event.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import gevent
import pytest
from locust.env import Environment

from inferswarm.config import parse_config
from inferswarm.locust.client import CapabilityClient
from inferswarm.locust.outcome import STATUS
from inferswarm.locust.user import build_user_classes
from inferswarm.protocols import FailureCategory, RequestFailure, register_protocol
from tests.conftest import base_config
from tests.unit.locust.test_client import ToyPollProtocol, chat_chunk, toy_capability
from tests.unit.loopback import Loopback, Reply, Request, header_of, raw_server, sse

DEADLINE_S = 1.0
WITHIN_S = 1.6 * DEADLINE_S
"""A request cut by the deadline ends within this: a correctness bound, not a speed test. The faults
below answer their headers after 0.8 s, so a deadline restarted after the headers would end at 1.8 s;
the 0.6 s between leaves room for a busy machine."""
TOKEN = "s3cr3t-T0KEN-0123456789abcdef"
SECRETS = {"Authorization": f"Bearer {TOKEN}"}

JSON_CAP = {"name": "echo", "kind": "json", "path": "/echo", "params": {"prompt": "a cat"}}
CHAT_CAP = {
    "name": "chat",
    "kind": "openai",
    "model": "m",
    "params": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
}


def peak_bytes_of(action: Callable[[], bool]) -> int:
    """The peak of Python memory allocated while `action` ran; the action must return True."""
    tracemalloc.start()
    try:
        assert action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def user_client(
    env: Environment,
    url: str,
    capability: dict[str, Any],
    timeout_s: float = DEADLINE_S,
    secrets: dict[str, str] | None = None,
    **target: Any,
) -> CapabilityClient:
    data = base_config(capabilities=[capability])
    data["target"].update({"base_url": url, "request_timeout_s": timeout_s, **target})
    [user_class] = build_user_classes(parse_config(data), secrets or {})
    return user_class(env).capability_client


def failure_of(event: dict[str, Any]) -> tuple[FailureCategory, str]:
    exception = event["exception"]
    assert isinstance(exception, RequestFailure), exception
    return exception.category, exception.detail


def head(status: str = "200 OK", content_type: str = "application/json", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- 1: a body cut short is a failure, whatever its bytes ------------------------------------------------
BODY_46 = b'{"images": [{"url": "http://x/a.png"}], "n": 1}'[:46]


def test_a_body_shorter_than_its_content_length_is_truncated(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    complete = b'{"images": []}'
    answers = iter([head(Content_Length="100000") + complete] * 2)

    def handler(sock: socket.socket, _request: bytes) -> None:
        sock.sendall(next(answers))  # then closes: 14 of 100000 bytes, valid JSON

    with raw_server(handler) as url:
        for body in ("json", "any"):
            client = user_client(env, url, {**JSON_CAP, "success": {"body": body}})
            assert client.send() is False
        assert [failure_of(e) for e in fired] == [(FailureCategory.BAD_BODY, "truncated")] * 2
        assert [e["context"] for e in fired] == [{STATUS: 200}] * 2
    answers = iter([head(Content_Length="100000") + BODY_46, head(Content_Length="2") + b"{}"])
    with raw_server(handler) as url:
        client = user_client(env, url, JSON_CAP)
        assert client.send() is False
        assert failure_of(fired[2]) == (FailureCategory.BAD_BODY, "truncated")
        assert client.send() is True  # a fresh connection, not the cut one


def test_a_bodiless_answer_that_declares_a_length_is_not_truncated(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    # A 304 carries the resource's Content-Length but never a body (RFC 9110 8.6): the parser frames
    # it as complete, and a success listed in `success.status` must not be read as cut short.
    def handler(sock: socket.socket, _request: bytes) -> None:
        sock.sendall(head("304 Not Modified", Content_Length="1234"))

    with raw_server(handler) as url:
        client = user_client(env, url, {**JSON_CAP, "success": {"status": [304], "body": "any"}})
        assert client.send() is True
    assert fired[0]["exception"] is None and fired[0]["context"] == {STATUS: 304}


def test_a_chunked_body_cut_before_its_last_chunk_is_truncated(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    def handler(sock: socket.socket, _request: bytes) -> None:
        sock.sendall(head(Transfer_Encoding="chunked") + b"2\r\n{}\r\n")  # no `0\r\n\r\n`

    with raw_server(handler) as url:
        assert user_client(env, url, JSON_CAP).send() is False
        assert user_client(env, url, {**JSON_CAP, "success": {"body": "any"}}).send() is False
    assert [failure_of(e) for e in fired] == [(FailureCategory.BAD_BODY, "truncated")] * 2


def test_a_stream_cut_before_its_last_chunk_is_truncated(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    def handler(sock: socket.socket, _request: bytes) -> None:
        event = f"data: {chat_chunk('Hel')}\n\n".encode()
        sock.sendall(head(content_type="text/event-stream", Transfer_Encoding="chunked"))
        sock.sendall(f"{len(event):x}\r\n".encode() + event + b"\r\n")

    with raw_server(handler) as url:
        assert user_client(env, url, CHAT_CAP).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.BAD_BODY, "truncated")
    assert event["context"] == {STATUS: 200} and event["response_length"] > 0
    assert [name for name, _ in env.stats.entries] == ["chat"]  # no stream metrics from a cut stream


# -- 2 and 3: a slow server is a timeout, cut at one whole deadline, in every flow ----------------------
def assert_cut_at_the_deadline(event: dict[str, Any]) -> None:
    category, _ = failure_of(event)
    assert category is FailureCategory.TIMEOUT
    assert event["context"] == {STATUS: 0}  # no complete answer: not counted as the status it began with
    assert DEADLINE_S * 1000 - 10 <= event["response_time"] < WITHIN_S * 1000, event["response_time"]


def test_a_server_that_accepts_and_never_answers_is_a_timeout(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    def silent(_sock: socket.socket, _request: bytes) -> None:
        gevent.sleep(5)

    with raw_server(silent) as url:
        for capability in (JSON_CAP, CHAT_CAP):
            assert user_client(env, url, capability).send() is False
    assert [failure_of(e) for e in fired] == [(FailureCategory.TIMEOUT, "TimeoutError")] * 2
    for event in fired:
        assert_cut_at_the_deadline(event)


def test_a_connect_that_never_completes_is_a_timeout(env: Environment, fired: list[dict[str, Any]]) -> None:
    """A listener whose accept queue is full drops the handshake: the deadline covers connect too (the
    connect timeout, 5 s, is longer than the deadline)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            gevent.sleep(0.1)
            client = user_client(env, f"http://127.0.0.1:{port}", JSON_CAP, connect_timeout_s=5.0)
            assert client.send() is False
        finally:
            for filler in fillers:
                filler.close()
    [event] = fired
    assert_cut_at_the_deadline(event)


def drip(sock: socket.socket, pieces: list[bytes], gap_s: float) -> None:
    for piece in pieces:
        sock.sendall(piece)
        gevent.sleep(gap_s)


def test_a_body_dripped_slower_than_the_deadline_is_a_timeout(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    """Headers after 0.8 s, then one byte every 0.1 s: no single wait reaches the deadline, the whole does."""
    body = json.dumps({"images": [{"url": "u" * 20}]}).encode()

    def handler(sock: socket.socket, _request: bytes) -> None:
        gevent.sleep(0.8)
        drip(sock, [head(Content_Length=str(len(body)))] + [bytes([b]) for b in body], 0.1)

    with raw_server(handler) as url:
        assert user_client(env, url, JSON_CAP).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.TIMEOUT, "TimeoutError")
    assert_cut_at_the_deadline(event)


def test_a_stream_dripped_past_the_deadline_is_cut_at_it(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    """Headers after 0.8 s, then a token every 0.1 s: the deadline does not restart after the headers."""
    events = [f"data: {chat_chunk('t')}\n\n".encode() for _ in range(40)]

    def handler(sock: socket.socket, _request: bytes) -> None:
        gevent.sleep(0.8)
        drip(sock, [head(content_type="text/event-stream", Connection="close"), *events], 0.1)

    with raw_server(handler) as url:
        assert user_client(env, url, CHAT_CAP).send() is False
    [event] = fired
    assert_cut_at_the_deadline(event)
    if failure_of(event)[1] != "TimeoutError":  # (on a machine so busy that the headers came too late)
        assert failure_of(event)[1] == "stream not finished in time"
        assert event["response_length"] > 0  # the bytes that came are still counted


@pytest.fixture
def toy_poll(private_registries: None) -> None:
    register_protocol(ToyPollProtocol)


def test_polls_answered_slowly_are_cut_at_the_deadline(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: None
) -> None:
    """The submit answers after 0.8 s, each poll after 0.1 s, the job never finishes."""
    loopback.route("POST", "/submit", Reply(202, b"{}", delay_s=0.8))
    loopback.route("GET", "/job", Reply(202, b"{}", delay_s=0.1))
    capability = toy_capability(poll_interval_s=0.05).model_dump()
    assert user_client(env, loopback.url, capability).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.TIMEOUT, f"job not done in {DEADLINE_S}s")
    assert_cut_at_the_deadline(event)
    assert len(loopback.hits("GET", "/job")) <= 3


def test_the_next_request_after_a_timeout_gets_its_own_deadline(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    answers = iter([None, b"{}"])

    def handler(sock: socket.socket, _request: bytes) -> None:
        body = next(answers)
        if body is None:
            gevent.sleep(5)
        else:
            sock.sendall(head(Content_Length=str(len(body))) + body)

    with raw_server(handler) as url:
        client = user_client(env, url, JSON_CAP)
        assert [client.send(), client.send()] == [False, True]
    assert fired[1]["context"] == {STATUS: 200}


# -- 11: a secret a server echoes never reaches a failure message ----------------------------------------
FORMS = [
    TOKEN,
    base64.b64encode(TOKEN.encode()).decode(),
    base64.b64encode(f"Bearer {TOKEN}".encode()).decode(),
]


def assert_no_secret(text: str) -> None:
    for form in FORMS:
        assert form not in text, text
    assert TOKEN[:6] not in text, text  # not even the start of a token cut at the message's bound


def echo_error(request: Request) -> Reply:
    """An OpenAI-style 400 that quotes the credentials it got (the message goes into the failure)."""
    auth = request.headers["authorization"]
    token = auth.split()[-1]
    messages = {
        "/whole": f"invalid credentials {auth}",
        "/b64": f"token {base64.b64encode(token.encode()).decode()} rejected",
        "/cut": f"{'x' * 70} {auth}",  # the 80-character bound cuts the token inside
    }
    return Reply(400, json.dumps({"error": {"message": messages[request.path]}}).encode())


@pytest.mark.parametrize("path", ["/whole", "/b64", "/cut"])
def test_a_token_echoed_in_an_error_body_is_masked(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, path: str
) -> None:
    loopback.route("POST", path, echo_error)
    client = user_client(env, loopback.url, {**CHAT_CAP, "path": path}, secrets=SECRETS)
    assert client.send() is False
    [event] = fired
    category, detail = failure_of(event)
    assert category is FailureCategory.CLIENT_ERROR and detail.startswith("HTTP 400: ")
    assert "***" in detail
    assert_no_secret(str(event["exception"]))
    assert_no_secret(repr(event["exception"]))
    [(_, error)] = env.stats.errors.items()  # what locust_failures.csv, the console and the report show
    assert_no_secret(str(error.error)) and assert_no_secret(error.to_name())


def test_a_token_echoed_in_a_stream_error_is_masked(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    def handler(request: Request) -> Reply:
        error = json.dumps({"error": {"message": f"denied for {request.headers['authorization']}"}})
        return Reply(200, sse([chat_chunk("a"), error], 0.01), content_type="text/event-stream")

    loopback.route("POST", "/v1/chat/completions", handler)
    assert user_client(env, loopback.url, CHAT_CAP, secrets=SECRETS).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.SERVER_ERROR, "error in stream: denied for ***")
    assert_no_secret(str(event["exception"]))


def test_a_raw_server_echoing_the_header_in_plain_text_is_masked(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    def handler(sock: socket.socket, request: bytes) -> None:
        body = f"no such key: {header_of(request, 'authorization')}\n".encode()
        sock.sendall(head("500 Internal Server Error", "text/plain", Content_Length=str(len(body))) + body)

    with raw_server(handler) as url:
        assert user_client(env, url, CHAT_CAP, secrets=SECRETS).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.SERVER_ERROR, "HTTP 500: no such key: ***")


def test_an_exception_escaping_a_request_carries_no_secret(
    env: Environment, loopback: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locust logs a task's exception (console, exceptions table): one that quotes a secret is masked."""
    loopback.route("POST", "/echo", Reply(200, b"{}"))
    client = user_client(env, loopback.url, JSON_CAP, secrets=SECRETS)

    def broken(*_args: Any) -> None:
        raise ValueError(f"cannot judge a response to Bearer {TOKEN}")

    monkeypatch.setattr(client.protocol, "classify", broken)
    with pytest.raises(RuntimeError) as caught:
        client.send()
    assert str(caught.value) == "ValueError: cannot judge a response to ***"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- 13: a body too large to hold fails without being held ------------------------------------------------
MIB = 1024 * 1024
ZEROS = bytes(MIB)


def huge_body(chunked: bool, status: str = "200 OK") -> Any:
    """A 200 MB body of zeros, sent a MiB at a time (never held whole by the server either)."""

    def handler(sock: socket.socket, _request: bytes) -> None:
        if chunked:
            sock.sendall(head(status, Transfer_Encoding="chunked"))
            for _ in range(200):
                sock.sendall(b"100000\r\n" + ZEROS + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head(status, Content_Length=str(200 * MIB)))
            for _ in range(200):
                sock.sendall(ZEROS)

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mb_body_fails_as_too_large_without_being_held(
    env: Environment, fired: list[dict[str, Any]], chunked: bool
) -> None:
    with raw_server(huge_body(chunked)) as url:
        client = user_client(env, url, {**JSON_CAP, "success": {"body": "any"}}, timeout_s=30)
        peak = peak_bytes_of(lambda: client.send() is False)
    [event] = fired
    assert failure_of(event) == (FailureCategory.BAD_BODY, f"too large (over {16 * MIB} bytes)")
    assert event["context"] == {STATUS: 200}
    assert peak < 64 * MIB, peak  # at most the cap and a read block, never the 200 MB
    assert client.max_body_bytes == 16 * MIB  # the default `target.max_response_bytes`


def test_an_error_status_with_a_huge_body_keeps_its_status(
    env: Environment, fired: list[dict[str, Any]]
) -> None:
    with raw_server(huge_body(chunked=True, status="500 Internal Server Error")) as url:
        client = user_client(env, url, JSON_CAP, timeout_s=30, max_response_bytes=MIB)
        peak = peak_bytes_of(lambda: client.send() is False)
    [event] = fired
    assert failure_of(event) == (FailureCategory.SERVER_ERROR, "HTTP 500")
    assert peak < 16 * MIB, peak


def test_a_stream_larger_than_the_cap_fails_as_too_large(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    # 4000 content chunks of ~100 bytes (400 kB) against a 64 KiB cap; no finish_reason ever
    events = [chat_chunk("x" * 20)] * 4000
    loopback.route(
        "POST", "/v1/chat/completions", Reply(200, sse(events, 0), content_type="text/event-stream")
    )
    client = user_client(env, loopback.url, CHAT_CAP, max_response_bytes=64 * 1024)
    assert client.send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.BAD_BODY, f"too large (over {64 * 1024} bytes)")
    assert 64 * 1024 < event["response_length"] < 64 * 1024 + 70 * 1024
    assert [name for name, _ in env.stats.entries] == ["chat"]


def compressed(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "br":
        import brotli  # type: ignore[import-untyped]

        return bytes(brotli.compress(data))
    return zlib.compress(data)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_compressed_bodies_are_decoded_within_the_cap(
    env: Environment, fired: list[dict[str, Any]], coding: str
) -> None:
    """Locust asks for gzip, deflate and br: a body is judged decoded, and a small compressed body that
    inflates beyond the cap (64 MiB of zeros in ~64 kB) fails without being inflated whole."""
    bodies = iter([compressed(coding, b'{"images": [{"url": "u"}]}'), compressed(coding, bytes(64 * MIB))])

    def handler(sock: socket.socket, _request: bytes) -> None:
        body = next(bodies)
        sock.sendall(head(Content_Encoding=coding, Content_Length=str(len(body))) + body)

    capability = {**JSON_CAP, "success": {"body": "json", "json_fields": ["images.0.url"]}}
    with raw_server(handler) as url:
        client = user_client(env, url, capability, max_response_bytes=MIB)
        assert client.send() is True
        peak = peak_bytes_of(lambda: client.send() is False)
    assert failure_of(fired[1]) == (FailureCategory.BAD_BODY, f"too large (over {MIB} bytes)")
    assert peak < 16 * MIB, peak
