"""The request flows of a capability user, on Locust's FastHttpSession, each fired as one request event.

Three flows, chosen by what the capability's protocol says, never by its kind:
- one request, one response, judged by `Protocol.classify`;
- a server-sent-event stream read as it arrives (LLM time to first token, inter-token latency and
  tokens per second go into Locust's statistics as derived entries, see `inferswarm.derived`);
- submit then poll: when `Protocol.poll` turns the first answer into a `Poll`, the client polls until
  the protocol's judge says done; submit to answer is one request in the statistics.

One deadline (`request_timeout_s`) covers connect, headers, body, stream and polls. The hot path is
kept lean on purpose (a load generator must not be the bottleneck): the URL and headers are built once,
and the request event is fired directly rather than through the
session's response context manager. `bench/user_overhead.py` measures it against a bare FastHttpUser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import gevent
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from inferswarm import derived
from inferswarm.locust.outcome import SLOT, STATUS
from inferswarm.protocols import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
)
from inferswarm.protocols.llm_stream import Dialect, StreamRecord
from inferswarm.protocols.sse import SseParser

Outcome = tuple[RequestFailure | None, int, int, float]
"""(failure or None, HTTP status, bytes received, response time in ms)"""

_BROKEN_CONNECTION = frozenset({FailureCategory.TIMEOUT, FailureCategory.CONNECTION_ERROR})

# What Locust's session adds to every request unless the caller set it; kept so numbers stay comparable.
DEFAULT_ACCEPT_ENCODING = "gzip, deflate, br"


def _status(response: Any) -> int:
    return int(getattr(response, "status_code", 0) or 0)


def _content_type(response: Any) -> str:
    headers = getattr(response, "headers", None)
    return str(headers.get("content-type", "")) if headers else ""


def log_stream_metrics(environment: Environment, capability: str, record: StreamRecord) -> None:
    """A finished stream's numbers as derived entries; kept out of the Aggregated row (not requests)."""
    stats = environment.stats
    ttft, itl, rate = record.ttft_ms, record.itl_ms, record.tokens_per_s
    if ttft is not None:
        stats.get(derived.entry_name(capability, derived.TTFT), derived.TIMING_TYPE).log(cast(int, ttft), 0)
    if itl is not None:
        stats.get(derived.entry_name(capability, derived.ITL), derived.TIMING_TYPE).log(cast(int, itl), 0)
    tokens_type = derived.token_type(record.token_source)
    stats.get(derived.entry_name(capability, derived.OUTPUT_TOKENS), tokens_type).log(record.output_tokens, 0)
    if rate is not None:
        stats.get(derived.entry_name(capability, derived.TOKENS_PER_S), tokens_type).log(cast(int, rate), 0)


