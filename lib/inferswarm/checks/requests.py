"""Requests: one correct request per capability, built and judged by its protocol as the load test
would (seed 003's `http_tensor_transfer`); error handling: a malformed request must get a 4xx, not a
5xx or a hang (`error_handling`); a large request must get a 2xx or a 413 (`large_tensor_handling`)."""

from __future__ import annotations

import dataclasses
import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inferswarm.checks.context import CheckContext, Timer
from inferswarm.checks.model import Check, Status, details_json
from inferswarm.nvml import error_text
from inferswarm.oneshot import Deadline, request_body, send
from inferswarm.protocols import CapabilityBase, PreparedRequest, ResponseView, protocol_for
from inferswarm.protocols.base import RequestFailure, error_message

MALFORMED_BODY = b'{"not json'
"""What replaces the body of the error-handling request: no server should parse it."""
PADDING_FIELD = "inferswarm_padding"
"""The JSON field or multipart part that grows a request to `large_payload_bytes` (servers that ignore
unknown fields, as the Livepeer gateway does, judge the rest of the request as usual)."""
MAX_PARALLEL = 8
"""Capabilities checked at once."""


def request_timeout(ctx: CheckContext, capability: CapabilityBase) -> float:
    """A correct request may take what the load test allows it (a slow model is not a failed check)."""
    given = ctx.checks.request_timeout_s
    return given or capability.request_timeout_s or ctx.config.target.request_timeout_s


def _exchange(
    ctx: CheckContext, request: PreparedRequest, timeout_s: float
) -> tuple[ResponseView, str | None]:
    """The answer as the protocols see it, and why there was none (None when there was one)."""
    try:
        status, content_type, body = send(
            ctx.base_url, request, timeout_s, ctx.config.target.max_response_bytes
        )
    except (Deadline, TimeoutError) as exc:
        return ResponseView(0, error=TimeoutError(str(exc))), f"no answer within {timeout_s:g} s"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return ResponseView(0, error=exc), f"{type(exc).__name__}: {exc}"
    return ResponseView(status, content_type, body), None


def _facts(view: ResponseView, timer: Timer, **more: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"status": view.status, "latency_ms": round(timer.ms, 3), **more}
    message = error_message(view.body) if view.status >= 400 else None
    if message:
        facts["message"] = message
    return facts


def _verdict(
    capability: CapabilityBase, request: PreparedRequest, view: ResponseView
) -> RequestFailure | Status | None:
    """The protocol's verdict on a first answer; a job it only accepted is judged by its acceptance."""
    protocol = protocol_for(capability.kind)
    if view.status and protocol.polls(capability):
        poll = protocol.poll(capability, view, request.headers)
        if isinstance(poll, RequestFailure):
            return poll
        if poll is not None:
            return Status.PASS  # accepted: the result is not awaited here
    failure: RequestFailure | None = protocol.classify(capability, view)
    return failure


def check_request(ctx: CheckContext, capability: CapabilityBase, request: PreparedRequest) -> Check:
    name = f"request:{capability.name}"
    skipped = ctx.skip_unreachable(name)
    if skipped is not None:
        return skipped
    timeout = request_timeout(ctx, capability)
    timer = Timer(name, ctx.scrub)
    view, no_answer = _exchange(ctx, request, timeout)
    if no_answer is not None:
        return timer.check(Status.FAIL, f"{request.method} {request.path}: {no_answer}")
    verdict = _verdict(capability, request, view)
    facts = _facts(view, timer, kind=capability.kind, method=request.method, path=request.path)
    if isinstance(verdict, RequestFailure):
        facts["verdict"] = str(verdict)
        return timer.check(Status.FAIL, details_json(facts))
    facts["verdict"] = "job accepted (not awaited)" if verdict is Status.PASS else "ok"
    return timer.check(Status.PASS, details_json(facts))


def check_malformed(ctx: CheckContext, capability: CapabilityBase, request: PreparedRequest) -> Check:
    name = f"error_handling:{capability.name}"
    if not ctx.checks.malformed:
        return Check(name, Status.SKIP, "checks.malformed is false")
    if request_body(request) is None:
        return Check(name, Status.SKIP, f"a {request.method} request without a body: nothing to malform")
    skipped = ctx.skip_unreachable(name)
    if skipped is not None:
        return skipped
    bad = dataclasses.replace(request, body=MALFORMED_BODY, bodies=())
    timeout = ctx.checks.timeout_s
    timer = Timer(name, ctx.scrub)
    view, no_answer = _exchange(ctx, bad, timeout)
    if no_answer is not None:
        why = "a malformed request must be refused quickly with a 4xx"
        return timer.check(
            Status.FAIL, f"{request.method} {request.path} with a malformed body: {no_answer}; {why}"
        )
    facts = _facts(view, timer, sent="a body that is not valid JSON (or form data)")
    if 400 <= view.status < 500:
        return timer.check(Status.PASS, details_json(facts))
    if view.status >= 500:
        facts["error"] = (
            f"HTTP {view.status} for bad input: the server fails instead of refusing it with a 4xx"
        )
        return timer.check(Status.FAIL, details_json(facts))
    facts["warning"] = f"HTTP {view.status}: a malformed request was not refused"
    return timer.check(Status.WARN, details_json(facts))


