"""What every wire protocol shares: the capability model, the prepared request, and response classification.

A protocol module turns a configured capability into a `PreparedRequest` once per process (assets are read
then, not per request) and decides whether a response counts as success. Failures carry a stable
category and a short, bounded detail so Locust's failure table stays small and groupable.
"""

from __future__ import annotations

import json
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from inferswarm.secrets import refuse_literal_credentials
from inferswarm.strict import MAX_TIMEOUT_S, MAX_WEIGHT, StrictModel, literal_tag


class FailureCategory(StrEnum):
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    CAPACITY = "capacity"
    BAD_BODY = "bad_body"
    UNEXPECTED_STATUS = "unexpected_status"
    NOT_READY = "not_ready"
    """The service is up but the model behind it is not (a Groundlight edge detector whose inference pod
    is not running yet answers 503): distinct from capacity, which is a running service that is full."""


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

    kind: str
    """The kind's tag; each kind's model narrows it to `Literal["<tag>"]`."""
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    tags: list[str] = Field(default_factory=list)
    success: SuccessCriteria = Field(default_factory=SuccessCriteria)
    request_timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    """Overrides the target's request timeout for this capability."""

    _no_literal_secrets = field_validator("headers")(refuse_literal_credentials)

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        """(field name, absolute path) of every asset this capability reads; checked at load time."""
        return []

    def expand(self) -> list[CapabilityBase]:
        """The capabilities this entry of the config stands for: itself, or one per variant (a tensor
        capability's `sizes`, each named `<name>@<size>`), expanded when the config loads."""
        return [self]

    def secret_envs(self) -> list[tuple[str, str]]:
        """(field name, environment variable) of every secret this capability sends from the environment
        (its own credential header); checked with `target.secret_headers` before a run starts, and the
        values masked like theirs (the client masks every credential-named header it sends)."""
        return []


@dataclass(frozen=True)
class PreparedRequest:
    """A request built once and sent many times."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None = None
    bodies: tuple[bytes, ...] = ()
    """Bodies sent in turn, one per request, instead of `body` (distinct images, so a server's caches do
    not flatter the numbers); each client starts at its own place in the turn. Empty: `body` every time."""
    request_id_header: str | None = None
    """A header the client sets to a fresh id on every request (`X-Request-Id`), as `request_id_prefix`
    followed by 32 hex digits (a uuid4); None: no such header."""
    request_id_prefix: str = ""


@dataclass(frozen=True)
class ResponseView:
    """The parts of a response classification looks at (decoupled from the HTTP client)."""

    status: int
    content_type: str = ""
    body: bytes = b""
    error: BaseException | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


_new_object = object.__new__
_set_attribute = object.__setattr__


def response_view(status: int, content_type: str, body: bytes) -> ResponseView:
    """`ResponseView(status=status, content_type=content_type, body=body)`, equal to it in every way, at
    under half the cost: the client builds one per answer, and a frozen dataclass's `__init__` sets each
    field through `object.__setattr__`. Here the instance gets its whole `__dict__` at once."""
    view = _new_object(ResponseView)
    fields = {"status": status, "content_type": content_type, "body": body, "error": None, "extra": {}}
    _set_attribute(view, "__dict__", fields)
    return view


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


def value_at(document: Any, dotted: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path of parsed JSON: `result.label`, `outputs.0.name`."""
    node = document
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _has_path(document: Any, dotted: str) -> bool:
    return value_at(document, dotted)[0]


_DECODER = json.JSONDecoder()
_JSON_SPACE = " \t\n\r"


def parse_json(body: bytes) -> Any:
    """`json.loads(body)`: the same document, or the same errors (ValueError, UnicodeDecodeError), in a
    quarter of the time for the usual body, an object or array in UTF-8 (its first byte `{` or `[`, its
    second not NUL: what json's `detect_encoding` reads as UTF-8). `json.loads` spends most of a small
    body's time finding the encoding and matching whitespace with a regular expression at both ends."""
    if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":
        text = body.decode("utf-8", "surrogatepass")
        document, end = _DECODER.raw_decode(text)
        if end != len(text):
            rest = text[end:].lstrip(_JSON_SPACE)
            if rest:
                raise json.JSONDecodeError("Extra data", text, len(text) - len(rest))
        return document
    return json.loads(body)


def check_body(body: bytes, criteria: SuccessCriteria) -> RequestFailure | None:
    """Body checks for an accepted status. Messages name the problem, never the body's content."""
    if criteria.body == "any":
        return None
    if not body.strip():
        return RequestFailure(FailureCategory.BAD_BODY, "empty body")
    if criteria.body == "nonempty":
        return None
    try:
        document = parse_json(body)
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


