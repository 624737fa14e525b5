"""`kind: groundlight`: image queries to a Groundlight edge endpoint (or the cloud), as its public API
(`groundlight-public-api.yaml`) and the edge endpoint define them.

`POST /device-api/v1/image-queries?detector_id=det_...` with the raw image bytes (`Content-Type:
image/jpeg` or `image/png`), the `x-api-token` header from the environment variable `api_token_env`, the
optional `patience_time`, `confidence_threshold`, `human_review` and `want_async` query parameters, and an
`X-Request-Id` in the SDK's format (`req_uu` + a uuid4's hex) fresh on every request.

Images: the asset `image`, or `distinct_images` generated ones of `image_size` (seed 001's
`--image-width/--image-height`, 640x480 by default) made once per process without any imaging library, in
turn one per request from each user's own starting point, so a server's caches do not flatter the numbers.

Classification as the edge endpoint behaves: 200 (an edge answer) and 201 (the cloud's) are successes only
when the `ImageQuery` body is valid for the detector's mode (BINARY: `label` YES/NO/UNCLEAR; COUNT: `count`
an integer >= 0 or null and `greater_than_max` a boolean; MULTI_CLASS: a `label`); 400/415 are client
errors; 503 is `not_ready` (an edge-only detector whose inference pod is not up yet), not capacity; 429
(the cloud's throttling, relayed) is capacity. nginx re-sends what the edge app answers 404/405/422 to the
cloud, so those reach the client as the cloud's answer: a 201 without the edge's markers (a cloud answer),
or the cloud's own 4xx (a client error).

Each successful answer is observed (`observations`): its response time as `edge_ms` (`result.from_edge`
or `metadata.is_from_edge`) or `cloud_ms`, as `source_<source>`, and its confidence as `confidence_pct`.

`poll_until_confident`: an answer below the confidence threshold and not `done_processing` is followed with
`GET /device-api/v1/image-queries/{id}` as the SDK does (first after 0.25 s, each wait 1.3 times the last,
the last landing on the patience time) until it is confident or done; the job is timed submit to answer,
and an answer still not confident at the patience time is the answer (the SDK returns it too).
"""

from __future__ import annotations

import functools
import json
import os
import random
import struct
import time
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeGuard
from urllib.parse import quote, urlencode

from pydantic import Field, model_validator

from inferswarm import derived
from inferswarm.protocols.base import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    SuccessCriteria,
    Verdict,
    classify_exception,
    classify_http_error,
    error_message,
    register_protocol,
)
from inferswarm.strict import MAX_TIMEOUT_S, StrictModel

API_PATH = "/device-api/v1/image-queries"
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PREFIX = "req_uu"
"""The SDK's `_generate_request_id()`: `"req_uu" + uuid.uuid4().hex`."""
TOKEN_HEADER = "x-api-token"
DEFAULT_TOKEN_ENV = "GROUNDLIGHT_API_TOKEN"
"""The variable the SDK itself reads the token from."""

POLL_INITIAL_S = 0.25
POLL_BACKOFF = 1.3
"""The SDK's `POLLING_INITIAL_DELAY` and `POLLING_EXPONENTIAL_BACKOFF`."""
DEFAULT_PATIENCE_S = 30.0
"""The SDK's default wait, and the edge's default patience time."""

Mode = Literal["BINARY", "COUNT", "MULTI_CLASS"]
RESULT_TYPES: dict[str, str] = {
    "BINARY": "binary_classification",
    "COUNT": "counting",
    "MULTI_CLASS": "multi_classification",
}
BINARY_LABELS = frozenset({"YES", "NO", "UNCLEAR"})
SOURCES = frozenset(
    {
        # PROTOCOLS.md section 5 (what answers carry) and the spec's SourceEnum
        "STILL_PROCESSING",
        "CLOUD",
        "USER",
        "CLOUD_ENSEMBLE",
        "ALGORITHM",
        "AI_CLOUD",
        "AI_CLOUD_ENSEMBLE",
        "HUMAN_AI_CLOUD_ENSEMBLE",
        "HUMAN_CLOUD_ENSEMBLE",
        "EDGE",
        "INITIAL_PLACEHOLDER",
        "CUST",
        "ALG",
        "ALG_REC",
        "ALG_UNCLEAR",
    }
)
OTHER_SOURCE = derived.SOURCE_PREFIX + "other"
"""Any source outside the known ones: the entries stay bounded whatever a server says."""
MAX_ID_CHARS = 200
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MAX_SIDE = 4096


