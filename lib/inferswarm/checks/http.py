"""HTTP health: GET the health route (`checks.health_path`, default /health), and a v2 inference
server's `/v2/health/ready` when a capability is of kind `tensor`. Seed 003's `server_connectivity`."""

from __future__ import annotations

import http.client
from dataclasses import replace

from inferswarm.checks.context import CheckContext, Timer
from inferswarm.checks.model import Check, Status, details_json
from inferswarm.oneshot import Deadline, send
from inferswarm.protocols.base import PreparedRequest, error_message

V2_READY = "/v2/health/ready"
TENSOR_KIND = "tensor"


def get(ctx: CheckContext, path: str, timeout_s: float) -> tuple[int, str, bytes]:
    """GET `path` of the target with the load test's headers (credentials included)."""
    request = PreparedRequest("GET", path, ctx.headers({"Accept": "application/json"}))
    return send(ctx.base_url, request, timeout_s, max_body_bytes=1024 * 1024)


def no_answer(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, Deadline | TimeoutError):
        return f"no HTTP answer within {timeout_s:g} s"
    return f"no HTTP answer: {type(exc).__name__}: {exc}"


def check_route(ctx: CheckContext, name: str, path: str, missing: str) -> Check:
    """One health route: 2xx PASS, 404 WARN (`missing`), 5xx FAIL, no answer FAIL (and the target
    counts as unreachable for the checks after it: they SKIP rather than wait in turn)."""
    skipped = ctx.skip_unreachable(name)
    if skipped is not None:
        return skipped
    timeout = ctx.checks.timeout_s
    timer = Timer(name, ctx.scrub)
    try:
        status, _, body = get(ctx, path, timeout)
    except (Deadline, OSError, http.client.HTTPException, ValueError) as exc:
        reason = no_answer(exc, timeout)
        ctx.unreachable = f"GET {path}: {reason}"
        return timer.check(Status.FAIL, f"GET {path}: {reason}")
    facts: dict[str, object] = {"path": path, "status": status, "latency_ms": round(timer.ms, 3)}
    message = error_message(body) if status >= 400 else None
    if message:
        facts["message"] = message
    if 200 <= status < 300:
        return timer.check(Status.PASS, details_json(facts))
    if status == 404:
        facts["warning"] = missing
        return timer.check(Status.WARN, details_json(facts))
    if status >= 500:
        facts["error"] = "the target says it is not healthy" if status == 503 else "server error"
        return timer.check(Status.FAIL, details_json(facts))
    facts["warning"] = f"HTTP {status} from the health route"
    return timer.check(Status.WARN, details_json(facts))


def run_http(ctx: CheckContext) -> list[Check]:
    checks = [check_route(ctx, "server_health", ctx.checks.health_path, "no health route")]
    if any(c.kind == TENSOR_KIND for c in ctx.config.capabilities):
        checks.append(check_route(ctx, "v2_health_ready", V2_READY, "no v2 readiness route"))
    models: list[tuple[str, str | None]] = []
    for capability in ctx.config.capabilities:
        model = getattr(capability, "model", None)
        if capability.kind == TENSOR_KIND and getattr(capability, "protocol", None) == "v2" and model:
            version = getattr(capability, "model_version", None)
            if (model, version) not in models:
                models.append((model, version))
    for model, version in models:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
        check = check_route(ctx, f"v2_model_ready:{model}", path, "the server does not know this model")
        if check.status is Status.WARN and '"status": 404' in check.details:
            check = replace(check, status=Status.FAIL)  # a v2 server without the model cannot answer it
        checks.append(check)
    return checks
