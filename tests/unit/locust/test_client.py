"""The client's three request flows against a real server on loopback, each one request event."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any, Literal

import gevent
import pytest
from geventhttpclient.url import URL
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from inferswarm import derived
from inferswarm.locust.client import DEFAULT_ACCEPT_ENCODING, CapabilityClient, FixedURL
from inferswarm.locust.outcome import OBSERVATIONS, SLOT, STATUS
from inferswarm.protocols import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    JsonCapability,
    OpenAICapability,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    Verdict,
    classify,
    protocol_for,
    protocols,
    register_protocol,
)
from tests.conftest import ASSETS
from tests.unit.loopback import Loopback, Reply, Request, sse


def client_for(
    env: Environment, base_url: str, capability: CapabilityBase, timeout_s: float = 5.0
) -> CapabilityClient:
    protocol = protocol_for(capability.kind)
    prepared = protocol.prepare(capability, ASSETS)
    session = FastHttpSession(  # as FastHttpUser makes it (which never retries)
        base_url,
        request_event=env.events.request,
        user=None,
        max_retries=0,
        network_timeout=10.0,
        connection_timeout=5.0,
    )
    return CapabilityClient(session, env, capability, protocol, prepared, timeout_s, base_url)


def json_capability(name: str = "echo", path: str = "/echo", **extra: Any) -> JsonCapability:
    data = {"kind": "json", "name": name, "path": path, "params": {"prompt": "a cat"}, **extra}
    return JsonCapability.model_validate(data)


def failure_of(event: dict[str, Any]) -> tuple[FailureCategory, str]:
    exception = event["exception"]
    assert isinstance(exception, RequestFailure), exception
    return exception.category, exception.detail


# -- one request, one response ---------------------------------------------------------------------------
def test_one_request_success(env: Environment, fired: list[dict[str, Any]], loopback: Loopback) -> None:
    body = b'{"images": [{"url": "u"}]}'
    loopback.route("POST", "/echo", Reply(200, body))
    client = client_for(env, loopback.url, json_capability())
    assert client.send() is True
    assert client.send(slot=4) is True

    assert [(e["name"], e["request_type"], e["exception"]) for e in fired] == [("echo", "POST", None)] * 2
    assert [e["context"] for e in fired] == [{STATUS: 200}, {STATUS: 200, SLOT: 4}]
    assert fired[0]["response_length"] == len(body) and fired[0]["url"] == loopback.url + "/echo"
    assert fired[0]["response_time"] > 0
    entry = env.stats.get("echo", "POST")
    assert (entry.num_requests, entry.num_failures) == (2, 0)
    [sent, _] = loopback.hits("POST", "/echo")
    assert json.loads(sent.body) == {"prompt": "a cat"}
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept-encoding"] == DEFAULT_ACCEPT_ENCODING


def test_ok_entry_survives_locust_resets(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    """`<name>:ok` counts every success into the entry Locust's statistics hold now: after a reset in
    place (`reset_all`: --reset-stats, the web UI's reset) and after a new test's `clear_all` (a new
    entries dict), as it did before them."""
    loopback.route("POST", "/echo", Reply(200, b"{}"))
    client = client_for(env, loopback.url, json_capability())
    ok = ("echo" + ":" + derived.OK, derived.SUCCESS_TYPE)
    assert derived.entry_name("echo", derived.OK) == ok[0]
    assert client.send() and client.send()
    assert env.stats.entries[ok].num_requests == 2
    env.stats.reset_all()
    assert client.send()
    assert env.stats.entries[ok].num_requests == 1
    env.stats.clear_all()
    assert client.send() and client.send() and client.send()
    assert env.stats.entries[ok].num_requests == 3
    assert env.stats.entries[("echo", "POST")].num_requests == 3


def test_cookies_the_server_sets_are_sent_back(env: Environment, loopback: Loopback) -> None:
    """Cookies work as in Locust's own jar: none sent until the server sets one, then sent with every
    request; an answer without Set-Cookie leaves them as they are."""
    answers = iter([Reply(200, b"{}", headers=(("Set-Cookie", "session=abc; Path=/"),))])
    loopback.route("POST", "/echo", lambda _request: next(answers, Reply(200, b"{}")))
    client = client_for(env, loopback.url, json_capability())
    assert client.send() and client.send() and client.send()
    assert [hit.headers.get("cookie") for hit in loopback.hits("POST", "/echo")] == [
        None,
        "session=abc",
        "session=abc",
    ]
    assert [cookie.name for cookie in client.session.cookiejar] == ["session"]
    assert client.session.client.cookiejar is client.session.cookiejar


def test_a_redirect_is_followed_with_its_cookie(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    """A 307 is followed (body and method kept) to its Location with the cookie it set, and the next
    request goes to the capability's own URL again."""
    moved = Reply(307, b"{}", headers=(("Location", "/final?x=1"), ("Set-Cookie", "hop=1; Path=/")))
    loopback.route("POST", "/echo", moved)
    loopback.route("POST", "/final", Reply(200, b'{"done": true}'))
    client = client_for(env, loopback.url, json_capability())
    assert client.send() and client.send()
    assert [(r.path, r.headers.get("cookie")) for r in loopback.requests] == [
        ("/echo", None),
        ("/final", "hop=1"),
        ("/echo", "hop=1"),
        ("/final", "hop=1"),
    ]
    assert json.loads(loopback.hits("POST", "/final")[0].body) == {"prompt": "a cat"}
    assert [(e["context"], e["url"]) for e in fired] == [({STATUS: 200}, loopback.url + "/echo")] * 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/infer",
        "http://example.com/v1/a b/é?x=1&y=a%20b",
        "https://user:pw@example.com/p;param?q=1#frag",
        "http://[::1]:9000/x?",
        "http://example.com",
    ],
)
def test_fixed_url_reads_like_a_url(url: str) -> None:
    fixed, plain = FixedURL(url), URL(url)
    assert str(fixed) == url
    parts = ("scheme", "netloc", "host", "hostname", "port", "request_uri", "quoted_uri", "path", "query")
    for part in parts:
        assert getattr(fixed, part) == getattr(plain, part), part
    assert fixed == plain
    moved = fixed.redirect("/other?z=2")
    assert str(moved) == str(plain.redirect("/other?z=2")) and moved.host == plain.host