class ImageSize(StrictModel):
    width: int = Field(default=640, ge=8, le=MAX_SIDE)
    height: int = Field(default=480, ge=8, le=MAX_SIDE)


class GroundlightCapability(CapabilityBase):
    kind: Literal["groundlight"]
    method: Literal["POST"] = "POST"
    path: str = Field(default=API_PATH, pattern=r"^/[^?#]*$")
    """The submit route; set it when the endpoint sits under a prefix. The query string is built here."""
    detector_id: str = Field(pattern=r"^det_[A-Za-z0-9_-]{1,100}$")
    mode: Mode = "BINARY"
    """What a valid answer looks like (the detector's mode)."""
    image: str | None = None
    """An image under the assets directory (.jpg, .jpeg or .png), sent as is; default: generated ones."""
    image_size: ImageSize = Field(default_factory=ImageSize)
    image_format: Literal["jpeg", "png"] = "jpeg"
    distinct_images: int = Field(default=4, ge=1, le=64)
    """How many different generated images are sent in turn (not with `image`)."""
    api_token_env: str = Field(default=DEFAULT_TOKEN_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)
    """The environment variable holding the `x-api-token` (checked before the run starts)."""
    patience_time: float | None = Field(default=None, ge=0, le=MAX_TIMEOUT_S)
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    human_review: Literal["DEFAULT", "ALWAYS", "NEVER"] | None = None
    want_async: bool = False
    """Sent as `want_async=True`: the answer comes back at once with `result: null`."""
    poll_until_confident: bool = False
    success: SuccessCriteria = Field(default_factory=lambda: SuccessCriteria(status=[200, 201]))
    """200 (edge) and 201 (cloud) by default; the body is always checked against the mode."""

    @model_validator(mode="after")
    def _consistent(self) -> GroundlightCapability:
        if self.image is not None:
            if Path(self.image).suffix.lower() not in CONTENT_TYPES:
                raise ValueError(f"image: must be one of {', '.join(sorted(CONTENT_TYPES))}")
            fixed = {"image_size", "image_format", "distinct_images"} & self.model_fields_set
            if fixed:
                raise ValueError(f"{sorted(fixed)[0]}: only for generated images (not with `image`)")
        for header in self.headers:
            if header.lower() in (TOKEN_HEADER, "content-type", REQUEST_ID_HEADER.lower()):
                raise ValueError(f"headers.{header}: set by the groundlight kind itself")
        return self

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        return [("image", (assets_dir / self.image).resolve())] if self.image is not None else []

    def secret_envs(self) -> list[tuple[str, str]]:
        return [("api_token_env", self.api_token_env)]

    def query(self) -> dict[str, str]:
        """The submit's query parameters, as the SDK sends them."""
        params = {"detector_id": self.detector_id}
        if self.patience_time is not None:
            params["patience_time"] = repr(float(self.patience_time))
        if self.confidence_threshold is not None:
            params["confidence_threshold"] = repr(float(self.confidence_threshold))
        if self.human_review is not None:
            params["human_review"] = self.human_review
        if self.want_async:
            params["want_async"] = "True"
        return params


# -- images -------------------------------------------------------------------------------------------------
def _huffman(bits: tuple[int, ...], values: bytes) -> dict[int, str]:
    """The canonical Huffman codes (as bit strings) of a JPEG table given as DHT counts and values."""
    codes: dict[int, str] = {}
    code = 0
    index = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = format(code, f"0{length}b")
            code += 1
            index += 1
        code <<= 1
    return codes


# The standard luminance tables of the JPEG spec (ITU T.81 Annex K.3), used for every component.
DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
DC_VALUES = bytes(range(12))
AC_BITS = (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D)
AC_VALUES = bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
    "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
    "535455565758595a636465666768696a737475767778797a838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
    "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
)
QUANT = 4
"""Every entry of the one quantisation table: coefficients are drawn already quantised."""