class CapabilityClient:
    """Sends one capability's prepared request; one instance per user (it owns the user's deadline)."""

    def __init__(
        self,
        session: FastHttpSession,
        environment: Environment,
        capability: CapabilityBase,
        protocol: Protocol[Any],
        prepared: PreparedRequest,
        timeout_s: float,
        base_url: str,
    ) -> None:
        self.session = session
        self.environment = environment
        self.capability = capability
        self.protocol = protocol
        self.prepared = prepared
        self.timeout_s = timeout_s
        self.name = capability.name
        self.base_url = base_url
        self.url = base_url + prepared.path
        headers = dict(prepared.headers)
        if not any(k.lower() == "accept-encoding" for k in headers):
            headers["Accept-Encoding"] = DEFAULT_ACCEPT_ENCODING
        self.headers = headers
        self.dialect = cast(Dialect | None, protocol.stream_dialect(capability))
        self.polls = protocol.polls(capability)
        self._timeout_error = TimeoutError(f"no response in {timeout_s}s")
        self._fire: Callable[..., None] = environment.events.request.fire
        self._ok_name = derived.entry_name(self.name, derived.OK)

    def send(self, slot: int | None = None) -> bool:
        """Send once and fire the request event; True when the response counted as a success."""
        start_time = time.time()
        started = time.perf_counter()
        prepared = self.prepared
        length = 0
        # The deadline of the whole request. A new timer each time: a restarted gevent.Timeout keeps
        # its first due time (and fires at once after it has fired), measured in tests/unit/locust.
        deadline = gevent.Timeout(self.timeout_s, self._timeout_error)
        deadline.start()
        try:
            response = self.session._send_request_safe_mode(
                prepared.method, self.url, payload=prepared.body, headers=self.headers
            )
            status = _status(response)
            if status == 0:
                error = getattr(response, "error", None) or ConnectionError("no response")
                error = _cause(error)
                failure = self.protocol.classify(self.capability, ResponseView(status=0, error=error))
                elapsed_ms = (time.perf_counter() - started) * 1000.0
            elif self.dialect is not None:
                failure, status, length, elapsed_ms = self._stream(response, status, started)
            else:
                failure, status, length, elapsed_ms = self._whole(response, status, started)
        finally:
            deadline.close()
        if failure is not None and failure.category in _BROKEN_CONNECTION:
            # A connection cut mid-request may still carry the late answer; reusing it would hand that
            # answer (or a RetriesExceeded) to this user's next request. Start from fresh connections.
            self.session.client.close()
        if failure is None:
            # Successes again under `<name>:ok`: the headline latency leaves fast failures out.
            self.environment.stats.get(self._ok_name, derived.SUCCESS_TYPE).log(cast(int, elapsed_ms), 0)
        context: dict[str, Any] = {STATUS: status} if slot is None else {STATUS: status, SLOT: slot}
        self._fire(
            request_type=prepared.method,
            name=self.name,
            response_time=elapsed_ms,
            response_length=length,
            exception=failure,
            context=context,
            response=response,
            start_time=start_time,
            url=self.url,
        )
        return failure is None

    # -- one request, one response -----------------------------------------------------------------------
    def _whole(
        self, response: Any, status: int, started: float
    ) -> tuple[RequestFailure | None, int, int, float]:
        try:
            body = response.content or b""
        except TimeoutError as exc:
            return RequestFailure(FailureCategory.TIMEOUT, type(exc).__name__), status, 0, _ms(started)
        except OSError as exc:  # the connection broke while the body was read
            return (
                RequestFailure(FailureCategory.CONNECTION_ERROR, type(exc).__name__),
                status,
                0,
                _ms(started),
            )
        elapsed_ms = _ms(started)
        view = ResponseView(status=status, content_type=_content_type(response), body=body)
        if self.polls:
            poll = self.protocol.poll(self.capability, view, self.prepared.headers)
            if isinstance(poll, RequestFailure):
                return poll, status, len(body), elapsed_ms
            if poll is not None:
                failure, status = self._poll(poll, started)
                return failure, status, len(body), _ms(started)
        return self.protocol.classify(self.capability, view), status, len(body), elapsed_ms

    # -- submit, then poll ---------------------------------------------------------------------------------
    def _poll(self, poll: Poll, started: float) -> tuple[RequestFailure | None, int]:
        deadline = started + self.timeout_s
        request = poll.request
        url = self.base_url + request.path
        status = 0
        try:
            while True:
                gevent.sleep(min(poll.interval_s, max(deadline - time.perf_counter(), 0)))
                if time.perf_counter() >= deadline:
                    break
                # Polls are part of the job, not requests of their own: sent without a request event.
                answer = self.session._send_request_safe_mode(
                    request.method, url, payload=request.body, headers=dict(request.headers)
                )
                status = _status(answer)
                view = (
                    ResponseView(
                        status=status, content_type=_content_type(answer), body=answer.content or b""
                    )
                    if status
                    else ResponseView(
                        status=0, error=_cause(getattr(answer, "error", None) or ConnectionError())
                    )
                )
                verdict = poll.judge(view)
                if verdict is not PENDING:
                    return cast(RequestFailure | None, verdict), status
        except TimeoutError:
            pass
        return RequestFailure(FailureCategory.TIMEOUT, f"job not done in {self.timeout_s}s"), status

    # -- server-sent events ----------------------------------------------------------------------------------
    def _stream(
        self, response: Any, status: int, started: float
    ) -> tuple[RequestFailure | None, int, int, float]:
        # An error status's (short) body is read so its message is kept.
        body = b"" if status == 200 else _read_rest(response)
        view = ResponseView(status=status, content_type=_content_type(response), body=body)
        failure = self.protocol.classify(self.capability, view)
        if failure is not None:
            return failure, status, len(body), _ms(started)
        assert self.dialect is not None
        record = StreamRecord(started_s=started, dialect=self.dialect)
        parser = SseParser()
        raw = response._response  # geventhttpclient's response: readline returns each line as it lands
        received = 0
        try:
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                received += len(line)
                now = time.perf_counter()
                for event in parser.feed(line):
                    record.on_event(event.data, now)
            for event in parser.close():
                record.on_event(event.data, time.perf_counter())
        except TimeoutError:
            record.on_end(time.perf_counter())
            return (
                RequestFailure(FailureCategory.TIMEOUT, "stream not finished in time"),
                status,
                received,
                record.e2e_ms,
            )
        except Exception as exc:  # the connection broke mid-stream
            record.on_end(time.perf_counter())
            failure = RequestFailure(FailureCategory.CONNECTION_ERROR, f"stream broken: {type(exc).__name__}")
            return failure, status, received, record.e2e_ms
        record.on_end(time.perf_counter())
        problem = record.problem()
        if problem is not None:
            category = FailureCategory.SERVER_ERROR if record.error is not None else FailureCategory.BAD_BODY
            return RequestFailure(category, problem), status, received, record.e2e_ms
        log_stream_metrics(self.environment, self.name, record)
        return None, status, received, record.e2e_ms


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _read_rest(response: Any) -> bytes:
    try:
        return bytes(response.content or b"")
    except Exception:
        return b""


def _cause(error: BaseException) -> BaseException:
    """geventhttpclient wraps the cause of a failed non-idempotent request in RetriesExceeded."""
    original = getattr(error, "original", None)
    return original if isinstance(original, BaseException) else error
