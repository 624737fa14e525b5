"""One Locust user class per configured capability.

`CapabilityUser` is a thin shell over FastHttpUser: it sends the capability's prepared request under a
fixed stats name (the capability's name) and lets the capability's protocol classify the response.
Three flows exist: one request and one response; a server-sent-event stream read as it arrives (LLM
time to first token, inter-token latency and tokens per second go into Locust's statistics as derived
entries, see `inferswarm.derived`); and an asynchronous job (submit, then poll its result), measured
from submit to result as one request. `build_user_classes` makes a subclass per capability, named
exactly like the capability, so `locust ... text-to-image` and the web UI's class picker select it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import gevent
from locust import FastHttpUser, constant, constant_throughput, tag, task
from locust.env import Environment
from locust.exception import StopUser

from inferswarm import derived
from inferswarm.config import CycleLoad, RunConfig
from inferswarm.cycles import CyclePlan, cycle_plan, record_outcome
from inferswarm.protocols import PreparedRequest, Protocol, RequestFailure, ResponseView, protocol_for
from inferswarm.protocols.base import AsyncJob, CapabilityBase, FailureCategory
from inferswarm.protocols.llm_stream import StreamRecord
from inferswarm.protocols.sse import SseParser
from inferswarm.runstats import status_counts


def response_view(response: Any) -> ResponseView:
    """Adapt a FastHttpSession response (or its error stand-in) for classification."""
    error = getattr(response, "error", None)
    status = int(getattr(response, "status_code", 0) or 0)
    if status == 0:
        return ResponseView(status=0, error=error or ConnectionError("no response"))
    headers = getattr(response, "headers", None) or {}
    body = response.content or b""
    return ResponseView(status=status, content_type=headers.get("content-type", ""), body=body)


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


class CapabilityUser(FastHttpUser):
    """Sends one capability's request in a loop; abstract until bound to a capability."""

    abstract = True
    capability: ClassVar[CapabilityBase]
    protocol: ClassVar[Protocol]
    prepared: ClassVar[PreparedRequest]
    request_timeout_s: ClassVar[float] = 60.0
    stream_dialect: ClassVar[str | None] = None
    async_job: ClassVar[AsyncJob | None] = None
    cycle: ClassVar[CyclePlan | None] = None

    def on_start(self) -> None:
        # Locust runs the first task right after on_start, then waits: cycle 0 starts now.
        self._cycle_origin_s = time.time()
        self._cycle_index = 0

    def send(self) -> bool:
        """Send once; True when the response counted as a success."""
        prepared = self.prepared
        stream = self.stream_dialect is not None
        started = time.perf_counter()
        # A whole-request deadline: network_timeout alone only bounds each socket read. The session
        # catches the TimeoutError and reports it like any transport failure.
        with gevent.Timeout(
            self.request_timeout_s, TimeoutError(f"no response in {self.request_timeout_s}s")
        ):
            response = self.client.request(
                prepared.method,
                prepared.path,
                name=self.capability.name,
                data=cast(Any, prepared.body),  # the session sends bytes as they are
                headers=dict(prepared.headers),
                catch_response=True,
                stream=stream,
            )
        with response:
            view = response_view(response) if not stream else self._stream_head(response)
            if self.async_job is not None and view.status == 202:
                failure, view = self._await_job(view, started, response)
            else:
                failure = self.protocol.classify(self.capability, view)
                if failure is None and stream and view.status:
                    failure = self._read_stream(response, started)
            status_counts[(self.capability.name, view.status)] += 1
            if failure is None:
                response.success()
            else:
                response.failure(failure)
        if self.cycle is not None:
            record_outcome(self.capability.name, self._cycle_index, failure)
        return failure is None

    # -- streaming ---------------------------------------------------------------------------------------
    def _stream_head(self, response: Any) -> ResponseView:
        """Status and headers only; an error status's (short) body is read so its message is kept."""
        status = int(getattr(response, "status_code", 0) or 0)
        if status == 0:
            return ResponseView(status=0, error=getattr(response, "error", None) or ConnectionError())
        headers = getattr(response, "headers", None) or {}
        body = b"" if status == 200 else _read_rest(response)
        return ResponseView(status=status, content_type=headers.get("content-type", ""), body=body)

    def _read_stream(self, response: Any, started: float) -> RequestFailure | None:
        record = StreamRecord(started_s=started, dialect=cast(Any, self.stream_dialect))
        parser = SseParser()
        raw = response._response  # geventhttpclient's response: readline returns each line as it lands
        received = 0
        with gevent.Timeout(self.request_timeout_s, TimeoutError("stream not finished in time")):
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
            except TimeoutError as exc:
                record.on_end(time.perf_counter())
                response.request_meta["response_time"] = record.e2e_ms
                return RequestFailure(FailureCategory.TIMEOUT, str(exc))
            except Exception as exc:  # the connection broke mid-stream
                record.on_end(time.perf_counter())
                response.request_meta["response_time"] = record.e2e_ms
                return RequestFailure(
                    FailureCategory.CONNECTION_ERROR, f"stream broken: {type(exc).__name__}"
                )
        record.on_end(time.perf_counter())
        response.request_meta["response_time"] = record.e2e_ms
        response.request_meta["response_length"] = received
        problem = record.problem()
        if problem is not None:
            category = FailureCategory.SERVER_ERROR if record.error is not None else FailureCategory.BAD_BODY
            return RequestFailure(category, problem)
        log_stream_metrics(self.environment, self.capability.name, record)
        return None

    # -- asynchronous jobs -------------------------------------------------------------------------------
    def _await_job(
        self, submitted: ResponseView, started: float, response: Any
    ) -> tuple[RequestFailure | None, ResponseView]:
        job = self.async_job
        assert job is not None
        try:
            request_id = json.loads(submitted.body)["request_id"]
            if not isinstance(request_id, str) or not request_id:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return RequestFailure(FailureCategory.BAD_BODY, "202 without a request_id"), submitted
        url = (self.client.base_url or "") + job.result_path
        body = json.dumps({"request_id": request_id}).encode()
        headers = {**self.prepared.headers, "Content-Type": "application/json"}
        headers.pop("Prefer", None)
        deadline = started + self.request_timeout_s
        view = submitted
        failure: RequestFailure | None
        while True:
            gevent.sleep(min(job.poll_interval_s, max(deadline - time.perf_counter(), 0)))
            if time.perf_counter() >= deadline:
                failure = RequestFailure(
                    FailureCategory.TIMEOUT, f"job not done in {self.request_timeout_s}s"
                )
                break
            # Polls are part of the job, not requests of their own: sent without a stats event.
            poll = self.client._send_request_safe_mode("POST", url, payload=body, headers=headers)
            view = response_view(poll)
            if view.status == 202:
                continue
            if view.status != 200:
                failure = self.protocol.classify(self.capability, view) or RequestFailure(
                    FailureCategory.UNEXPECTED_STATUS, f"poll HTTP {view.status}"
                )
                break
            try:
                document = json.loads(view.body)
            except (ValueError, UnicodeDecodeError):
                failure = RequestFailure(FailureCategory.BAD_BODY, "poll answer is not JSON")
                break
            if document.get("status") != "complete":
                continue
            failure = self.protocol.classify_job_result(self.capability, document.get("result"))
            break
        response.request_meta["response_time"] = (time.perf_counter() - started) * 1000.0
        return failure, view

    # -- cycle mode ----------------------------------------------------------------------------------------
    def next_cycle_wait(self) -> float:
        """Seconds to the start of this user's next cycle; skips (and records) cycles it overran."""
        plan = self.cycle
        assert plan is not None
        now = time.time()
        self._cycle_index += 1
        due = self._cycle_origin_s + self._cycle_index * plan.interval_s
        while due + plan.interval_s <= now and self._cycle_index < plan.cycles:
            record_outcome(self.capability.name, self._cycle_index, None, missed=True)
            self._cycle_index += 1
            due += plan.interval_s
        if self._cycle_index >= plan.cycles:
            raise StopUser()
        return max(due - now, 0.0)