def _bits(value: int) -> tuple[int, str]:
    """A coefficient's size category and its magnitude bits (JPEG's one's-complement form when < 0)."""
    size = abs(value).bit_length()
    if size == 0:
        return 0, ""
    return size, format(value if value > 0 else value + (1 << size) - 1, f"0{size}b")


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def make_jpeg(width: int, height: int, seed: int) -> bytes:
    """A valid baseline JPEG (YCbCr 4:4:4) with a textured picture, distinct per seed.

    No DCT: the quantised coefficients are drawn directly (a brightness gradient in the DC terms, random
    low-frequency AC terms), so this is fast without an imaging library; the size is like a camera frame's.
    """
    rng = random.Random(seed)
    dc_codes, ac_codes = _huffman(DC_BITS, DC_VALUES), _huffman(AC_BITS, AC_VALUES)
    eob, zrl = ac_codes[0x00], ac_codes[0xF0]
    blocks_x, blocks_y = (width + 7) // 8, (height + 7) // 8
    out: list[str] = []
    previous = [0, 0, 0]
    tint = rng.randrange(-40, 40), rng.randrange(-40, 40)
    for by in range(blocks_y):
        for bx in range(blocks_x):
            level = 40 + 180 * (bx + by) // (blocks_x + blocks_y) + rng.randrange(-30, 30)
            means = (level, 128 + tint[0], 128 + tint[1])
            for component in range(3):
                dc = (means[component] - 128) * 8 // QUANT
                size, bits = _bits(dc - previous[component])
                previous[component] = dc
                out.append(dc_codes[size] + bits)
                terms = 6 if component == 0 else 2
                last = 0
                for position in sorted(rng.sample(range(1, 21), terms)):
                    run = position - last - 1
                    while run > 15:
                        out.append(zrl)
                        run -= 16
                    value = rng.choice((-1, 1)) * rng.randrange(1, 24 if component == 0 else 8)
                    size, bits = _bits(value)
                    out.append(ac_codes[(run << 4) | size] + bits)
                    last = position
                out.append(eob)
    stream = "".join(out)
    stream += "1" * (-len(stream) % 8)  # padded with ones, as the spec asks
    scan = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00")
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"".join(
        bytes((component, 0x11, 0)) for component in (1, 2, 3)
    )
    tables = bytes((0x00, *DC_BITS)) + DC_VALUES + bytes((0x10, *AC_BITS)) + AC_VALUES
    scan_header = bytes((3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0))
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xDB, b"\x00" + bytes([QUANT] * 64)),
            _segment(0xC0, frame),
            _segment(0xC4, tables),
            _segment(0xDA, scan_header),
            scan,
            b"\xff\xd9",
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG: bands of a gradient with noise (compressing like a photo), distinct per seed."""
    rng = random.Random(seed)
    offset = rng.randrange(256)
    rows = []
    for y in range(height):
        base = (offset + 200 * y // height) & 0xFF
        shade = bytes((base + (i & 0x0F)) & 0xFF for i in range(256))
        rows.append(b"\x00" + rng.randbytes(width * 3).translate(shade))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(b"".join(rows), 6)),
            _chunk(b"IEND", b""),
        )
    )


@functools.lru_cache(maxsize=64)
def generated_image(image_format: str, width: int, height: int, index: int) -> bytes:
    """The `index`th generated image of a size and format (made once per process)."""
    seed = zlib.crc32(f"{image_format}:{width}x{height}:{index}".encode())
    make = make_png if image_format == "png" else make_jpeg
    return make(width, height, seed)


def images(capability: GroundlightCapability, assets_dir: Path) -> tuple[str, tuple[bytes, ...]]:
    """(content type, the images sent in turn)."""
    if capability.image is not None:
        path = (assets_dir / capability.image).resolve()
        return CONTENT_TYPES[path.suffix.lower()], (path.read_bytes(),)
    size = capability.image_size
    fmt = capability.image_format
    made = tuple(generated_image(fmt, size.width, size.height, i) for i in range(capability.distinct_images))
    return f"image/{fmt}", made


# -- answers ----------------------------------------------------------------------------------------------
def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def result_problem(result: Any, mode: str) -> str | None:
    """What is wrong with an ImageQuery's `result` for a detector's mode; None when it is valid."""
    if not isinstance(result, dict):
        return "result is not an object"
    result_type = result.get("result_type")
    if result_type is not None and result_type != RESULT_TYPES[mode]:
        return f"result_type {str(result_type)[:40]!r} for a {mode} detector"
    if mode == "BINARY":
        if result.get("label") not in BINARY_LABELS:
            return "result.label is not YES, NO or UNCLEAR"
    elif mode == "COUNT":
        count = result.get("count", "missing")
        if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
            return "result.count is not an integer >= 0"
        if "greater_than_max" in result and not isinstance(result["greater_than_max"], bool):
            return "result.greater_than_max is not a boolean"
    elif not isinstance(result.get("label"), str) or not result["label"]:
        return "result.label is missing or not a string"
    confidence = result.get("confidence")
    if confidence is not None and not (_number(confidence) and 0 <= confidence <= 1):
        return "result.confidence is not a number in [0, 1]"
    if "source" in result and not isinstance(result["source"], str):
        return "result.source is not a string"
    if "from_edge" in result and not isinstance(result["from_edge"], bool):
        return "result.from_edge is not a boolean"
    return None


def image_query_problem(document: Any, mode: str, result_may_be_null: bool) -> str | None:
    """What is wrong with an ImageQuery body; None when it is a valid answer for the mode."""
    if not isinstance(document, dict):
        return "body is not an object"
    query_id = document.get("id")
    if not isinstance(query_id, str) or not query_id or len(query_id) > MAX_ID_CHARS:
        return "id is missing or not a string"
    if document.get("result") is None:
        return None if result_may_be_null else "result is null"
    if "done_processing" in document and not isinstance(document["done_processing"], bool):
        return "done_processing is not a boolean"
    return result_problem(document["result"], mode)


def from_edge(document: Mapping[str, Any]) -> bool:
    """Whether an answer came from the edge: `result.from_edge` or `metadata.is_from_edge`."""
    result, metadata = document.get("result"), document.get("metadata")
    return (isinstance(result, dict) and result.get("from_edge") is True) or (
        isinstance(metadata, dict) and metadata.get("is_from_edge") is True
    )


def source_metric(source: str) -> str:
    return derived.SOURCE_PREFIX + source.lower() if source in SOURCES else OTHER_SOURCE


def is_confident(document: Mapping[str, Any], threshold: float | None) -> bool:
    """Done waiting, as the SDK's `iq_is_confident` (a null confidence is not confident) or the edge's
    `done_processing` (no further answer will come)."""
    if document.get("done_processing") is True:
        return True
    result = document.get("result")
    confidence = result.get("confidence") if isinstance(result, dict) else None
    if threshold is None:
        threshold = document.get("confidence_threshold")
    return _number(confidence) and _number(threshold) and confidence >= threshold


@register_protocol
class GroundlightProtocol(Protocol[GroundlightCapability]):
    model = GroundlightCapability

    def __init__(self) -> None:
        self._parsed: tuple[bytes, Any] = (b"", None)
        """The last body parsed and its document: `observations` reads the body `classify` just read."""

    def prepare(self, capability: GroundlightCapability, assets_dir: Path) -> PreparedRequest:
        token = os.environ.get(capability.api_token_env)
        if not token:  # checked before the run starts (`secret_envs`); here for direct callers
            raise ValueError(f"api_token_env: environment variable {capability.api_token_env} is not set")
        content_type, bodies = images(capability, assets_dir)
        headers = {"Content-Type": content_type, TOKEN_HEADER: token, **capability.headers}
        path = f"{capability.path}?{urlencode(capability.query())}"
        return PreparedRequest(
            "POST",
            path,
            headers,
            bodies[0],
            bodies=bodies if len(bodies) > 1 else (),
            request_id_header=REQUEST_ID_HEADER,
            request_id_prefix=REQUEST_ID_PREFIX,
        )

    def _document(self, body: bytes) -> Any:
        cached_body, document = self._parsed
        if cached_body is body:
            return document
        document = json.loads(body)
        self._parsed = (body, document)
        return document

    def _judge(self, capability: GroundlightCapability, response: ResponseView) -> RequestFailure | None:
        if response.error is not None and response.status == 0:
            return classify_exception(response.error)
        if response.status == 503:
            # The edge's 503 means "no inference pod yet"; a 503 that names capacity (a pod with a full
            # queue, as the reference target says it) is overload, which must not read as not ready.
            message = error_message(response.body)
            category = (
                FailureCategory.CAPACITY
                if message and "capacity" in message.lower()
                else FailureCategory.NOT_READY
            )
            return RequestFailure(category, f"HTTP 503: {message}" if message else "HTTP 503")
        failure = classify_http_error(response, capability.success.status)
        if failure is not None:
            return failure
        try:
            document = self._document(response.body)
        except (ValueError, UnicodeDecodeError):
            return RequestFailure(FailureCategory.BAD_BODY, "invalid JSON")
        problem = image_query_problem(document, capability.mode, capability.want_async)
        return RequestFailure(FailureCategory.BAD_BODY, problem) if problem else None

    def classify(self, capability: GroundlightCapability, response: ResponseView) -> RequestFailure | None:
        return self._judge(capability, response)

    def polls(self, capability: GroundlightCapability) -> bool:
        return capability.poll_until_confident

    def poll(
        self, capability: GroundlightCapability, submitted: ResponseView, headers: Mapping[str, str]
    ) -> Poll | RequestFailure | None:
        """An answer below the confidence threshold (or `want_async`'s empty one), not `done_processing`:
        follow it to a confident answer, up to the patience time."""
        if self._judge(capability, submitted) is not None:
            return None  # `classify` says why
        document = self._document(submitted.body)
        if is_confident(document, capability.confidence_threshold):
            return None
        patience = capability.patience_time
        if patience is None:
            patience = document.get("patience_time")
            patience = float(patience) if _number(patience) and patience >= 0 else DEFAULT_PATIENCE_S
        if patience <= 0:
            return None
        poll_headers = {
            k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")
        }
        poll_headers[REQUEST_ID_HEADER] = REQUEST_ID_PREFIX + uuid.uuid4().hex
        prefix = capability.path.rstrip("/")
        request = PreparedRequest("GET", f"{prefix}/{quote(document['id'], safe='')}", poll_headers)
        patience_ends = time.perf_counter() + patience

        def judge(view: ResponseView) -> Verdict:
            failure = self._judge(capability, view)
            if failure is not None:
                return failure
            answer = self._document(view.body)
            if answer.get("result") is not None and is_confident(answer, capability.confidence_threshold):
                return None
            if time.perf_counter() >= patience_ends and answer.get("result") is not None:
                return None  # the patience time is up: this answer is the answer, as the SDK returns it
            return PENDING

        return Poll(request, POLL_INITIAL_S, judge, backoff=POLL_BACKOFF, until_s=patience)

    def observations(
        self, capability: GroundlightCapability, answer: ResponseView, elapsed_ms: float
    ) -> list[tuple[str, float]]:
        try:
            document = self._document(answer.body)
        except (ValueError, UnicodeDecodeError):
            return []
        result = document.get("result") if isinstance(document, dict) else None
        if not isinstance(result, dict):
            return []  # `want_async`'s acknowledgement: no answer yet
        edge = from_edge(document)
        observed = [(derived.EDGE_MS if edge else derived.CLOUD_MS, elapsed_ms)]
        source = result.get("source")
        if isinstance(source, str):
            observed.append((source_metric(source), elapsed_ms))
        confidence = result.get("confidence")
        if _number(confidence):
            observed.append((derived.CONFIDENCE_PCT, float(confidence) * 100.0))
        return observed

    def describe(self, capability: GroundlightCapability, assets_dir: Path) -> dict[str, Any]:
        info: dict[str, Any] = {"detector_id": capability.detector_id, "mode": capability.mode}
        if capability.image is not None:
            info["image"] = capability.image
        else:
            size = capability.image_size
            info["image"] = f"{size.width}x{size.height} {capability.image_format}"
            info["distinct_images"] = capability.distinct_images
        return info
