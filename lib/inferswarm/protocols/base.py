"""What every wire protocol shares: the capability model, the prepared request, and response classification.

A protocol module turns a configured capability into a `PreparedRequest` once per process (assets are read
then, not per request) and decides whether a response counts as success. Failures carry a stable
category and a short, bounded detail so Locust's failure table stays small and groupable.
"""

from __future__ import annotations

import json
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inferswarm.secrets import refuse_literal_credentials


class StrictModel(BaseModel):
    """Base for every config model: unknown keys and type coercion are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FailureCategory(StrEnum):
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    CAPACITY = "capacity"
    BAD_BODY = "bad_body"
    UNEXPECTED_STATUS = "unexpected_status"


class RequestFailure(Exception):
    """A classified failure. Its repr is the stable message Locust stores in the failures table."""

    def __init__(self, category: FailureCategory, detail: str) -> None:
        super().__init__(f"{category.value}: {detail}")
        self.category = category
        self.detail = detail

    def __repr__(self) -> str:
        return str(self)


# HTTP statuses that mean "the service is out of capacity", not "the request was wrong".
CAPACITY_STATUSES = frozenset({503, 429})


class SuccessCriteria(StrictModel):
    """What a response must look like to count as a success."""

    status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    body: Literal["any", "nonempty", "json"] = "json"
    json_fields: list[str] = Field(default_factory=list)
    """Dotted paths that must exist in the JSON body, e.g. `images` or `result.label`."""

    @field_validator("status")
    @classmethod
    def _valid_statuses(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"not an HTTP status code: {bad[0]}")
        return value


class CapabilityBase(StrictModel):
    """Fields every capability has, whatever its wire protocol."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1)
    tags: list[str] = Field(default_factory=list)
    success: SuccessCriteria = Field(default_factory=SuccessCriteria)
    request_timeout_s: float | None = Field(default=None, gt=0)
    """Overrides the target's request timeout for this capability."""

    _no_literal_secrets = field_validator("headers")(refuse_literal_credentials)

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        """(field name, absolute path) of every asset this capability reads; checked at load time."""
        return []


@dataclass(frozen=True)
class PreparedRequest:
    """A request built once and sent many times."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None = None


@dataclass(frozen=True)
class ResponseView:
    """The parts of a response classification looks at (decoupled from the HTTP client)."""

    status: int
    content_type: str = ""
    body: bytes = b""
    error: BaseException | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def classify_exception(error: BaseException) -> RequestFailure:
    """Transport-level failure: the request got no usable HTTP response."""
    name = type(error).__name__
    if isinstance(error, TimeoutError | socket.timeout) or "Timeout" in name:
        return RequestFailure(FailureCategory.TIMEOUT, name)
    return RequestFailure(FailureCategory.CONNECTION_ERROR, name)


def classify_status(status: int, accepted: list[int]) -> RequestFailure | None:
    """Map an HTTP status onto a category; None when the status is an accepted one."""
    if status in accepted:
        return None
    if status in CAPACITY_STATUSES:
        return RequestFailure(FailureCategory.CAPACITY, f"HTTP {status}")
    if 400 <= status < 500:
        return RequestFailure(FailureCategory.CLIENT_ERROR, f"HTTP {status}")
    if 500 <= status < 600:
        return RequestFailure(FailureCategory.SERVER_ERROR, f"HTTP {status}")
    return RequestFailure(FailureCategory.UNEXPECTED_STATUS, f"HTTP {status}")


def _has_path(document: Any, dotted: str) -> bool:
    node = document
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_body(body: bytes, criteria: SuccessCriteria) -> RequestFailure | None:
    """Body checks for an accepted status. Messages name the problem, never the body's content."""
    if criteria.body == "any":
        return None
    if not body.strip():
        return RequestFailure(FailureCategory.BAD_BODY, "empty body")
    if criteria.body == "nonempty":
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return RequestFailure(FailureCategory.BAD_BODY, "invalid JSON")
    for dotted in criteria.json_fields:
        if not _has_path(document, dotted):
            return RequestFailure(FailureCategory.BAD_BODY, f"missing field {dotted!r}")
    return None


MAX_MESSAGE_CHARS = 80


def error_message(body: bytes) -> str | None:
    """The message in an error body, bounded so Locust's failure table stays small.

    Knows the Livepeer gateway's `{"error": {"message"}}`, the ai-runner's `{"detail": {"msg"}}`,
    FastAPI's 422 `{"detail": [{"loc", "msg"}]}`, OpenAI's `{"error": {"message"}}`, and plain text.
    """
    text = body.strip()
    if not text:
        return None
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return text[:MAX_MESSAGE_CHARS].decode("utf-8", errors="replace").splitlines()[0]
    message: Any = None
    if isinstance(doc, dict):
        error, detail = doc.get("error"), doc.get("detail")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        elif isinstance(detail, dict):
            message = detail.get("msg")
        elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = ".".join(str(p) for p in detail[0].get("loc", []))
            message = f"{loc}: {detail[0].get('msg', '')}" if loc else detail[0].get("msg")
        elif isinstance(detail, str):
            message = detail
    if message is None:
        return None
    return str(message)[:MAX_MESSAGE_CHARS]


def classify_http_error(response: ResponseView, accepted: list[int]) -> RequestFailure | None:
    """`classify_status` with the server's own message appended (a 400's message says what was wrong)."""
    failure = classify_status(response.status, accepted)
    if failure is None:
        return None
    message = error_message(response.body)
    if message:
        return RequestFailure(failure.category, f"{failure.detail}: {message}")
    return failure


def classify(response: ResponseView, criteria: SuccessCriteria) -> RequestFailure | None:
    """Success is None; anything else is a categorised failure."""
    if response.error is not None and response.status == 0:
        return classify_exception(response.error)
    failure = classify_status(response.status, criteria.status)
    if failure is not None:
        return failure
    return check_body(response.body, criteria)


@dataclass(frozen=True)
class AsyncJob:
    """A request answered `202 {"request_id"}` whose result is polled (the gateway's async mode)."""

    result_path: str
    poll_interval_s: float


class Protocol(ABC):
    """One wire protocol: how to build a capability's request and judge its response.

    Most protocols are one request and one response. A protocol that streams (`stream_dialect`) or
    runs an asynchronous job (`async_job`) says so, and the user runs that flow instead.
    """

    kind: ClassVar[str]

    def stream_dialect(self, capability: Any) -> str | None:
        """The LLM stream dialect when this capability's responses are server-sent events."""
        return None

    def async_job(self, capability: Any) -> AsyncJob | None:
        return None

    def classify_job_result(self, capability: Any, result: Any) -> RequestFailure | None:
        """Judge a finished async job's `result` object."""
        return None

    def describe(self, capability: Any, assets_dir: Path) -> dict[str, Any]:
        """Facts the report needs about one request (pipeline, images per request, audio seconds)."""
        return {}

    @abstractmethod
    def prepare(self, capability: Any, assets_dir: Path) -> PreparedRequest:
        """Build the request once; read asset files here."""

    def classify(self, capability: Any, response: ResponseView) -> RequestFailure | None:
        return classify(response, capability.success)