def _read_rest(response: Any) -> bytes:
    try:
        return bytes(response._response.read())
    except Exception:
        return b""


def _cycle_wait(user: CapabilityUser) -> float:
    return user.next_cycle_wait()


def _make_task(capability: CapabilityBase) -> Any:
    def call(self: CapabilityUser) -> None:
        self.send()

    call.__name__ = f"call_{capability.name}"
    decorated = task(call)
    return tag(*capability.tags)(decorated) if capability.tags else decorated


def build_user_classes(config: RunConfig, secret_headers: Mapping[str, str]) -> list[type[CapabilityUser]]:
    """Build every capability's user class. Requests are prepared here, once, so assets are read once.

    In cycle mode only the cycle's capabilities get a class, each with a fixed number of users (the
    cycle's packets spread round-robin), paced to one request per cycle.
    """
    plan = cycle_plan(config) if isinstance(config.load, CycleLoad) else None
    per_user_rps = getattr(config.load, "per_user_rps", None)
    wait_time: Callable[..., float] = (
        _cycle_wait
        if plan
        else constant_throughput(per_user_rps)
        if per_user_rps is not None
        else constant(0)
    )
    classes: list[type[CapabilityUser]] = []
    for capability in config.capabilities:
        if plan is not None and capability.name not in plan.users:
            continue
        protocol = protocol_for(capability.kind)
        prepared = protocol.prepare(capability, config.assets_path)
        headers = {**config.target.headers, **prepared.headers, **secret_headers}
        timeout = capability.request_timeout_s or config.target.request_timeout_s
        attrs: dict[str, Any] = {
            "abstract": False,
            "__module__": __name__,
            "__doc__": f"{capability.kind} {prepared.method} {prepared.path}",
            "host": config.target.base_url,
            "weight": capability.weight,
            "wait_time": wait_time,
            "capability": capability,
            "protocol": protocol,
            "prepared": PreparedRequest(prepared.method, prepared.path, headers, prepared.body),
            "request_timeout_s": timeout,
            "network_timeout": timeout,
            "connection_timeout": config.target.connect_timeout_s,
            "stream_dialect": protocol.stream_dialect(capability),
            "async_job": protocol.async_job(capability),
            "tasks": [_make_task(capability)],
        }
        if plan is not None:
            attrs["cycle"] = plan
            attrs["fixed_count"] = plan.users[capability.name]
        classes.append(type(capability.name, (CapabilityUser,), attrs))
    return classes
