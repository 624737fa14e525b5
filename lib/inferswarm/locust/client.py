"""The request flows of a capability user, on Locust's FastHttpSession, each fired as one request event.

Three flows, chosen by what the capability's protocol says, never by its kind:
- one request, one response, judged by `Protocol.classify`;
- a server-sent-event stream read as it arrives (LLM time to first token, inter-token latency and
  tokens per second go into Locust's statistics as derived entries, see `inferswarm.derived`);
- submit then poll: when `Protocol.poll` turns the first answer into a `Poll`, the client polls until
  the protocol's judge says done; submit to answer is one request in the statistics.

A protocol that reads numbers off a successful answer (`Protocol.observations`: an edge endpoint's edge or
cloud latency, confidence, source) gets them logged as derived entries and put in the request event's
context; one whose requests vary (`PreparedRequest.bodies` in turn, a fresh `request_id_header`) gets
them varied per request. Neither costs the other kinds anything but a flag test.

One deadline (`request_timeout_s`) covers connect, headers, body, stream and polls; a request cut by it is
a `timeout` failure with status 0 (no complete answer), whatever flow it was in. Bodies and streams are read
up to `max_body_bytes` (`bad_body: too large` beyond, the connection closed, never buffered whole); a
body shorter than its `Content-Length`, or a chunked one cut before its last chunk, is
`bad_body: truncated`. Failure messages and escaping exceptions have every secret header value masked
(`inferswarm.secrets.Scrubber`) before anything stores or prints them. The hot path is
kept lean on purpose (a load generator must not be the bottleneck): the URL is built and parsed once
(`FixedURL`), the headers built once as geventhttpclient's own `Headers`, the cookie jar does nothing
while there is nothing to do (`LeanCookieJar`), and the request event is fired directly rather than
through the session's response context manager. `bench/user_overhead.py` measures it against a bare
FastHttpUser; `bench/hotpath_callgrind.py` counts its instructions per request.

When the request log is on (`output.request_log`), every request also appends one plain tuple to the
process's log (`inferswarm.locust.outcome.RequestRow`): its exact timings, with no event and no dict.
A request given the time it was meant to be sent (`intended_s`, open-loop schedules) that succeeds is
also logged as `<capability>:from_intended`: how late it was sent plus its response time.
"""

from __future__ import annotations

import random
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from http.cookiejar import CookieJar
from typing import Any, cast
from urllib.parse import ParseResult

import gevent
from gevent import getcurrent
from geventhttpclient.header import Headers
from geventhttpclient.response import HTTPParseError
from geventhttpclient.url import URL
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.stats import StatsEntry

from inferswarm import derived
from inferswarm.locust.outcome import OBSERVATIONS, SLOT, STATUS, RequestRow, request_rows
from inferswarm.protocols import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    response_view,
)
from inferswarm.protocols.llm_stream import Dialect, StreamRecord
from inferswarm.protocols.sse import SseParser
from inferswarm.secrets import Scrubber, is_sensitive_header

Outcome = tuple[RequestFailure | None, int, int, float]
"""(failure or None, HTTP status, bytes received, response time in ms)"""

_BROKEN_CONNECTION = frozenset({FailureCategory.TIMEOUT, FailureCategory.CONNECTION_ERROR})

# What Locust's session adds to every request unless the caller set it; kept so numbers stay comparable.
DEFAULT_ACCEPT_ENCODING = "gzip, deflate, br"

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""`target.max_response_bytes`'s default."""
READ_BLOCK_BYTES = 64 * 1024
"""How much of a body of unknown length is read at a time (what it may overshoot the cap by in memory)."""
TRUNCATED = "truncated"
TOO_LARGE = "too large"
EVERY_STATUS = frozenset(range(100, 600))
"""Statuses the session hands back as answers. Its default treats 4xx/5xx as errors and reads their whole
body, without a bound, into a debug log; here every body is read by `_read_body`, within the cap."""


