"""The reference target's HTTP API (FastAPI).

Routes: GET /health, GET /stats, POST /text-to-image and /prompt-enhance (echo mode, JSON),
POST /image-to-text (multipart), POST /gpu-check (seed 000's GPU JSON).
Errors use the Livepeer gateway's shape, `{"error": {"message": ...}}`: 400 for bad input (the message
says what), 413 for oversized bodies, 415 for a wrong content type, 503 "Service Unavailable Error" when
the simulated GPU is full, and a masked 500 for anything unexpected. No traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from inferswarm.target.gpu import CapacityExceeded, SimulatedGpu
from inferswarm.target.gpu_check import gpu_check_report
from inferswarm.target.settings import TargetSettings

log = logging.getLogger("inferswarm.target")
Route = TypeVar("Route", bound=Callable[..., Any])

# A 1x1 transparent PNG: the smallest honest stand-in for a generated image.
_PIXEL_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
    )
).decode()


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


class _Lenient(BaseModel):
    """Request models: typed known fields, unknown fields tolerated (as the gateway does)."""

    model_config = ConfigDict(extra="allow", strict=True)


class TextToImageRequest(_Lenient):
    prompt: str = Field(min_length=1, max_length=10_000)
    model_id: str = ""
    width: int = Field(default=512, ge=8, le=4096)
    height: int = Field(default=512, ge=8, le=4096)
    num_images_per_prompt: int = Field(default=1, ge=1, le=8)
    seed: int | None = None


class PromptEnhanceRequest(_Lenient):
    prompt: str = Field(min_length=1, max_length=10_000)


class GpuCheckRequest(_Lenient):
    agent_id: str | None = None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes whether or not Content-Length is honest."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body exceeds {limit} bytes")
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes")
    # Starlette's form() and body() read from this cache once the stream has been consumed.
    request._body = bytes(body)
    return bytes(body)


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{field}: {err['msg']}"


async def parse_json(request: Request, limit: int, model: type[BaseModel], optional: bool = False) -> Any:
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, limit)
    if optional and not body.strip():
        return model()
    if not content_type.lower().startswith("application/json"):
        raise ApiError(415, "Content-Type must be application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _validation_message(exc)) from None


class TargetState:
    def __init__(self, settings: TargetSettings) -> None:
        self.settings = settings
        self.token: str | None = None
        if settings.auth_token_env:
            self.token = os.environ.get(settings.auth_token_env)
            if not self.token:
                raise ValueError(f"auth_token_env: environment variable {settings.auth_token_env} is not set")
        self.gpu = SimulatedGpu(settings.slots, settings.queue_depth)
        self.rng = random.Random(settings.seed)
        self.requests: dict[str, int] = {}
        self.client_disconnects = 0
        self.started = time.time()

    def require_auth(self, request: Request) -> None:
        """The ai-runner's bearer check: 401 with WWW-Authenticate when the token is wrong or missing."""
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise ApiError(401, "Invalid bearer token.")

    async def work(self, capability: str) -> float:
        """Occupy the simulated GPU (or not) for one sampled service time; returns it in ms."""
        self.requests[capability] = self.requests.get(capability, 0) + 1
        cap = self.settings.for_capability(capability)
        service_s = max(cap.service_time.sample_s(self.rng), 0.0)
        if cap.gpu:
            async with self.gpu.slot():
                await asyncio.sleep(service_s)
        else:
            await asyncio.sleep(service_s)
        return round(service_s * 1000.0, 3)


def create_app(settings: TargetSettings | None = None) -> FastAPI:
    state = TargetState(settings or TargetSettings())
    app = FastAPI(title="inferswarm reference target", version="1", docs_url=None, redoc_url=None)
    app.state.target = state
    limit = state.settings.max_body_bytes

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
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

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - state.started, 3),
            "requests": dict(state.requests),
            "client_disconnects": state.client_disconnects,
            "gpu": state.gpu.snapshot(),
        }

    @capability("/text-to-image")
    async def text_to_image(request: Request) -> dict[str, Any]:
        body: TextToImageRequest = await parse_json(request, limit, TextToImageRequest)
        service_ms = await state.work("text-to-image")
        seed = body.seed if body.seed is not None else state.rng.randrange(2**32)
        images = [
            {"url": f"data:image/png;base64,{_PIXEL_PNG}", "seed": seed + i, "nsfw": False}
            for i in range(body.num_images_per_prompt)
        ]
        return {
            "status": "success",
            "capability": "text-to-image",
            "mode": "echo",
            "echo": body.model_dump(),
            "images": images,
            "service_time_ms": service_ms,
            "timestamp": round(time.time(), 3),
        }

    @capability("/prompt-enhance")
    async def prompt_enhance(request: Request) -> dict[str, Any]:
        body: PromptEnhanceRequest = await parse_json(request, limit, PromptEnhanceRequest)
        service_ms = await state.work("prompt-enhance")
        return {
            "status": "success",
            "capability": "prompt-enhance",
            "mode": "echo",
            "prompt": body.prompt,
            "enhanced_prompt": f"{body.prompt}, highly detailed, sharp focus, studio lighting",
            "service_time_ms": service_ms,
            "timestamp": round(time.time(), 3),
        }

    @capability("/image-to-text")
    async def image_to_text(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "Content-Type must be multipart/form-data")
        await read_body(request, limit)  # enforce the limit before parsing
        try:
            form = await request.form()
        except Exception:
            raise ApiError(400, "request body is not valid multipart/form-data") from None
        image = form.get("image")
        if image is None or isinstance(image, str):
            raise ApiError(400, "image: a file part named 'image' is required")
        data = await image.read()
        if not data:
            raise ApiError(400, "image: file is empty")
        service_ms = await state.work("image-to-text")
        prompt = form.get("prompt")
        return {
            "text": f"echo: {len(data)} bytes of {image.content_type or 'unknown type'}",
            "prompt": prompt if isinstance(prompt, str) else "",
            "service_time_ms": service_ms,
        }

    @capability("/gpu-check")
    async def gpu_check(request: Request) -> dict[str, Any]:
        body: GpuCheckRequest = await parse_json(request, limit, GpuCheckRequest, optional=True)
        await state.work("gpu-check")
        # NVML calls block; keep them off the event loop.
        report = await asyncio.to_thread(gpu_check_report)
        if body.agent_id is not None:
            report["agent_id"] = body.agent_id
        return report

    return app