def _multipart_boundary(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"')
    return None


def grown_body(request: PreparedRequest, size: int) -> tuple[bytes, str] | str:
    """(the request's body grown to about `size` bytes, how), or why this request cannot grow."""
    body = request_body(request)
    if body is None:
        return f"a {request.method} request without a body"
    if len(body) >= size:
        return body, "the request as it is (already that large)"
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    boundary = _multipart_boundary(content_type)
    if boundary is not None:
        end = f"--{boundary}--".encode()
        at = body.rfind(end)
        if at < 0:
            return "a multipart body without its closing boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{PADDING_FIELD}"; '
            f'filename="padding.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        pad = max(0, size - len(body) - len(head) - 2)
        return body[:at] + head + b"\0" * pad + b"\r\n" + body[at:], f"a {pad}-byte file part"
    if "json" in content_type.lower():
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "a JSON body that does not parse"
        if not isinstance(document, dict):
            return "a JSON body that is not an object"
        if PADDING_FIELD in document:
            return f"the body already has a field {PADDING_FIELD!r}"
        base = json.dumps({**document, PADDING_FIELD: ""}, separators=(",", ":")).encode()
        pad = max(0, size - len(base))
        grown = json.dumps({**document, PADDING_FIELD: "x" * pad}, separators=(",", ":")).encode()
        return grown, f"a {pad}-character JSON field {PADDING_FIELD!r}"
    return f"a {content_type or 'raw'} body that cannot grow without changing what it means"


def check_large(ctx: CheckContext, capability: CapabilityBase, request: PreparedRequest) -> Check:
    name = f"large_payload:{capability.name}"
    size = ctx.checks.large_payload_bytes
    if size is None:
        return Check(name, Status.SKIP, "checks.large_payload_bytes is not set (the largest body to try)")
    grown = grown_body(request, size)
    if isinstance(grown, str):
        return Check(name, Status.SKIP, f"{capability.kind} capability: {grown}")
    skipped = ctx.skip_unreachable(name)
    if skipped is not None:
        return skipped
    body, how = grown
    large = dataclasses.replace(request, body=body, bodies=())
    timeout = request_timeout(ctx, capability)
    timer = Timer(name, ctx.scrub)
    view, no_answer = _exchange(ctx, large, timeout)
    if no_answer is not None:
        return timer.check(Status.FAIL, f"a {len(body)}-byte request: {no_answer}; want a 2xx or a 413")
    facts = _facts(view, timer, bytes=len(body), grown_with=how)
    if 200 <= view.status < 300 or view.status == 413:
        return timer.check(Status.PASS, details_json(facts))
    if view.status >= 500:
        facts["error"] = f"HTTP {view.status} for a large request: want a 2xx, or a 413 when it is too large"
        return timer.check(Status.FAIL, details_json(facts))
    facts["warning"] = f"HTTP {view.status}: neither taken (2xx) nor refused as too large (413)"
    return timer.check(Status.WARN, details_json(facts))


FAMILIES = ("requests", "error_handling", "large_payload")


def _one_capability(ctx: CheckContext, capability: CapabilityBase, families: list[str]) -> list[Check]:
    try:
        prepared = protocol_for(capability.kind).prepare(capability, ctx.config.assets_path)
    except Exception as exc:  # an asset that vanished since the config was loaded, a bad template
        why = ctx.scrub(f"cannot build the request: {error_text(exc)}")
        return [Check(f"{f}:{capability.name}", Status.FAIL, why) for f in families]
    request = dataclasses.replace(prepared, headers=ctx.headers(prepared.headers))
    checks = []
    if "requests" in families:
        checks.append(check_request(ctx, capability, request))
    if "error_handling" in families:
        checks.append(check_malformed(ctx, capability, request))
    if "large_payload" in families:
        checks.append(check_large(ctx, capability, request))
    return checks


def run_requests(ctx: CheckContext, families: list[str]) -> list[Check]:
    """The request families asked for, every capability at once (at most MAX_PARALLEL)."""
    capabilities = list(ctx.config.capabilities)
    if not capabilities or not families:
        return []
    with ThreadPoolExecutor(min(MAX_PARALLEL, len(capabilities)), "inferswarm-check") as pool:
        per_capability = list(pool.map(lambda c: _one_capability(ctx, c, families), capabilities))
    ordered = []
    for family in FAMILIES:
        prefix = {
            "requests": "request:",
            "error_handling": "error_handling:",
            "large_payload": "large_payload:",
        }[family]
        ordered += [c for checks in per_capability for c in checks if c.name.startswith(prefix)]
    return ordered
