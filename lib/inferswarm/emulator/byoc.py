"""The Livepeer BYOC gateway, emulated: `POST /process/request/<route>` with the `Livepeer` job header.

The header is checked as the gateway checks it (base64 JSON; `request` and `parameters` are JSON
strings; `timeout_seconds` non-zero), with the gateway's text/plain 400s. The capability named in the
header picks the worker; the path after `/process/request/` is the worker's route. When no slot is free
the gateway's retries all fail and it writes nothing: an empty 200 with no `X-Orchestrator-Url`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from inferswarm.emulator.echo import ECHO_ROUTES, gpu_check
from inferswarm.emulator.gpu import CapacityExceeded
from inferswarm.emulator.http import ApiError, json_limit, parse_json, read_body
from inferswarm.emulator.state import TargetState

ORCHESTRATOR_URL = "https://127.0.0.1:8935"


class JobRejected(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def parse_job(value: str | None) -> dict[str, Any]:
    """The decoded `Livepeer` header, or JobRejected with the gateway's text."""
    if not value:
        raise JobRejected(400, "Unable to parse job request: missing Livepeer header")
    try:
        job = parse_json(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise JobRejected(400, "Unable to parse job request: header is not base64 JSON") from None
    if not isinstance(job, dict) or not isinstance(job.get("capability"), str) or not job["capability"]:
        raise JobRejected(400, "Unable to parse job request: capability is required")
    for key in ("request", "parameters"):
        raw = job.get(key)
        if not isinstance(raw, str):
            raise JobRejected(400, f"Unable to parse job request: {key} must be a JSON string")
        try:
            inner = parse_json(raw)
        except ValueError:
            raise JobRejected(400, f"Unable to parse job request: {key} is not valid JSON") from None
        if not isinstance(inner, dict):
            raise JobRejected(400, f"Unable to parse job request: {key} must hold a JSON object")
    timeout = job.get("timeout_seconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout == 0:
        raise JobRejected(400, "no timeout_seconds set with request, timeout_seconds is required")
    return job


def register_byoc(app: FastAPI, state: TargetState, limit: int) -> None:
    settings = state.settings.byoc

    @app.api_route("/process/request/{route:path}", methods=["GET", "PUT", "PATCH", "DELETE", "POST"])
    async def process_request(route: str, request: Request) -> Response:
        if request.method != "POST":
            return PlainTextResponse("Method not allowed\n", status_code=405)
        try:
            job = parse_job(request.headers.get("livepeer"))
        except JobRejected as exc:
            return PlainTextResponse(exc.text + "\n", status_code=exc.status)
        routes = settings.capabilities.get(job["capability"])
        if routes is None:
            return PlainTextResponse(
                f"No orchestrators found for capability {job['capability']}\n", status_code=400
            )
        name = route.strip("/")
        if name not in routes:
            return PlainTextResponse("404 page not found\n", status_code=404)  # the worker's 4xx, relayed
        try:
            body = await read_body(request, json_limit(limit))  # every worker route takes JSON
        except ApiError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=exc.status)
        try:
            if name in ("gpu-check", "agent-net"):
                answer = await gpu_check(state, body, routed_via=job["capability"])
            else:
                answer = await ECHO_ROUTES[name](state, body)
        except CapacityExceeded:
            if settings.empty_200_on_failure:
                # every orchestrator answered 503 "No capacity": the gateway writes nothing at all
                return Response(status_code=200)
            return PlainTextResponse("No capacity available for capability\n", status_code=503)
        except ApiError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=exc.status)
        return JSONResponse(
            answer, headers={"X-Orchestrator-Url": ORCHESTRATOR_URL, "Livepeer-Balance": "1000"}
        )