class FixedURL(URL):
    """geventhttpclient's URL with its parts read once: a capability sends to one URL all run long, and
    geventhttpclient reads host, port, request URI and the percent-encoded request URI off the parsed
    URL on every request (`urllib.parse`'s host parsing, a requote). The same values, as plain slots
    (which take precedence over the base class's properties). A redirect makes a new one from its parts.
    """

    __slots__ = ("_text", "host", "hostname", "netloc", "port", "quoted_uri", "request_uri", "scheme")

    def __init__(self, url: str | ParseResult = "", params: Any = None) -> None:
        plain = URL(url, params)
        self._parsed = plain._parsed
        # the string as given, as geventhttpclient keeps a request's URL given as a string
        self._text = url if isinstance(url, str) and params is None else str(plain)
        for part in ("scheme", "netloc", "host", "hostname", "port", "request_uri", "quoted_uri"):
            setattr(self, part, getattr(plain, part))

    def __str__(self) -> str:
        return self._text


class LeanCookieJar(CookieJar):
    """Locust's cookie jar, minus its work when there is nothing to do: with no cookie kept, no request
    gets a Cookie header, and an answer without Set-Cookie or Set-Cookie2 sets none; both checks are made
    before the lock and the policy's clock (which every call that does work sets anew). Any cookie is
    handled as `CookieJar` handles it."""

    def add_cookie_header(self, request: Any) -> None:
        if self._cookies:  # type: ignore[attr-defined]
            super().add_cookie_header(request)

    def extract_cookies(self, response: Any, request: Any) -> None:
        headers = response.info()
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response, request)


def _status(response: Any) -> int:
    return int(getattr(response, "status_code", 0) or 0)


def _content_type(response: Any) -> str:
    # `is not None`: geventhttpclient's Headers has no __bool__, and its __len__ counts every value
    headers = getattr(response, "headers", None)
    return str(headers.get("content-type", "")) if headers is not None else ""