def test_503_is_a_capacity_failure(env: Environment, fired: list[dict[str, Any]], loopback: Loopback) -> None:
    loopback.route("POST", "/echo", Reply(503, b'{"error": {"message": "Service Unavailable Error"}}'))
    client = client_for(env, loopback.url, json_capability())
    assert client.send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.CAPACITY, "HTTP 503")
    assert event["context"] == {STATUS: 503}
    entry = env.stats.get("echo", "POST")
    assert (entry.num_requests, entry.num_failures) == (1, 1)


def test_a_200_with_a_bad_body_is_a_failure(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", "/echo", Reply(200, b"<html>oops</html>", content_type="text/html"))
    assert client_for(env, loopback.url, json_capability()).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.BAD_BODY, "invalid JSON")
    assert event["context"] == {STATUS: 200}


def test_no_answer_in_time_is_cut_at_the_deadline(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", "/echo", Reply(500, b"{}", delay_s=3.0))
    client = client_for(env, loopback.url, json_capability(), timeout_s=0.3)
    assert client.send() is False
    [event] = fired
    assert event["exception"] is not None and event["context"] == {STATUS: 0}  # no HTTP answer
    # timed at the deadline (0.3 s), not at the server's answer (3 s)
    assert 290 <= event["response_time"] < 2500, event["response_time"]

    # the same user's next request gets its own answer (not the late 500), and the last request's
    # deadline does not cut it short
    loopback.route("POST", "/echo", Reply(200, b"{}", delay_s=0.05))
    ok = client.send()
    assert ok is True, repr(fired[1]["exception"])
    assert fired[1]["exception"] is None and fired[1]["context"] == {STATUS: 200}


def test_each_request_gets_the_whole_deadline(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    """The deadline is per request: twelve 50 ms requests under a 0.3 s deadline all succeed, though
    together they take twice the deadline."""
    loopback.route("POST", "/echo", Reply(200, b"{}", delay_s=0.05))
    client = client_for(env, loopback.url, json_capability(), timeout_s=0.3)
    outcomes = [client.send() for _ in range(12)]
    assert outcomes == [True] * 12, [str(e["exception"]) for e in fired if e["exception"]]
    assert sum(e["response_time"] for e in fired) > 300


def test_the_deadline_is_classified_as_a_timeout(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", "/echo", Reply(200, b"{}", delay_s=3.0))
    assert client_for(env, loopback.url, json_capability(), timeout_s=0.3).send() is False
    [event] = fired
    # geventhttpclient reports the deadline's TimeoutError inside RetriesExceeded (a POST is never
    # retried); the user must see what happened, a timeout, not a connection error
    assert failure_of(event) == (FailureCategory.TIMEOUT, "TimeoutError")


def test_connection_refused(env: Environment, fired: list[dict[str, Any]]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(env, f"http://127.0.0.1:{port}", json_capability())
    assert client.send() is False
    [event] = fired
    category, _ = failure_of(event)
    assert category is FailureCategory.CONNECTION_ERROR and event["context"] == {STATUS: 0}


# -- server-sent events -----------------------------------------------------------------------------------
def chat_chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def chat_capability() -> OpenAICapability:
    return OpenAICapability.model_validate(
        {
            "kind": "openai",
            "name": "chat",
            "model": "m",
            "params": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        }
    )


def test_an_sse_stream_is_one_request_plus_derived_entries(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    events = [
        chat_chunk("Hel"),
        chat_chunk("l"),
        chat_chunk("o"),
        chat_chunk(None, "stop"),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}),
        "[DONE]",
    ]
    stream_bytes = sum(len(f"data: {e}\n\n") for e in events)
    loopback.route(
        "POST", "/v1/chat/completions", Reply(200, sse(events, 0.02), content_type="text/event-stream")
    )
    client = client_for(env, loopback.url, chat_capability())
    assert client.send() is True

    [event] = fired
    assert (event["name"], event["exception"], event["context"]) == ("chat", None, {STATUS: 200})
    assert event["response_length"] == stream_bytes
    [sent] = loopback.requests
    assert sent.headers["accept"] == "text/event-stream" and json.loads(sent.body)["stream"] is True

    stats = env.stats
    assert stats.get("chat", "POST").num_requests == 1
    assert stats.total.num_requests == 1  # derived entries are not requests
    ttft = stats.entries[(derived.entry_name("chat", derived.TTFT), derived.TIMING_TYPE)]
    itl = stats.entries[(derived.entry_name("chat", derived.ITL), derived.TIMING_TYPE)]
    tokens = stats.entries[(derived.entry_name("chat", derived.OUTPUT_TOKENS), "tokens(usage)")]
    rate = stats.entries[(derived.entry_name("chat", derived.TOKENS_PER_S), "tokens(usage)")]
    assert ttft.num_requests == itl.num_requests == tokens.num_requests == rate.num_requests == 1
    assert dict(tokens.response_times) == {3: 1}  # the server's usage block, not the 3 chunks counted
    assert 0 < ttft.max_response_time <= event["response_time"]
    assert 0 < itl.max_response_time <= event["response_time"]


def test_an_error_inside_a_200_stream_is_a_failure_without_derived_entries(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    events = [chat_chunk("a"), json.dumps({"error": {"message": "model crashed"}})]
    loopback.route(
        "POST", "/v1/chat/completions", Reply(200, sse(events, 0.01), content_type="text/event-stream")
    )
    assert client_for(env, loopback.url, chat_capability()).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.SERVER_ERROR, "error in stream: model crashed")
    assert [name for name, _ in env.stats.entries] == ["chat"]


def test_an_error_status_on_a_stream_keeps_the_servers_message(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", "/v1/chat/completions", Reply(429, b'{"error": {"message": "slow down"}}'))
    assert client_for(env, loopback.url, chat_capability()).send() is False
    [event] = fired
    assert event["context"] == {STATUS: 429}
    assert failure_of(event) == (FailureCategory.CAPACITY, "HTTP 429: slow down")


def test_a_stream_that_stalls_past_the_deadline_is_a_timeout(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    def stalls() -> Iterator[bytes]:
        yield f"data: {chat_chunk('a')}\n\n".encode()
        gevent.sleep(3.0)
        yield f"data: {chat_chunk(None, 'stop')}\n\n".encode()

    loopback.route("POST", "/v1/chat/completions", Reply(200, stalls(), content_type="text/event-stream"))
    client = client_for(env, loopback.url, chat_capability(), timeout_s=0.4)
    assert client.send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.TIMEOUT, "stream not finished in time")
    # the 200 began an answer that never completed: status 0 (no complete answer), the bytes still counted
    assert event["context"] == {STATUS: 0} and event["response_length"] > 0
    assert 390 <= event["response_time"] < 2500, event["response_time"]
    assert [name for name, _ in env.stats.entries] == ["chat"]  # no derived entries from a failure


# -- submit, then poll ------------------------------------------------------------------------------------
class ToyPollCapability(CapabilityBase):
    kind: Literal["toy-poll"]
    poll_path: str = "/job"
    poll_interval_s: float = 0.05


class ToyPollProtocol(Protocol[ToyPollCapability]):
    """A job service: POST answers 202, GET <poll_path> answers 202 until the job is done, then 200."""

    model = ToyPollCapability

    def prepare(self, capability: ToyPollCapability, assets_dir: Any) -> PreparedRequest:
        headers = {"Content-Type": "application/json", "X-Token": "t0k", **capability.headers}
        return PreparedRequest("POST", capability.path, headers, b'{"work": 1}')

    def polls(self, capability: ToyPollCapability) -> bool:
        return True

    def poll(
        self, capability: ToyPollCapability, submitted: ResponseView, headers: Any
    ) -> Poll | RequestFailure | None:
        if submitted.status != 202:
            return None
        request = PreparedRequest("GET", capability.poll_path, dict(headers))
        return Poll(request, capability.poll_interval_s, lambda view: self.judge(capability, view))

    def judge(self, capability: ToyPollCapability, view: ResponseView) -> Verdict:
        return PENDING if view.status == 202 else classify(view, capability.success)


@pytest.fixture
def toy_poll(private_registries: None) -> str:
    register_protocol(ToyPollProtocol)
    assert "toy-poll" in protocols()
    return "toy-poll"


def toy_capability(**extra: Any) -> ToyPollCapability:
    return ToyPollCapability.model_validate({"kind": "toy-poll", "name": "job", "path": "/submit", **extra})


def test_submit_then_poll_is_one_request_timed_submit_to_answer(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    polls: list[Request] = []

    def job(request: Request) -> Reply:
        polls.append(request)
        if len(polls) < 3:
            return Reply(202, b'{"status": "running"}')
        return Reply(200, b'{"result": "done"}', delay_s=0.3)

    loopback.route("POST", "/submit", Reply(202, b'{"id": "j1"}'))
    loopback.route("GET", "/job", job)
    client = client_for(env, loopback.url, toy_capability())
    assert client.send() is True

    [event] = fired  # the polls fire no events of their own
    assert (event["name"], event["request_type"], event["exception"]) == ("job", "POST", None)
    assert event["context"] == {STATUS: 200}  # the last poll's status
    assert event["response_time"] >= 300  # it spans the polls, the last of which took 0.3 s
    assert [(r.method, r.path) for r in loopback.requests] == [("POST", "/submit")] + [("GET", "/job")] * 3
    assert all(p.headers["x-token"] == "t0k" for p in polls)  # polls carry the submit's headers
    # one request, plus its success latency under the derived `job:ok` entry (not a request)
    assert sorted(name for name, _ in env.stats.entries) == ["job", "job:ok"]
    assert env.stats.entries[("job:ok", "success")].num_requests == 1
    assert env.stats.total.num_requests == 1


def test_a_final_first_answer_is_not_polled(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    loopback.route("POST", "/submit", Reply(200, b'{"result": "at once"}'))
    assert client_for(env, loopback.url, toy_capability()).send() is True
    assert [(r.method, r.path) for r in loopback.requests] == [("POST", "/submit")]
    assert fired[0]["context"] == {STATUS: 200}


def test_a_failed_poll_fails_the_job(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    loopback.route("POST", "/submit", Reply(202, b"{}"))
    loopback.route("GET", "/job", Reply(500, b"{}"))
    assert client_for(env, loopback.url, toy_capability()).send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.SERVER_ERROR, "HTTP 500")
    assert event["context"] == {STATUS: 500}
    assert len(loopback.hits("GET", "/job")) == 1


def test_a_job_not_done_by_the_deadline_is_a_timeout(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    loopback.route("POST", "/submit", Reply(202, b"{}"))
    loopback.route("GET", "/job", Reply(202, b"{}"))
    client = client_for(env, loopback.url, toy_capability(), timeout_s=0.4)
    assert client.send() is False
    [event] = fired
    assert failure_of(event) == (FailureCategory.TIMEOUT, "job not done in 0.4s")
    assert event["context"] == {STATUS: 0}  # a timeout has no answer, whatever the polls said
    assert 390 <= event["response_time"] < 3000, event["response_time"]
    assert 2 <= len(loopback.hits("GET", "/job")) <= 8  # polled every 0.05 s until the deadline


def test_a_poll_cut_by_the_deadline_is_a_timeout(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    loopback.route("POST", "/submit", Reply(202, b"{}"))
    loopback.route("GET", "/job", Reply(200, b"{}", delay_s=3.0))  # the poll is still out at the deadline
    client = client_for(env, loopback.url, toy_capability(), timeout_s=0.4)
    assert client.send() is False
    [event] = fired
    assert 390 <= event["response_time"] < 2500, event["response_time"]
    assert len(loopback.hits("GET", "/job")) == 1
    category, _ = failure_of(event)
    assert category is FailureCategory.TIMEOUT


# -- observations ------------------------------------------------------------------------------------------
class ToyObservingProtocol(ToyPollProtocol):
    """The toy job service whose answers carry a number: observed from the final answer of a success."""

    def observations(
        self, capability: ToyPollCapability, answer: ResponseView, elapsed_ms: float
    ) -> list[tuple[str, float]]:
        score = json.loads(answer.body).get("score")
        return [(derived.EDGE_MS, elapsed_ms), (derived.CONFIDENCE_PCT, score)] if score is not None else []


def test_observations_land_as_derived_entries(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback, toy_poll: str
) -> None:
    register_protocol(ToyObservingProtocol)  # replaces the toy-poll kind for this test
    answers = iter([Reply(200, b'{"score": 80}'), Reply(202, b"{}"), Reply(500, b'{"score": 1}')])
    loopback.route("POST", "/submit", lambda _request: next(answers))
    loopback.route("GET", "/job", Reply(200, b'{"score": 40}'))  # the polled job's final answer
    client = client_for(env, loopback.url, toy_capability())
    assert [client.send() for _ in range(3)] == [True, True, False]

    entries = env.stats.entries
    assert {name for name, _ in entries} == {"job", "job:ok", "job:edge_ms", "job:confidence_pct"}
    score = entries[("job:confidence_pct", derived.OBSERVED_TYPE)]
    assert (score.num_requests, score.min_response_time, score.max_response_time) == (2, 40, 80)
    edge = entries[("job:edge_ms", derived.OBSERVED_TYPE)]
    assert edge.num_requests == 2 and edge.total_response_time == pytest.approx(
        fired[0]["response_time"] + fired[1]["response_time"]
    )
    assert [dict(e["context"].get(OBSERVATIONS, [])) for e in fired] == [
        {"edge_ms": fired[0]["response_time"], "confidence_pct": 80},
        {"edge_ms": fired[1]["response_time"], "confidence_pct": 40},
        {},  # a failure is not observed
    ]
    assert env.stats.total.num_requests == 3  # observations are not requests
    assert all(derived.is_derived(name) for name, _ in entries if name != "job")
