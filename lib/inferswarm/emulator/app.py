"""The reference target's HTTP API (FastAPI).

Routes: GET /health, GET /stats; every Livepeer AI gateway pipeline (emulator.pipelines) with the
gateway's async mode for image-to-video; `/llm` and the OpenAI-compatible `/v1/chat/completions` and
`/v1/completions`, streamed or not (emulator.llm); BYOC `/process/request/<route>` (emulator.byoc);
echo capabilities `/prompt-enhance` and `/gpu-check` (emulator.echo); with an `edge:` section in the
settings, a Groundlight edge endpoint (emulator.edge, which answers in FastAPI's `{"detail": ...}`);
with a `gateway:` section, go-livepeer's discovery endpoints and every pipeline job routed to an emulated
orchestrator first (emulator.gateway); with a `leaderboard:` section, the Livepeer leaderboard's stats API
(emulator.leaderboard, which answers `{"error": "<text>"}`); with a `tensor:` section, an Open Inference
Protocol (KServe v2) tensor server and seed 003's `/execute` (emulator.tensor, KServe's `{"error"}`).
Errors use the Livepeer gateway's shape, `{"error": {"message": ...}}` (the OpenAI-compatible routes
add OpenAI's `type`, `param` and `code`): 400 for bad input (the message says what), 413 for oversized
bodies (JSON bodies are capped at `http.MAX_JSON_BODY_BYTES`, uploads at `max_body_bytes`), 415 for a
wrong content type, 503 "Service Unavailable Error" when the simulated GPU is full, and a masked 500
for anything unexpected. No traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from inferswarm.emulator.byoc import register_byoc
from inferswarm.emulator.echo import echo_prompt_enhance, gpu_check
from inferswarm.emulator.edge import EdgeState, register_edge
from inferswarm.emulator.gateway import Gateway, register_gateway
from inferswarm.emulator.gpu import CapacityExceeded
from inferswarm.emulator.http import (
    ApiError,
    MalformedBody,
    OpenAIError,
    Route,
    error_response,
    json_limit,
    read_body,
    require_content_type,
)
from inferswarm.emulator.leaderboard import Leaderboard, register_leaderboard
from inferswarm.emulator.llm import register_llm
from inferswarm.emulator.pipelines import register_pipelines
from inferswarm.emulator.settings import TargetSettings
from inferswarm.emulator.state import TargetState
from inferswarm.emulator.tensor import register_tensor

log = logging.getLogger("inferswarm.emulator")


def create_app(settings: TargetSettings | None = None) -> FastAPI:
    state = TargetState(settings or TargetSettings())

    app = FastAPI(title="inferswarm reference target", version="1", docs_url=None, redoc_url=None)
    app.state.target = state
    limit = state.settings.max_body_bytes

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, OpenAIError):
            response = JSONResponse(exc.body(), status_code=exc.status)
        elif isinstance(exc, MalformedBody) and state.settings.malformed_status is not None:
            response = error_response(state.settings.malformed_status, exc.message)
        else:
            response = error_response(exc.status, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(CapacityExceeded)
    async def _capacity(_: Request, __: CapacityExceeded) -> JSONResponse:
        return error_response(503, "Service Unavailable Error")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, str(exc.errors()[0].get("msg", "invalid request")))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, __: ClientDisconnect) -> Response:
        # A load generator stopping mid-request is normal, not a server error: no traceback; 499 like nginx.
        state.client_disconnects += 1
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the server log keeps the detail; the client gets the gateway mask
        return error_response(500, "Internal Server Error")

    def capability(path: str) -> Callable[[Route], Route]:
        """A capability route: POST, behind the bearer check when the target demands a token."""
        return app.post(path, dependencies=[Depends(state.require_auth)])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "OK", "slots": state.gpu.slots, "in_system": state.gpu.in_system}

    edge = EdgeState(state.settings.edge, state.settings.seed) if state.settings.edge else None
    gateway = Gateway(state.settings.gateway) if state.settings.gateway else None
    leaderboard = Leaderboard(state.settings.leaderboard) if state.settings.leaderboard else None

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        counters = {
            "uptime_s": round(time.time() - state.started, 3),
            "requests": dict(state.requests),
            "client_disconnects": state.client_disconnects,
            "gpu": state.gpu.snapshot(),
        }
        if edge is not None:
            counters["edge"] = edge.snapshot()
        if gateway is not None:
            counters["gateway"] = gateway.snapshot()
        if leaderboard is not None:
            counters["leaderboard"] = leaderboard.snapshot()
        return counters

    @capability("/prompt-enhance")
    async def prompt_enhance(request: Request) -> dict[str, Any]:
        require_content_type(request, "application/json")
        return await echo_prompt_enhance(state, await read_body(request, json_limit(limit)))

    @capability("/gpu-check")
    async def gpu_check_route(request: Request) -> dict[str, Any]:
        body = await read_body(request, json_limit(limit))
        if body.strip():
            require_content_type(request, "application/json")
        return await gpu_check(state, body)

    register_pipelines(app, state, limit, capability, gateway)
    register_llm(app, state, limit, capability, gateway)
    register_byoc(app, state, limit)
    if edge is not None:
        register_edge(app, edge)
    if gateway is not None:
        register_gateway(app, gateway)
    if leaderboard is not None:
        register_leaderboard(app, leaderboard)
    if state.settings.tensor is not None:
        register_tensor(app, state, state.settings.tensor)
    return app