def _headers(response: Any) -> dict[str, str]:
    """The answer's headers, names in lower case (for a protocol that reads them)."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return {}
    return {str(name).lower(): str(value) for name, value in headers.items()}


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
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        secrets: Iterable[str] = (),
    ) -> None:
        self.session = session
        cast(Any, session.client).valid_response_codes = EVERY_STATUS
        self.environment = environment
        self.capability = capability
        self.protocol = protocol
        self.prepared = prepared
        self.timeout_s = timeout_s
        self.name = capability.name
        self.base_url = base_url
        self.url = base_url + prepared.path
        self._url = FixedURL(self.url)
        if type(session.cookiejar) is CookieJar and type(session.client.cookiejar) is CookieJar:
            jar = LeanCookieJar(session.cookiejar._policy)  # type: ignore[attr-defined]
            for cookie in session.cookiejar:
                jar.set_cookie(cookie)
            session.cookiejar = session.client.cookiejar = jar
        headers = dict(prepared.headers)
        if not any(k.lower() == "accept-encoding" for k in headers):
            headers["Accept-Encoding"] = DEFAULT_ACCEPT_ENCODING
        self.headers = headers
        self._wire_headers = Headers(headers)
        """The same, as geventhttpclient's Headers: it copies them into every request, a dict one field at a
        time (lower-casing each name), its own kind as they are stored."""
        self.dialect = cast(Dialect | None, protocol.stream_dialect(capability))
        self.polls = protocol.polls(capability)
        self._timeout_error = TimeoutError(f"no response in {timeout_s}s")
        self._loop = gevent.get_hub().loop
        """The loop of this user's hub, which times each request's deadline."""
        self._fire: Callable[..., None] = environment.events.request.fire
        self._ok_name = derived.entry_name(self.name, derived.OK)
        self._from_intended_name = derived.entry_name(self.name, derived.FROM_INTENDED)
        self._ok_entries: dict[tuple[str, str], StatsEntry] | None = None
        self._ok_entry: StatsEntry | None = None
        """`<name>:ok`'s statistics entry, looked up once per entries dict: Locust resets entries in place
        (`reset_all`, a worker's report) and replaces the dict (`clear_all`, a new test) to start afresh."""
        rows = request_rows(environment)
        self._log_row: Callable[[RequestRow], None] | None = rows.append if rows is not None else None
        self._stream_record: StreamRecord | None = None
        """The last stream's record (its TTFT, ITL and tokens go into the request log)."""
        self.max_body_bytes = max_body_bytes
        # Every credential-named header sent is masked too (a capability's own token, e.g. x-api-token).
        own = [v for k, v in prepared.headers.items() if is_sensitive_header(k) and v]
        self._scrub = Scrubber([*secrets, *own])
        # Per-request variation (rotated bodies, a fresh request id), decided once: most kinds have none.
        self._bodies = prepared.bodies
        self._turn = random.randrange(len(prepared.bodies)) if prepared.bodies else 0
        self._id_header = prepared.request_id_header
        self._id_prefix = prepared.request_id_prefix
        self._varies = bool(self._bodies) or self._id_header is not None
        self._observes = type(protocol).observations is not Protocol.observations
        self._wants_headers = protocol.wants_headers
        self._answer: ResponseView | None = None
        """The answer `observations` reads (kept only when it is asked): the last one judged, a poll's
        when polled."""
        self._observed_names: dict[str, str] = {}

    def send(self, slot: int | None = None, intended_s: float | None = None) -> bool:
        """Send once and fire the request event; True when the response counted as a success.

        `intended_s`: the epoch second the schedule meant this request to be sent (open-loop load);
        None means now, the actual send time."""
        start_time = time.time()
        started = time.perf_counter()
        prepared = self.prepared
        length = 0
        first_byte_ms: float | None = None
        self._stream_record = None
        # The deadline of the whole request: what gevent.Timeout does (throw into this greenlet when the
        # timer expires; the timer started on the loop's updated time) at a quarter of its cost. A new
        # timer each time: libev restarts a stopped timer with what was left of it, and one that has
        # fired at once (as a restarted gevent.Timeout does).
        deadline = self._loop.timer(self.timeout_s, 0.0, True, -1)
        deadline.start(getcurrent().throw, self._timeout_error, update=True)
        body: bytes | None
        headers: Mapping[str, Any]
        body, headers = (prepared.body, self._wire_headers) if not self._varies else self._variant()
        try:
            response = self.session._send_request_safe_mode(  # (geventhttpclient takes a URL too)
                prepared.method,
                self._url,  # type: ignore[arg-type]
                payload=body,
                headers=headers,
            )
            status = _status(response)
            if status:  # the session returns once the headers are in (a stream's body follows them)
                first_byte_ms = (time.perf_counter() - started) * 1000.0
            if status == 0:
                error = getattr(response, "error", None) or ConnectionError("no response")
                error = _cause(error)
                failure = self.protocol.classify(self.capability, ResponseView(status=0, error=error))
                elapsed_ms = (time.perf_counter() - started) * 1000.0
            elif self.dialect is not None:
                failure, status, length, elapsed_ms = self._stream(response, status, started)
            else:
                failure, status, length, elapsed_ms = self._whole(response, status, started)
        except Exception as exc:
            if self._scrub:
                self._raise_scrubbed(exc)
            raise
        finally:
            deadline.close()
        if failure is not None:
            if failure.category in _BROKEN_CONNECTION:
                # A connection cut mid-request may still carry the late answer; reusing it would hand that
                # answer (or a RetriesExceeded) to this user's next request. Start from fresh connections.
                self.session.client.close()
                if failure.category is FailureCategory.TIMEOUT:
                    status = 0  # no complete answer in time: never counted as the status it began with
            if self._scrub:
                failure = _scrubbed(failure, self._scrub)
        context: dict[str, Any] = {STATUS: status} if slot is None else {STATUS: status, SLOT: slot}
        server_ms: float | None = None
        if failure is None:
            # Successes again under `<name>:ok`: the headline latency leaves fast failures out.
            entries, entry = self.environment.stats.entries, self._ok_entry
            if entry is None or entries is not self._ok_entries:  # the first, or a clear_all since the last
                entry = self._ok_entry = entries[(self._ok_name, derived.SUCCESS_TYPE)]
                self._ok_entries = entries
            entry.log(cast(int, elapsed_ms), 0)
            if intended_s is not None:
                from_intended_ms = (start_time - intended_s) * 1000.0 + elapsed_ms
                stats = self.environment.stats
                stats.get(self._from_intended_name, derived.SUCCESS_TYPE).log(cast(int, from_intended_ms), 0)
            if self._observes and self._answer is not None:
                server_ms = self._observe(self._answer, elapsed_ms, context)
        if self._log_row is not None:
            record = self._stream_record if self.dialect is not None else None
            # The failure's category only, never its text: a detail may quote what a server echoed.
            self._log_row(
                (
                    self.name,
                    start_time if intended_s is None else intended_s,
                    start_time,
                    first_byte_ms,
                    elapsed_ms,
                    status,
                    failure is None,
                    "" if failure is None else failure.category.value,
                    length,
                    None if record is None else record.ttft_ms,
                    None if record is None else record.itl_ms,
                    None if record is None else record.output_tokens,
                    len(body) if body else 0,
                    server_ms,
                )
            )
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

    def _variant(self) -> tuple[bytes | None, dict[str, str]]:
        """This request's body (the next in turn) and headers (with a fresh request id)."""
        body = self.prepared.body
        if self._bodies:
            body = self._bodies[self._turn]
            self._turn = (self._turn + 1) % len(self._bodies)
        if self._id_header is None:
            return body, self.headers
        return body, {**self.headers, self._id_header: self._id_prefix + uuid.uuid4().hex}

    def _observe(self, answer: ResponseView, elapsed_ms: float, context: dict[str, Any]) -> float | None:
        """The protocol's observations of a successful answer, each logged as `<capability>:<metric>` and
        handed to listeners in the request event's context; the server's own time when one says it
        (`server_ms`, for the request log)."""
        observations = self.protocol.observations(self.capability, answer, elapsed_ms)
        if not observations:
            return None
        server_ms: float | None = None
        stats = self.environment.stats
        names = self._observed_names
        for metric, value in observations:
            name = names.get(metric)
            if name is None:
                name = names[metric] = derived.entry_name(self.name, metric)
            stats.get(name, derived.OBSERVED_TYPE).log(cast(int, value), 0)
            if metric == derived.SERVER_MS:
                server_ms = value
        context[OBSERVATIONS] = observations
        return server_ms

    # -- one request, one response -----------------------------------------------------------------------
    def _whole(
        self, response: Any, status: int, started: float
    ) -> tuple[RequestFailure | None, int, int, float]:
        body, problem = self._read_body(response)
        if problem is not None:
            if problem.category is FailureCategory.BAD_BODY and status not in self.capability.success.status:
                # an error status is the answer, whatever became of its body
                view = ResponseView(status=status, content_type=_content_type(response))
                problem = self.protocol.classify(self.capability, view) or problem
            return problem, status, len(body), _ms(started)
        elapsed_ms = _ms(started)
        if self._wants_headers:
            view = ResponseView(status, _content_type(response), body, extra={"headers": _headers(response)})
        else:
            view = response_view(status, _content_type(response), body)
        if self._observes:
            self._answer = view
        if self.polls:
            poll = self.protocol.poll(self.capability, view, self.prepared.headers)
            if isinstance(poll, RequestFailure):
                return poll, status, len(body), elapsed_ms
            if poll is not None:
                failure, status = self._poll(poll, started)
                return failure, status, len(body), _ms(started)
        return self.protocol.classify(self.capability, view), status, len(body), elapsed_ms

    def _read_body(self, response: Any) -> tuple[bytes, RequestFailure | None]:
        """The whole body, decoded; or what was read and why it is not a body (cut short, too large, the
        deadline). Never holds more than `max_body_bytes` (plus one read block)."""
        raw = response._response
        cap = self.max_body_bytes
        if raw._sock is None and not raw.message_complete:
            # The client let go of the connection after the headers (an error status): what came with
            # the headers is all there is, enough for the server's message.
            decoded = _decoded(raw.read(), response.headers, cap)
            return (decoded if isinstance(decoded, bytes) else b""), None
        if raw._sock is None and len(raw._body_buffer) <= cap:
            # The whole answer came with its headers (the connection is back in the pool), its body
            # framed by the parser: nothing was cut short. The common small body, read as it is.
            body = raw.read()
        else:
            body, problem = _read_rest(raw, cap)
            if problem is not None:
                return body, problem
        decoded = _decoded(body, response.headers, cap)
        if decoded is None:
            return body, RequestFailure(FailureCategory.BAD_BODY, _too_large(cap))
        if isinstance(decoded, RequestFailure):
            return body, decoded
        return decoded, None

    def _raise_scrubbed(self, exc: Exception) -> None:
        """An unexpected exception is logged by Locust with its text and traceback: never with a secret."""
        text = "".join(traceback.format_exception(exc))
        if self._scrub(text) != text:
            raise RuntimeError(self._scrub(f"{type(exc).__name__}: {exc}")) from None

    # -- submit, then poll ---------------------------------------------------------------------------------
    def _poll(self, poll: Poll, started: float) -> tuple[RequestFailure | None, int]:
        deadline = started + self.timeout_s
        request = poll.request
        url = self.base_url + request.path
        status = 0
        interval = poll.interval_s
        until = None if poll.until_s is None else time.perf_counter() + poll.until_s
        try:
            while True:
                now = time.perf_counter()
                wait = interval if until is None or now >= until else min(interval, until - now)
                gevent.sleep(min(wait, max(deadline - now, 0)))
                interval *= poll.backoff
                if time.perf_counter() >= deadline:
                    break
                # Polls are part of the job, not requests of their own: sent without a request event.
                answer = self.session._send_request_safe_mode(
                    request.method, url, payload=request.body, headers=dict(request.headers)
                )
                status = _status(answer)
                if status:
                    body, problem = self._read_body(answer)
                    if problem is not None:
                        return problem, status
                    view = response_view(status, _content_type(answer), body)
                    if self._observes:
                        self._answer = view
                else:
                    view = ResponseView(
                        status=0, error=_cause(getattr(answer, "error", None) or ConnectionError())
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
        body = b""
        if status != 200:
            body, unread = self._read_body(response)
            if unread is not None and unread.category is FailureCategory.TIMEOUT:
                return unread, status, len(body), _ms(started)
        view = response_view(status, _content_type(response), body)
        if self._observes:
            self._answer = view  # the stream's head: its status and content type
        failure = self.protocol.classify(self.capability, view)
        if failure is not None:
            return failure, status, len(body), _ms(started)
        assert self.dialect is not None
        record = self._stream_record = StreamRecord(started_s=started, dialect=self.dialect)
        parser = SseParser()
        raw = response._response  # geventhttpclient's response, read as its bytes land
        received = 0
        cap = self.max_body_bytes
        try:
            while True:
                piece = _next_piece(raw)
                if not piece:
                    break
                received += len(piece)
                if received > cap:
                    raw.release()  # unfinished: the connection is closed, not reused
                    record.on_end(time.perf_counter())
                    failure = RequestFailure(FailureCategory.BAD_BODY, _too_large(cap))
                    return failure, status, received, record.e2e_ms
                now = time.perf_counter()
                for event in parser.feed(piece):
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
        except HTTPParseError as exc:  # the body ended before its last chunk, or is not HTTP
            record.on_end(time.perf_counter())
            return _parse_failure(exc), status, received, record.e2e_ms
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


def _scrubbed(failure: RequestFailure, scrub: Scrubber) -> RequestFailure:
    detail = scrub(failure.detail)
    return failure if detail == failure.detail else RequestFailure(failure.category, detail)


def _too_large(cap: int) -> str:
    return f"{TOO_LARGE} (over {cap} bytes)"


def _parse_failure(exc: HTTPParseError) -> RequestFailure:
    """geventhttpclient's parser at the end of the connection: "Incomplete response." when the body ended
    before its declared length or its last chunk."""
    text = str(exc)
    if "Incomplete" in text or "connection closed" in text:
        return RequestFailure(FailureCategory.BAD_BODY, TRUNCATED)
    return RequestFailure(FailureCategory.BAD_BODY, f"malformed HTTP body ({type(exc).__name__})")


def _read_rest(raw: Any, cap: int) -> tuple[bytes, RequestFailure | None]:
    """A body still arriving (or larger than the cap): read within the cap and checked against its
    Content-Length; what was read and why it is not a body (cut short, too large, the deadline)."""
    try:
        declared = raw.content_length
        if declared is not None and declared > cap:
            raw.release()  # unfinished: the connection is closed, not reused
            return b"", RequestFailure(FailureCategory.BAD_BODY, _too_large(cap))
        body = raw.read() if declared is not None else _read_capped(raw, cap)
        if body is None:
            return b"", RequestFailure(FailureCategory.BAD_BODY, _too_large(cap))
        if declared is not None and len(body) != declared:
            return body, RequestFailure(FailureCategory.BAD_BODY, TRUNCATED)
    except TimeoutError as exc:
        return b"", RequestFailure(FailureCategory.TIMEOUT, type(exc).__name__)
    except HTTPParseError as exc:
        return b"", _parse_failure(exc)
    except OSError as exc:  # the connection broke while the body was read
        return b"", RequestFailure(FailureCategory.CONNECTION_ERROR, type(exc).__name__)
    except ValueError:  # a Content-Length that is not a number
        raw.release()
        return b"", RequestFailure(FailureCategory.BAD_BODY, "bad Content-Length")
    return body, None


def _read_capped(raw: Any, cap: int) -> bytes | None:
    """A body of unknown length (chunked, or up to the close), read a block at a time; None beyond `cap`
    (the connection is then closed)."""
    pieces: list[bytes] = []
    size = 0
    while True:
        piece = raw.read(READ_BLOCK_BYTES)
        if not piece:
            return b"".join(pieces)
        size += len(piece)
        if size > cap:
            raw.release()  # unfinished: the connection is closed, not reused
            return None
        pieces.append(piece)


def _next_piece(raw: Any) -> bytes:
    """What has arrived of a streamed body since the last call, waiting for the next bytes; b"" at its end.

    geventhttpclient's `readline` would buffer a line of any length; this holds at most one socket read."""
    buffer = raw._body_buffer
    while not buffer:
        if raw.message_complete:
            return b""
        sock = raw._sock
        if sock is None:
            raise HTTPParseError("connection closed")
        try:
            data = sock.recv(raw.block_size)
            raw.feed(data)  # at the end of the connection: completes the body, or raises if it was cut
            if not data and not raw.message_complete:
                raise HTTPParseError("connection closed")  # never spin on a closed socket
        except BaseException:
            raw.release()
            raise
    piece = bytes(buffer)
    del buffer[:]
    return piece


def _decoded(body: bytes, headers: Any, cap: int) -> bytes | RequestFailure | None:
    """The body without its Content-Encoding (Locust asks for gzip, deflate and br), at most `cap` bytes
    decoded (None beyond: a small compressed body may inflate to any size)."""
    # `in` first: Headers.get finds a missing field through a KeyError, and most bodies are not encoded
    if headers is None or "content-encoding" not in headers:
        return body
    coding = headers.get("content-encoding")
    if not coding:
        return body
    if isinstance(coding, list):
        coding = coding[0]
    coding = coding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, cap)
        if coding == "deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS, cap)
            except zlib.error:  # raw deflate, as some servers send it
                return _inflate(body, -zlib.MAX_WBITS, cap)
        if coding == "br":
            return _unbrotli(body, cap)
        if coding == "identity":
            return body
    except Exception:  # zlib.error, brotli.error
        return RequestFailure(FailureCategory.BAD_BODY, f"undecodable {coding} body")
    return RequestFailure(FailureCategory.BAD_BODY, f"unsupported content-encoding {coding[:20]!r}")


def _inflate(body: bytes, wbits: int, cap: int) -> bytes | None:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, cap + 1)
    if len(out) > cap or inflater.unconsumed_tail:
        return None
    out += inflater.flush()
    return out if len(out) <= cap else None


def _unbrotli(body: bytes, cap: int) -> bytes | None:
    import brotli  # type: ignore[import-untyped]  # geventhttpclient's dependency; only a br body needs it

    out = cast(bytes, brotli.Decompressor().process(body, output_buffer_limit=cap + 1))
    return out if len(out) <= cap else None


def _cause(error: BaseException) -> BaseException:
    """geventhttpclient wraps the cause of a failed non-idempotent request in RetriesExceeded."""
    original = getattr(error, "original", None)
    return original if isinstance(original, BaseException) else error