class Pending:
    """A poll's answer that says: not done yet, ask again."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING = Pending()

Verdict = RequestFailure | None | Pending
"""A poll answer judged: a failure, success (None), or PENDING."""


@dataclass(frozen=True)
class Poll:
    """How to follow a submitted job to its answer: what to send, how often, and when it is done.

    The client sends `request` after `interval_s` (the first after one interval), each next wait `backoff`
    times the last, until `judge` returns a failure or success, or the request's whole deadline passes (a
    `timeout` failure). With `until_s`, no wait reaches past that many seconds after polling began: the
    one that would is shortened to land on it, as the Groundlight SDK's poll lands on its patience time;
    what an answer then means is the judge's call (it keeps its own clock), and polls after it, if the
    judge still says PENDING, go on at the full interval. Polls are part of the job, not requests of their
    own: the job is one request in the statistics, timed submit to answer.
    """

    request: PreparedRequest
    interval_s: float
    judge: Callable[[ResponseView], Verdict]
    backoff: float = 1.0
    until_s: float | None = None


C = TypeVar("C", bound=CapabilityBase)


class Protocol(ABC, Generic[C]):
    """One capability kind: its config model (`model`, tagged by `kind`) and its wire behaviour.

    Most kinds are one request and one response. A kind whose responses are server-sent events says so
    (`stream_dialect`); a kind whose first answer only accepts a job says how to poll for the result
    (`poll`). The client runs the matching flow; it never branches on the kind.
    """

    model: ClassVar[type[CapabilityBase]]
    wants_headers: ClassVar[bool] = False
    """Whether `classify`/`observations` read the answer's headers (`ResponseView.extra["headers"]`, a
    mapping, e.g. a tensor server's `Server-Timing`); the client copies them only for kinds that do."""

    @property
    def kind(self) -> str:
        return kind_of(self.model)

    @abstractmethod
    def prepare(self, capability: C, assets_dir: Path) -> PreparedRequest:
        """Build the request once; read asset files here."""

    def classify(self, capability: C, response: ResponseView) -> RequestFailure | None:
        return classify(response, capability.success)

    def stream_dialect(self, capability: C) -> str | None:
        """The LLM stream dialect when this capability's responses are server-sent events."""
        return None

    def polls(self, capability: C) -> bool:
        """Whether some first answers only accept a job (then `poll` is asked about each answer)."""
        return False

    def poll(
        self, capability: C, submitted: ResponseView, headers: Mapping[str, str]
    ) -> Poll | RequestFailure | None:
        """For a first answer that accepted a job: how to poll it, or why the acceptance is unusable;
        None when this answer is final (then `classify` judges it). `headers`: those the submit was
        sent with (credentials included)."""
        return None

    def observations(self, capability: C, answer: ResponseView, elapsed_ms: float) -> list[tuple[str, float]]:
        """Numbers a successful answer carries, as (metric, value): the client logs each as the derived
        entry `<capability>:<metric>` (see `inferswarm.derived`). `answer`: the final answer (the last
        poll's, for a polled job); `elapsed_ms`: the request's response time. Asked only of protocols that
        override it, and only for successes."""
        return []

    def describe(self, capability: C, assets_dir: Path) -> dict[str, Any]:
        """Facts the report needs about one request (pipeline, images per request, audio seconds)."""
        return {}


def kind_of(model: type[CapabilityBase]) -> str:
    """The `kind` tag of a capability model (`kind: Literal["<tag>"]`)."""
    return literal_tag(model, "kind")


_PROTOCOLS: dict[str, Protocol[Any]] = {}

P = TypeVar("P", bound=type[Protocol[Any]])


def register_protocol(cls: P) -> P:
    """Class decorator: make a capability kind selectable as `kind: <tag of cls.model>`."""
    instance = cls()
    _PROTOCOLS[instance.kind] = instance
    return cls


def protocols() -> dict[str, Protocol[Any]]:
    """Every registered capability kind (built-in kinds register when `inferswarm.protocols` is imported)."""
    return dict(_PROTOCOLS)


def protocol_for(kind: str) -> Protocol[Any]:
    try:
        return _PROTOCOLS[kind]
    except KeyError:
        raise KeyError(
            f"unknown protocol kind {kind!r}; valid kinds: {', '.join(sorted(_PROTOCOLS))}"
        ) from None
