"""The reference target as a Groundlight edge endpoint (mounted when the settings have an `edge:` section).

What the real endpoint does (groundlight/edge-endpoint `app/api/routes/image_queries.py`, `health.py`,
`edge_detector_readiness.py`, the status monitor; PROTOCOLS.md section 5), emulated:

- `POST /device-api/v1/image-queries?detector_id=det_...` with raw image bytes. 415 `{"detail": "Request
  body must be image bytes"}` for a non-image Content-Type; 400 for the cloud-only parameters
  (`inspection_id`, `metadata`, `image_query_id`), for `human_review=ALWAYS` or `want_async` on an
  edge-only detector, and for malformed values (on the real endpoint nginx hands those to the cloud, which
  refuses them); 413 beyond the body limit; 404 for an unknown detector.
- Each detector has an inference pod that comes online `online_after_s` after the start (or after its
  first query). Before that an edge-only detector (`before_online: not_ready`) answers 503 and the others
  escalate: the cloud answers 201.
- Once online, a query holds a slot of the pod's simulated GPU (`emulator.gpu`) for a sampled service
  time. Confidence is drawn so that `escalation_share` of the answers fall below the detector's
  threshold. A confident answer is 200 from the edge: `result.from_edge`, `metadata.is_from_edge`,
  `source: ALGORITHM`, `done_processing: true`. A low-confidence one goes to the cloud (201, cloud
  source, not done) or, on an edge-only detector, comes back from the edge with `done_processing: false`
  while it is escalated in the background.
- A pod whose slots and queue are full escalates the query to the cloud (edge-only: 503 "at capacity"),
  so under a ramp the edge share falls once the pods saturate.
- `GET /device-api/v1/image-queries/{id}`: the stored query; an escalated one becomes confident (source
  CLOUD, confidence 1.0, done) `cloud_confident_after_s` after its submit.
- What the `groundlight` SDK calls before it submits: `GET /device-api/v1/me` (twice, at construction),
  `GET /device-api/v1/api-tokens/by-snippet/{snippet}` (token rotation: `token_ttl: null`, no rotation),
  `GET /device-api/v1/detectors/{id}`.
- `/health/live`, `/health/ready` (503 until `ready_after_s`), `/ping`, `/edge-detector-readiness`,
  `/status/metrics.json` (`device_info` with this host's CPU and memory, as the status page has).

Errors are FastAPI's `{"detail": ...}`, as the edge app answers them. Times that decide readiness and
poll answers come from `EdgeState.clock`, which tests replace (`EdgeState.reset`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inferswarm.emulator.gpu import CapacityExceeded, SimulatedGpu
from inferswarm.emulator.http import ApiError, read_body
from inferswarm.emulator.settings import EdgeDetector, EdgeSettings

API = "/device-api/v1"
CLOUD_ONLY_PARAMS = ("inspection_id", "metadata", "image_query_id")
HUMAN_REVIEW = ("DEFAULT", "ALWAYS", "NEVER")
TRUE = ("true", "1", "yes", "on", "t", "y")
FALSE = ("false", "0", "no", "off", "f", "n")
RESULT_TYPES = {"BINARY": "binary_classification", "COUNT": "counting", "MULTI_CLASS": "multi_classification"}
EDGE_SOURCE = "ALGORITHM"
"""Edge answers always come from the edge model: source ALGORITHM."""
CLOUD_SOURCE = "CLOUD_ENSEMBLE"
"""The cloud's first answer to an escalated query (not yet confident)."""
CONFIDENT_CLOUD_SOURCE = "CLOUD"
"""The cloud's confident answer, `cloud_confident_after_s` later (a human label)."""
IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"\x00\x00\x01\x00",  # ICO
)
IQ_ID = re.compile(r"^iq_[A-Za-z0-9]{1,64}$")
SNIPPET = re.compile(r"^[A-Za-z0-9_]{1,64}$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NOT_FOUND = "Not found."


class EdgeError(Exception):
    """An error answered as the edge app answers it: `{"detail": ...}` with a status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_iq_id() -> str:
    """`iq_` and 27 base62 characters, like the KSUIDs the real endpoint makes."""
    return "iq_" + "".join(secrets.choice(BASE62) for _ in range(27))


def is_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""The JPEG start-of-frame markers (SOF0..SOF15 less DHT, JPG and DAC), which carry the size."""
MAX_IMAGE_SIZES = 16
"""Distinct `WxH` keys counted per detector; any further size counts as `other`."""


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """A PNG's or JPEG's (width, height) from its header; None when it cannot be read."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in JPEG_FRAMES and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xDA or length < 2:  # the scan starts before any frame header: not readable
            return None
        at += 2 + length
    return None


@dataclass
class QueryParams:
    """The submit route's query parameters, checked."""

    detector_id: str
    patience_time: float | None = None
    confidence_threshold: float | None = None
    human_review: str | None = None
    want_async: bool = False


def _number(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise EdgeError(400, f"{name}: must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise EdgeError(400, f"{name}: must be between {low:g} and {high:g}, got {raw[:40]!r}")
    return value


def parse_params(params: Any) -> QueryParams:
    """400 for the parameters the edge refuses or cannot read; the rest as a QueryParams."""
    refused = sorted(set(params.keys()) & set(CLOUD_ONLY_PARAMS))
    if refused:
        raise EdgeError(400, f"Invalid query parameters: {set(refused)}")
    detector_id = params.get("detector_id")
    if not detector_id:
        raise EdgeError(400, "detector_id: field required")
    parsed = QueryParams(detector_id)
    if (raw := params.get("patience_time")) is not None:
        parsed.patience_time = _number("patience_time", raw, 0.0, 3600.0)
    if (raw := params.get("confidence_threshold")) is not None:
        parsed.confidence_threshold = _number("confidence_threshold", raw, 0.0, 1.0)
    if (raw := params.get("human_review")) is not None:
        if raw not in HUMAN_REVIEW:
            raise EdgeError(400, f"human_review: one of {', '.join(HUMAN_REVIEW)}, got {raw[:40]!r}")
        parsed.human_review = raw
    if (raw := params.get("want_async")) is not None:
        if raw.lower() not in TRUE + FALSE:
            raise EdgeError(400, f"want_async: must be a boolean, got {raw[:40]!r}")
        parsed.want_async = raw.lower() in TRUE
    return parsed


@dataclass
class PodCounters:
    edge: int = 0
    """Answers from the edge (200)."""
    cloud: int = 0
    """Answers from the cloud (201)."""
    not_ready: int = 0
    """503s before the pod was up (edge-only detectors)."""
    saturated: int = 0
    """Queries the pod's full queue turned away (escalated, or 503 on edge-only detectors)."""
    low_confidence: int = 0
    """Edge inferences below the threshold."""
    image_sizes: dict[str, int] = field(default_factory=dict)
    """Submitted images by `WxH` (`unknown`: not readable; `other`: beyond MAX_IMAGE_SIZES sizes)."""

    def count_image(self, data: bytes) -> None:
        size = image_dimensions(data)
        key = "unknown" if size is None else f"{size[0]}x{size[1]}"
        if key not in self.image_sizes and len(self.image_sizes) >= MAX_IMAGE_SIZES:
            key = "other"
        self.image_sizes[key] = self.image_sizes.get(key, 0) + 1


@dataclass
class Pod:
    """A detector's inference pod: when it comes up, its simulated GPU, its counters."""

    detector: EdgeDetector
    gpu: SimulatedGpu
    starts_at: float | None
    """Clock time the pod started coming up (None: not yet, it starts on the first query)."""
    counters: PodCounters = field(default_factory=PodCounters)
    last_query_at: float | None = None

    @property
    def online_at(self) -> float | None:
        return None if self.starts_at is None else self.starts_at + self.detector.online_after_s

    def online(self, now: float) -> bool:
        online_at = self.online_at
        return online_at is not None and now >= online_at


@dataclass
class StoredQuery:
    body: dict[str, Any]
    confident_at: float | None = None
    """Clock time the cloud's confident answer replaces the body (None: final already)."""
    confident_body: dict[str, Any] | None = None


class EdgeState:
    """The emulated endpoint: pods, stored image queries, the clock readiness is measured by."""

    def __init__(
        self, settings: EdgeSettings, seed: int | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.detectors = {d.id: d for d in settings.detectors}
        self.rng = random.Random(seed)
        self.reset(clock)

    def reset(self, clock: Callable[[], float] | None = None) -> None:
        """Start again at `clock()` (a test's controllable clock): pods, queries and counters anew."""
        if clock is not None:
            self.clock = clock
        self.started = self.clock()
        self.pods = {
            d.id: Pod(
                d,
                SimulatedGpu(d.slots, d.queue_depth),
                self.started if d.pod_starts == "startup" else None,
            )
            for d in self.settings.detectors
        }
        self.queries: OrderedDict[str, StoredQuery] = OrderedDict()
        self.last_activity: str | None = None

    # --- answers ---------------------------------------------------------------------------------

    def detector(self, detector_id: str) -> EdgeDetector:
        found = self.detectors.get(detector_id)
        if found is None:
            raise EdgeError(404, NOT_FOUND)
        return found

    def draw_value(self, det: EdgeDetector) -> int | str:
        if det.mode == "BINARY":
            return self.rng.choice(("YES", "NO"))
        if det.mode == "COUNT":
            return self.rng.randint(0, det.max_count + 1)  # one above max: greater_than_max
        return self.rng.choice(det.class_names)

    def draw_confidence(self, det: EdgeDetector) -> float:
        """Below the detector's threshold with probability escalation_share, else at or above it."""
        threshold = det.confidence_threshold
        if threshold > 0 and self.rng.random() < det.escalation_share:
            return round(self.rng.uniform(threshold / 2, threshold) * 0.9999, 4)
        return round(self.rng.uniform(threshold, 1.0), 4)

    def result(
        self, det: EdgeDetector, value: int | str, confidence: float, source: str, from_edge: bool
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "confidence": confidence,
            "source": source,
            "result_type": RESULT_TYPES[det.mode],
        }
        if from_edge:
            result["from_edge"] = True
        if det.mode == "COUNT":
            count = int(value)
            result["count"] = min(count, det.max_count)
            result["greater_than_max"] = count > det.max_count
        else:
            result["label"] = str(value)
        return result

    def image_query(
        self,
        det: EdgeDetector,
        params: QueryParams,
        threshold: float,
        result: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        done: bool,
    ) -> dict[str, Any]:
        patience = params.patience_time if params.patience_time is not None else det.patience_time
        return {
            "metadata": metadata,
            "id": new_iq_id(),
            "type": "image_query",
            "created_at": now_iso(),
            "query": det.query,
            "detector_id": det.id,
            "result_type": RESULT_TYPES[det.mode],
            "result": result,
            "patience_time": float(patience),
            "confidence_threshold": float(threshold),
            "rois": None,
            "text": None,
            "done_processing": done,
        }

    def store(self, body: dict[str, Any], confident_body: dict[str, Any] | None = None) -> None:
        confident_at = None
        if confident_body is not None:
            confident_at = self.clock() + self.settings.cloud_confident_after_s
        self.queries[body["id"]] = StoredQuery(body, confident_at, confident_body)
        while len(self.queries) > self.settings.max_stored_queries:
            self.queries.popitem(last=False)

    def confident_version(self, det: EdgeDetector, body: dict[str, Any], value: int | str) -> dict[str, Any]:
        """The same query once the cloud has answered it confidently."""
        return {
            **body,
            "metadata": None,
            "result": self.result(det, value, 1.0, CONFIDENT_CLOUD_SOURCE, from_edge=False),
            "done_processing": True,
        }

    async def escalate(
        self,
        det: EdgeDetector,
        params: QueryParams,
        threshold: float,
        edge_result: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """The cloud's answer (201) after its latency: not yet confident; confident on a later poll."""
        pod = self.pods[det.id]
        pod.counters.cloud += 1
        await asyncio.sleep(max(self.settings.cloud_latency.sample_s(self.rng), 0.0))
        value = self.draw_value(det)
        metadata = {"edge_result": edge_result} if edge_result is not None else None
        if self.settings.cloud_confident_after_s == 0 or threshold == 0:
            final = self.image_query(det, params, threshold, None, None, True)
            final = self.confident_version(det, final, value)
            self.store(final)
            return 201, final
        result = None
        if not params.want_async:
            confidence = round(self.rng.uniform(threshold / 2, threshold) * 0.9999, 4)
            result = self.result(det, value, confidence, CLOUD_SOURCE, from_edge=False)
        body = self.image_query(det, params, threshold, result, metadata, False)
        self.store(body, self.confident_version(det, body, value))
        return 201, body

    async def submit(self, params: QueryParams) -> tuple[int, dict[str, Any]]:
        det = self.detector(params.detector_id)
        pod = self.pods[det.id]
        now = self.clock()
        pod.last_query_at = now
        self.last_activity = now_iso()
        if pod.starts_at is None:
            pod.starts_at = now  # the first query creates the deployment record
        edge_only = det.before_online == "not_ready"
        threshold = (
            params.confidence_threshold
            if params.confidence_threshold is not None
            else det.confidence_threshold
        )
        if params.human_review == "ALWAYS" and edge_only:
            raise EdgeError(400, "Human review cannot be required if edge predictions are required.")
        if params.want_async:
            if edge_only:
                raise EdgeError(
                    400,
                    "Async requests are not supported when 'always_return_edge_prediction' is set to True.",
                )
            return await self.escalate(det, params, threshold)
        if params.human_review == "ALWAYS":
            return await self.escalate(det, params, threshold)
        if not pod.online(now):
            if edge_only:
                pod.counters.not_ready += 1
                raise EdgeError(
                    503,
                    "Edge predictions are required, but an edge-inference server is not available for "
                    f"detector_id='{det.id}'.",
                )
            return await self.escalate(det, params, threshold)
        try:
            async with pod.gpu.slot():
                await asyncio.sleep(max(det.service_time.sample_s(self.rng), 0.0))
        except CapacityExceeded:
            pod.counters.saturated += 1
            if edge_only:
                raise EdgeError(
                    503, f"The edge-inference server for detector_id='{det.id}' is at capacity."
                ) from None
            return await self.escalate(det, params, threshold)
        value = self.draw_value(det)
        confidence = self.draw_confidence(det)
        confident = confidence >= threshold
        result = self.result(det, value, confidence, EDGE_SOURCE, from_edge=True)
        if not confident:
            pod.counters.low_confidence += 1
            if not edge_only:
                return await self.escalate(det, params, threshold, edge_result=result)
        pod.counters.edge += 1
        body = self.image_query(det, params, threshold, result, {"is_from_edge": True}, confident)
        # A low-confidence edge answer is escalated in the background; polls later see the cloud's.
        self.store(body, None if confident else self.confident_version(det, body, value))
        return 200, body

    def poll(self, iq_id: str) -> dict[str, Any]:
        stored = self.queries.get(iq_id) if IQ_ID.match(iq_id) else None
        if stored is None:
            raise EdgeError(404, NOT_FOUND)
        if stored.confident_at is not None and self.clock() >= stored.confident_at:
            assert stored.confident_body is not None
            stored.body, stored.confident_at, stored.confident_body = stored.confident_body, None, None
        return stored.body

    # --- detectors, readiness, status ------------------------------------------------------------

    def detector_body(self, det: EdgeDetector) -> dict[str, Any]:
        mode_configuration: dict[str, Any] | None = None
        if det.mode == "COUNT":
            mode_configuration = {"max_count": det.max_count, "class_name": det.class_name}
        elif det.mode == "MULTI_CLASS":
            mode_configuration = {"class_names": list(det.class_names), "num_classes": len(det.class_names)}
        return {
            "id": det.id,
            "type": "detector",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "name": det.display_name,
            "query": det.query,
            "group_name": "inferswarm",
            "confidence_threshold": float(det.confidence_threshold),
            "patience_time": float(det.patience_time),
            "metadata": None,
            "mode": det.mode,
            "mode_configuration": mode_configuration,
            "status": "ON",
            "escalation_type": "STANDARD",
        }

    def readiness(self) -> dict[str, dict[str, bool]]:
        now = self.clock()
        return {det_id: {"ready": pod.online(now)} for det_id, pod in self.pods.items()}

    def ready(self) -> bool:
        return self.clock() - self.started >= self.settings.ready_after_s

    def edge_inference_config(self, det: EdgeDetector) -> dict[str, Any]:
        return {
            "enabled": True,
            "always_return_edge_prediction": det.before_online == "not_ready",
            "disable_cloud_escalation": False,
            "min_time_between_escalations": 2.0,
        }

    def metrics(self) -> dict[str, Any]:
        """The status page's `/status/metrics.json`: device_info (this host), activity, pods."""
        now = self.clock()
        memory = psutil.virtual_memory()
        details = {
            det_id: {
                "pipeline_config": "inferswarm-emulated",
                "last_updated_time": None,
                "query": pod.detector.query,
                "mode": pod.detector.mode,
                "edge_inference_config": self.edge_inference_config(pod.detector),
            }
            for det_id, pod in self.pods.items()
            if pod.online(now)
        }
        activity = {
            det_id: {"hourly_total_iqs": pod.counters.edge + pod.counters.cloud + pod.counters.not_ready}
            for det_id, pod in self.pods.items()
            if pod.last_query_at is not None
        }
        pods = {
            f"inferencemodel-primary-{det_id.replace('_', '-').lower()}": (
                "Running" if pod.online(now) else "Pending"
            )
            for det_id, pod in self.pods.items()
            if pod.starts_at is not None
        }
        return {
            "device_info": {
                "device_id": "device-inferswarm-emulated",
                "device_metadata": {"emulated": True},
                "now": datetime.now().isoformat(),
                "cpucores": os.cpu_count(),
                "inference_flavor": "GPU",
                "cpu_utilization": psutil.cpu_percent(interval=None),
                "memory_utilization": memory.percent,
                "memory_available_bytes": memory.total,
            },
            "activity_metrics": {
                "activity_hour": datetime.now(UTC).strftime("%Y-%m-%d_%H"),
                "last_activity_time": self.last_activity,
                "num_detectors_lifetime": len(activity),
                "num_detectors_active_1h": len(activity),
                "num_detectors_active_24h": len(activity),
                "detector_activity_previous_hour": json.dumps(activity),
            },
            "detector_details": json.dumps(details),
            "k3s_stats": {
                "deployments": str(["edge/edge-endpoint"]),
                "pod_statuses": json.dumps(pods),
                "container_images": json.dumps({}),
            },
            "failed_escalations": {},
        }

    def snapshot(self) -> dict[str, Any]:
        """Counters per detector, for the target's `/stats`."""
        now = self.clock()
        return {
            det_id: {
                "online": pod.online(now),
                "edge": pod.counters.edge,
                "cloud": pod.counters.cloud,
                "not_ready": pod.counters.not_ready,
                "saturated": pod.counters.saturated,
                "low_confidence": pod.counters.low_confidence,
                "image_sizes": dict(pod.counters.image_sizes),
                "gpu": pod.gpu.snapshot(),
            }
            for det_id, pod in self.pods.items()
        }


def me_body() -> dict[str, Any]:
    return {
        "email": "loadtest@inferswarm.invalid",
        "username": "inferswarm",
        "group": {"id": 1, "name": "inferswarm"},
        "is_superuser": False,
    }


def register_edge(app: FastAPI, edge: EdgeState) -> None:
    """The edge endpoint's routes on `app` (and `app.state.edge`)."""
    settings = edge.settings
    token = None
    if settings.api_token_env:
        token = os.environ.get(settings.api_token_env)
        if not token:
            raise ValueError(f"edge.api_token_env: environment variable {settings.api_token_env} is not set")
    app.state.edge = edge

    @app.exception_handler(EdgeError)
    async def _edge_error(_: Request, exc: EdgeError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("x-api-token")
        if not given:
            raise EdgeError(401, "Authentication credentials were not provided.")
        if given != token:
            raise EdgeError(401, "Invalid token.")

    @app.post(f"{API}/image-queries")
    async def submit_image_query(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").lower().startswith("image/"):
            raise EdgeError(415, "Request body must be image bytes")
        try:
            image = await read_body(request, settings.max_image_bytes)
        except ApiError as exc:
            raise EdgeError(exc.status, exc.message) from None
        params = parse_params(request.query_params)
        authorize(request)
        edge.detector(params.detector_id)  # 404 before the image is looked at
        if not is_image(image):
            raise EdgeError(400, "Request body could not be decoded as an image")
        edge.pods[params.detector_id].counters.count_image(image)
        status, body = await edge.submit(params)
        return JSONResponse(body, status_code=status)

    @app.get(f"{API}/image-queries/{{iq_id}}")
    async def get_image_query(iq_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        return edge.poll(iq_id)

    @app.get(f"{API}/detectors/{{detector_id}}")
    async def get_detector(detector_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        return edge.detector_body(edge.detector(detector_id))

    @app.get(f"{API}/me")
    async def who_am_i(request: Request) -> dict[str, Any]:
        authorize(request)
        return me_body()

    @app.get(f"{API}/api-tokens/by-snippet/{{snippet}}")
    async def api_token_by_snippet(snippet: str, request: Request) -> dict[str, Any]:
        """The SDK's token-rotation check: a token that never expires (no rotation)."""
        authorize(request)
        if not SNIPPET.match(snippet):
            raise EdgeError(404, NOT_FOUND)
        return {
            "name": "inferswarm",
            "raw_key_snippet": snippet,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "last_used_at": now_iso(),
            "expires_at": None,
            "token_ttl": None,
        }

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        if not edge.ready():
            raise EdgeError(503, "not ready")
        return {"status": "ready"}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"message": "Hello!"}

    @app.get("/edge-detector-readiness")
    async def detector_readiness() -> dict[str, dict[str, bool]]:
        return edge.readiness()

    @app.get("/status/metrics.json")
    async def status_metrics() -> dict[str, Any]:
        return edge.metrics()
