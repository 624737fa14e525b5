"""GPU detection: is there a GPU behind the target? Asked, in this order, of every `inferswarm agent`
(`GET /checks`), else of the `telemetry.gpu_check` capability (seed 000's gpu-check JSON), else of a v2
inference server's model config (`/v2/models/<model>/config`: an instance group of KIND_GPU). No GPU is
a WARN, or a FAIL with `checks.require_gpu`. Seed 003's `gpu_detection`."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from inferswarm.checks.agents import agent_answer
from inferswarm.checks.context import CheckContext, Timer
from inferswarm.checks.http import TENSOR_KIND, get
from inferswarm.checks.model import Check, Status, details_json
from inferswarm.oneshot import Deadline, send
from inferswarm.protocols import protocol_for

NAME = "gpu_detection"


def _no_gpu(ctx: CheckContext) -> Status:
    return Status.FAIL if ctx.checks.require_gpu else Status.WARN


def from_agent(ctx: CheckContext, name: str, url: str) -> Check:
    check_name = f"{NAME}:{name}"
    started = time.perf_counter()
    got = agent_answer(ctx, name, url)
    ms = (
        (got.received_epoch_s - got.sent_epoch_s) * 1000.0
        if got.answer
        else (time.perf_counter() - started) * 1000
    )
    if got.answer is None:
        return Check(check_name, _no_gpu(ctx), ctx.scrub(f"agent {url}: {got.error}"), ms)
    raw_gpu, raw_checks = got.answer.get("gpu"), got.answer.get("checks")
    gpu: dict[str, Any] = raw_gpu if isinstance(raw_gpu, dict) else {}
    server_checks: list[Any] = raw_checks if isinstance(raw_checks, list) else []
    failed = [c.get("name") for c in server_checks if isinstance(c, dict) and c.get("status") == "FAIL"]
    facts: dict[str, Any] = {
        "source": "agent",
        "agent": url,
        "hostname": got.answer.get("hostname"),
        "gpu_count": gpu.get("count", 0),
        "names": gpu.get("names", []),
        "driver_version": gpu.get("driver_version"),
        "nvml": gpu.get("nvml"),
    }
    if failed:
        facts["server_side_failed"] = failed
    visible = bool(gpu.get("visible"))
    status = Status.PASS if visible and not failed else (Status.WARN if visible else _no_gpu(ctx))
    return Check(check_name, status, ctx.scrub(details_json(facts)), ms)


def _gpu_check_count(document: Any) -> tuple[int, list[str]]:
    if not isinstance(document, dict):
        return 0, []
    devices = document.get("devices")
    names = []
    if isinstance(devices, dict):
        names = [str(d.get("name")) for d in devices.values() if isinstance(d, dict) and d.get("name")]
    count = document.get("gpu_count")
    return (int(count) if isinstance(count, int | float) else len(names)), names


def from_gpu_check(ctx: CheckContext, capability_name: str) -> Check:
    skipped = ctx.skip_unreachable(NAME)
    if skipped is not None:
        return skipped
    capability = next(c for c in ctx.config.capabilities if c.name == capability_name)
    timer = Timer(NAME, ctx.scrub)
    try:
        prepared = protocol_for(capability.kind).prepare(capability, ctx.config.assets_path)
        request = dataclasses.replace(prepared, headers=ctx.headers(prepared.headers))
        status, _, body = send(ctx.base_url, request, ctx.checks.timeout_s, 1024 * 1024)
        document = json.loads(body) if status == 200 else None
    except (Deadline, TimeoutError):
        return timer.check(_no_gpu(ctx), f"{capability_name}: no answer within {ctx.checks.timeout_s:g} s")
    except Exception as exc:  # no answer, not JSON, an asset gone
        return timer.check(_no_gpu(ctx), f"{capability_name}: {type(exc).__name__}: {exc}")
    if document is None:
        return timer.check(_no_gpu(ctx), f"{capability_name}: HTTP {status}")
    count, names = _gpu_check_count(document)
    facts = {"source": f"gpu_check capability {capability_name!r}", "gpu_count": count, "names": names}
    if isinstance(document, dict) and document.get("message"):
        facts["message"] = document["message"]
    return timer.check(Status.PASS if count > 0 else _no_gpu(ctx), details_json(facts))


def from_v2_config(ctx: CheckContext) -> Check | None:
    models = [getattr(c, "model", None) for c in ctx.config.capabilities if c.kind == TENSOR_KIND]
    model = next((m for m in models if isinstance(m, str) and m), None)
    if model is None:
        return None
    skipped = ctx.skip_unreachable(NAME)
    if skipped is not None:
        return skipped
    timer = Timer(NAME, ctx.scrub)
    path = f"/v2/models/{model}/config"
    try:
        status, _, body = get(ctx, path, ctx.checks.timeout_s)
        document = json.loads(body) if status == 200 else None
    except Exception as exc:
        return timer.check(Status.SKIP, f"GET {path}: {type(exc).__name__}: {exc}")
    if not isinstance(document, dict):
        return timer.check(Status.SKIP, f"GET {path}: HTTP {status}: the v2 server says nothing about GPUs")
    groups = document.get("instance_group") or []
    kinds = {str(g.get("kind", "")) for g in groups if isinstance(g, dict)}
    facts = {"source": f"v2 model config {path}", "instance_kinds": sorted(kinds)}
    if "KIND_GPU" in kinds:
        return timer.check(Status.PASS, details_json(facts))
    return timer.check(_no_gpu(ctx), details_json(facts))


def run_gpu(ctx: CheckContext) -> list[Check]:
    if ctx.agents:
        return [from_agent(ctx, name, url) for name, url in ctx.agents]
    name = ctx.config.telemetry.gpu_check
    if name is not None and any(c.name == name for c in ctx.config.capabilities):
        return [from_gpu_check(ctx, name)]
    v2 = from_v2_config(ctx)
    if v2 is not None:
        return [v2]
    why = "nothing to ask: add an `inferswarm agent` (telemetry.agents, --agent) or telemetry.gpu_check"
    return [Check(NAME, _no_gpu(ctx) if ctx.checks.require_gpu else Status.SKIP, why)]
