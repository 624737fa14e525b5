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

MAX_JSON_BODY_BYTES = 2 * 1024 * 1024
"""A JSON request is refused (413) beyond this, whatever `max_body_bytes` allows multipart uploads."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON document may have (400 beyond)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MalformedBody(ApiError):
    """A request body that is not valid JSON: 400, or the target's `malformed_status`."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class OpenAIError(ApiError):
    """An error of the OpenAI API: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(status, message)
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def json_limit(limit: int) -> int:
    """The body limit of a JSON route: the target's limit, capped at MAX_JSON_BODY_BYTES."""
    return min(limit, MAX_JSON_BODY_BYTES)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes whether or not Content-Length is honest."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes")
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


class TooDeep(ValueError):
    """A JSON document nesting deeper than MAX_JSON_DEPTH."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")  # Go's decoder and OpenAI refuse NaN and Infinity too


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, level) for child in children)
    return deepest


def parse_json(text: str | bytes) -> Any:
    """Strict JSON: ValueError for bad syntax, NaN/Infinity, or nesting deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise TooDeep from None
    if depth(value) > MAX_JSON_DEPTH:
        raise TooDeep
    return value


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the gateway's 400 saying why not."""
    try:
        data = parse_json(body)
    except TooDeep:
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise MalformedBody("request body is not valid JSON") from None
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
