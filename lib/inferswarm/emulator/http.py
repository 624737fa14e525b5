"""HTTP helpers of the reference target: gateway-shaped errors and bounded, validated request bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

Route = TypeVar("Route", bound=Callable[..., Any])
Guard = Callable[[str], Callable[[Route], Route]]
"""Registers a POST capability route behind the target's bearer check."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


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


def validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{field}: {err['msg']}"


def require_content_type(request: Request, media_type: str) -> None:
    """415 naming the media type a route takes, when the request declares another."""
    if not request.headers.get("content-type", "").lower().startswith(media_type):
        raise ApiError(415, f"Content-Type must be {media_type}")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the gateway's 400 saying why not."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def validated(body: bytes, model: type[BaseModel], optional: bool = False) -> Any:
    """The body checked against `model`; an empty body is the model's defaults when `optional`."""
    if optional and not body.strip():
        return model()
    try:
        return model.model_validate(json_object(body))
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc)) from None
