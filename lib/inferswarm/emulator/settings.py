"""The reference target's own config: simulated GPU capacity and service times per capability."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from inferswarm.config import ConfigError, RunConfig, read_yaml, validation_error
from inferswarm.config.errors import looks_like_other_kind
from inferswarm.protocols.livepeer import PIPELINES
from inferswarm.protocols.tensor_ops import known_operation
from inferswarm.strict import MAX_RUN_S, MAX_TIMEOUT_S, StrictModel, first_duplicate

MAX_MS = MAX_TIMEOUT_S * 1000.0


class ServiceTime(StrictModel):
    """How long one request occupies a GPU slot."""

    distribution: Literal["fixed", "exponential", "lognormal", "uniform"] = "lognormal"
    mean_ms: float = Field(default=200.0, ge=0, le=MAX_MS)
    cv: float = Field(default=0.25, ge=0, le=100)
    """Coefficient of variation (stddev / mean), for lognormal."""
    spread_ms: float = Field(default=0.0, ge=0, le=MAX_MS)
    """Half-width, for uniform: mean ± spread."""

    @model_validator(mode="after")
    def _uniform_positive(self) -> ServiceTime:
        if self.distribution == "uniform" and self.spread_ms > self.mean_ms:
            raise ValueError("spread_ms must not exceed mean_ms (service times cannot be negative)")
        return self

    def sample_s(self, rng: random.Random) -> float:
        mean = self.mean_ms / 1000.0
        if self.distribution == "fixed" or mean <= 0:
            return mean
        if self.distribution == "exponential":
            return rng.expovariate(1.0 / mean)
        if self.distribution == "uniform":
            return rng.uniform(mean - self.spread_ms / 1000.0, mean + self.spread_ms / 1000.0)
        # lognormal parameterised by its mean and coefficient of variation
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(mean) - sigma2 / 2
        return rng.lognormvariate(mu, math.sqrt(sigma2))


class CapabilitySettings(StrictModel):
    service_time: ServiceTime = Field(default_factory=ServiceTime)
    """Time a request holds its slot. LLM routes ignore it: their time is ttft_ms + token_delay_ms."""
    gpu: bool = True
    """Whether the request holds a GPU slot (gpu-check only reads NVML, so by default it does not)."""
    error_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of requests answered 500 "Internal Server Error" (after their service time)."""
    # LLM streams
    ttft_ms: float = Field(default=80.0, ge=0, le=MAX_MS)
    """Time to the first token, from the moment a slot is free."""
    token_delay_ms: float = Field(default=10.0, ge=0, le=MAX_MS)
    """Time between consecutive tokens."""
    output_tokens: int = Field(default=24, ge=1, le=100_000)
    """Tokens per answer (fewer when the request's max_tokens is lower)."""
    sse_done: bool = False
    """`/llm` only: end streams with `data: [DONE]` like the ai-runner (the gateway sends none).
    OpenAI-compatible routes always send it."""
    stream_error_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of streams that send `data: {"error": ...}` halfway (inside the 200)."""
    truncate_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of streams cut off halfway, without a finish_reason."""


def _default_capabilities() -> dict[str, CapabilitySettings]:
    return {
        "text-to-image": CapabilitySettings(service_time=ServiceTime(mean_ms=400.0)),
        "prompt-enhance": CapabilitySettings(service_time=ServiceTime(mean_ms=120.0)),
        "image-to-text": CapabilitySettings(service_time=ServiceTime(mean_ms=150.0)),
        "gpu-check": CapabilitySettings(
            service_time=ServiceTime(distribution="fixed", mean_ms=5.0), gpu=False
        ),
        "image-to-image": CapabilitySettings(service_time=ServiceTime(mean_ms=300.0)),
        "image-to-video": CapabilitySettings(service_time=ServiceTime(mean_ms=1500.0)),
        "upscale": CapabilitySettings(service_time=ServiceTime(mean_ms=500.0)),
        "audio-to-text": CapabilitySettings(service_time=ServiceTime(mean_ms=250.0)),
        "segment-anything-2": CapabilitySettings(service_time=ServiceTime(mean_ms=200.0)),
        "text-to-speech": CapabilitySettings(service_time=ServiceTime(mean_ms=300.0)),
        "llm": CapabilitySettings(),
        "openai": CapabilitySettings(),
    }


KNOWN_CAPABILITIES = tuple(_default_capabilities())


def _default_byoc() -> dict[str, list[str]]:
    return {
        "text-to-image": ["text-to-image"],
        "prompt-enhance": ["prompt-enhance"],
        "agent-net": ["gpu-check", "agent-net"],
    }


BYOC_ROUTES = ("text-to-image", "prompt-enhance", "gpu-check", "agent-net")


class ByocSettings(StrictModel):
    """The emulated BYOC network: registered capability -> the worker routes its container serves."""

    capabilities: dict[str, list[str]] = Field(default_factory=_default_byoc, max_length=1000)
    empty_200_on_failure: bool = True
    """Answer an empty 200 when no orchestrator can take the job, as the gateway does (else 503 text)."""

    @field_validator("capabilities")
    @classmethod
    def _known_routes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, routes in value.items():
            bad = sorted(set(routes) - set(BYOC_ROUTES))
            if bad:
                raise ValueError(f"{name}: unknown worker route {bad[0]!r}; valid: {', '.join(BYOC_ROUTES)}")
        return value


DETECTOR_ID = r"^det_[A-Za-z0-9_-]{1,100}$"
ClassName = Annotated[str, Field(min_length=1, max_length=100)]


class EdgeDetector(StrictModel):
    """One detector the emulated Groundlight edge endpoint serves, with its inference pod."""

    id: str = Field(pattern=DETECTOR_ID)
    name: str = Field(default="", max_length=200)
    """Defaults to the id."""
    query: str = Field(default="Is the thing there?", max_length=1000)
    mode: Literal["BINARY", "COUNT", "MULTI_CLASS"] = "BINARY"
    max_count: int = Field(default=10, ge=1, le=50)
    """COUNT: counts above it come back as max_count with greater_than_max true."""
    class_name: str = Field(default="object", min_length=1, max_length=100)
    """COUNT: what is counted."""
    class_names: list[ClassName] = Field(
        default_factory=lambda: ["red", "green", "blue"], min_length=2, max_length=50
    )
    """MULTI_CLASS: the labels an answer is drawn from."""
    confidence_threshold: float = Field(default=0.9, ge=0, le=1)
    patience_time: float = Field(default=30.0, ge=0, le=3600)
    online_after_s: float = Field(default=0.0, ge=0, le=MAX_TIMEOUT_S)
    """Seconds until the detector's inference pod is up, from the target's start (or first query)."""
    pod_starts: Literal["startup", "first_query"] = "startup"
    """When the pod starts coming up: with the endpoint (a detector in the edge config) or on its first
    query (an unconfigured detector: the first query creates the deployment record)."""
    before_online: Literal["not_ready", "escalate"] = "escalate"
    """The detector's edge config. `not_ready`: edge answers only (always_return_edge_prediction): 503
    until the pod is up, then every answer from the edge, low-confidence ones escalated in the background
    (done_processing false). `escalate` (edge answers with escalation): a cloud answer (201) until the pod
    is up, then confident answers from the edge and the rest from the cloud."""
    service_time: ServiceTime = Field(default_factory=lambda: ServiceTime(mean_ms=30.0, cv=0.2))
    """Time one inference holds a slot of the pod's simulated GPU."""
    slots: int = Field(default=1, ge=1, le=10_000)
    """Inferences the pod runs at once."""
    queue_depth: int = Field(default=8, ge=0, le=1_000_000)
    """Inferences allowed to wait for a slot. Beyond slots + queue_depth a query escalates to the cloud
    (`escalate`) or is refused 503 (`not_ready`): under load the edge share falls."""
    escalation_share: float = Field(default=0.1, ge=0, le=1)
    """Share of edge answers drawn below the detector's confidence threshold."""

    @model_validator(mode="after")
    def _distinct_classes(self) -> EdgeDetector:
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names must be distinct")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


class EdgeSettings(StrictModel):
    """The reference target as a Groundlight edge endpoint (emulator.edge), mounted when present."""

    detectors: list[EdgeDetector] = Field(min_length=1, max_length=1000)
    ready_after_s: float = Field(default=0.0, ge=0, le=MAX_TIMEOUT_S)
    """`/health/ready` answers 503 "not ready" until this many seconds after the start."""
    cloud_latency: ServiceTime = Field(default_factory=lambda: ServiceTime(mean_ms=300.0, cv=0.3))
    """Time the cloud takes to answer an escalated query (the request waits for it)."""
    cloud_confident_after_s: float = Field(default=2.0, ge=0, le=MAX_TIMEOUT_S)
    """An escalated query's cloud answer becomes confident (polls see it) this long after submit."""
    api_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """When set, every Groundlight route requires `x-api-token` equal to this variable's value (else 401)."""
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024**3)
    """nginx's body limit on the real endpoint (413 beyond)."""
    max_stored_queries: int = Field(default=100_000, ge=1, le=10_000_000)
    """Image queries remembered for polling; the oldest are forgotten first."""

    @field_validator("detectors")
    @classmethod
    def _unique_ids(cls, value: list[EdgeDetector]) -> list[EdgeDetector]:
        dup = first_duplicate([d.id for d in value])
        if dup is not None:
            raise ValueError(f"detector id {dup!r} appears twice")
        return value


ModelId = Annotated[str, Field(min_length=1, max_length=300)]


class ModelOffer(StrictModel):
    """One model an emulated orchestrator advertises for a pipeline."""

    warm: bool = True
    """Loaded at start. A cold model's first job waits the orchestrator's cold_start_ms, then it is warm."""
    capacity: int = Field(default=1, ge=1, le=10_000)
    """Jobs it runs at once; one more is refused 503 "Service Unavailable Error" (insufficient capacity)."""


class GpuInfo(StrictModel):
    name: str = Field(default="NVIDIA GeForce RTX 4090", min_length=1, max_length=200)
    memory_total: int = Field(default=25_393_692_672, ge=0, le=2**50)
    """Bytes."""


Failure = Literal["none", "down", "slow", "always_503", "wrong_model"]


class EmulatedOrchestrator(StrictModel):
    """An orchestrator on the emulated network: never connected to, only advertised and routed to."""

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    """Its Ethereum address (answered in lower case, as go-livepeer's hex encoding writes it)."""
    service_uri: str = Field(pattern=r"^https://[A-Za-z0-9.\[\]:-]+:[0-9]{1,5}/?$", max_length=300)
    """`https://host:port`, what the webhook names and discovery answers as orch_uri."""
    pipelines: dict[str, dict[ModelId, ModelOffer]] = Field(min_length=1, max_length=100)
    """Pipeline URI (a key of protocols.livepeer.PIPELINES) -> model id -> its offer."""
    failure: Failure = "none"
    """none; down (unreachable: jobs pinned to it find no orchestrator); slow (slow_ms per job);
    always_503 (every job refused "Service Unavailable Error"); wrong_model (its runner has another model
    loaded: the runner's 400, which the gateway relays)."""
    slow_ms: float = Field(default=0.0, ge=0, le=MAX_MS)
    """Extra latency per job, whatever the failure mode (the point of `slow`)."""
    cold_start_ms: float = Field(default=0.0, ge=0, le=MAX_MS)
    """The wait of the first job on a cold model (the model is warm from then on)."""
    active: bool = True
    """`Active` in /registeredOrchestrators (the tester skips inactive ones)."""
    gpu: GpuInfo | None = None
    """Hardware info in /getNetworkCapabilities; absent: no hardware entries."""

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("pipelines")
    @classmethod
    def _models(cls, value: dict[str, dict[str, ModelOffer]]) -> dict[str, dict[str, ModelOffer]]:
        for pipeline, models in value.items():
            if pipeline not in PIPELINES:
                raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}")
            if not models:
                raise ValueError(f"{pipeline}: at least one model is required")
        return value

    @property
    def base_uri(self) -> str:
        return self.service_uri.rstrip("/").lower()


class GatewaySettings(StrictModel):
    """The reference target as a go-livepeer gateway in front of emulated orchestrators (emulator.gateway):
    discovery endpoints, and every batch pipeline routed to an orchestrator first."""

    orchestrators: list[EmulatedOrchestrator] = Field(min_length=1, max_length=1000)
    discovery: Literal["both", "network", "legacy"] = "both"
    """Which discovery endpoints exist: /getNetworkCapabilities (network, upstream) and/or
    /getOrchestratorAICapabilities (legacy, the tester gateway's fork); the other one 404s."""
    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2000)
    """The tester's `GET` list of orchestrators (go-livepeer's -orchWebhookUrl); `serve --orch-webhook-url`
    sets it. Absent: every orchestrator is a candidate."""
    webhook_refresh_s: float = Field(default=0.0, ge=0, le=MAX_RUN_S)
    """0: ask the webhook before every job (the tester fork's -webhookRefreshInterval=0); more: reuse the
    list that long."""
    discovery_timeout_ms: float = Field(default=200.0, ge=0, le=MAX_MS)
    """How long the gateway looks before answering that no orchestrator is available (go-livepeer's
    -discoveryTimeout is 750ms; short here so tests are quick)."""
    registered: bool = True
    """Serve /registeredOrchestrators (an on-chain node has it; an off-chain one does not)."""

    @field_validator("orchestrators")
    @classmethod
    def _unique(cls, value: list[EmulatedOrchestrator]) -> list[EmulatedOrchestrator]:
        for what, keys in (
            ("address", [o.address for o in value]),
            ("service_uri", [o.base_uri for o in value]),
        ):
            dup = first_duplicate(keys)
            if dup is not None:
                raise ValueError(f"orchestrator {what} {dup!r} appears twice")
        return value


class Region(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=100)
    type: Literal["transcoding", "ai"] = "ai"


def _default_regions() -> list[Region]:
    """A handful of the leaderboard's regions (its docs/sample-json/regions.json), ids as it spells them."""
    transcoding = [("GLOBAL", "Global"), ("FRA", "Frankfurt"), ("LAX", "Los Angeles"), ("MDW", "Chicago")]
    transcoding += [("NYC", "New York City"), ("LON", "London"), ("SIN", "Singapore")]
    ai = [("GLOBAL", "Global"), ("FRA", "Frankfurt"), ("LAX", "Los Angeles")]
    return [Region(id=i, name=n, type="transcoding") for i, n in transcoding] + [
        Region(id=i, name=n, type="ai") for i, n in ai
    ]


class LeaderboardSettings(StrictModel):
    """The Livepeer leaderboard's stats API (emulator.leaderboard): /api/regions, HMAC-signed
    /api/post_stats, /api/raw_stats."""

    secret_env: str = Field(default="LEADERBOARD_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The variable holding the HMAC key. Unset or empty: the empty key, for local use only (anyone can
    sign with it); the target logs a warning then."""
    regions: list[Region] = Field(default_factory=_default_regions, min_length=1, max_length=1000)
    fail_first: int = Field(default=0, ge=0, le=1_000_000)
    """Answer the first N valid posts 500 text/plain (a database error), to exercise retries."""
    max_stats: int = Field(default=100_000, ge=1, le=10_000_000)
    """Stats kept for /api/raw_stats; the oldest are forgotten first."""


# -- tensor: an Open Inference Protocol (KServe v2) server and seed 003's /execute (emulator.tensor) --------
class TensorModel(StrictModel):
    """One model of the tensor server: a numpy operation on its one input (tensor_ops)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    operation: str = "identity"
    datatype: str | None = None
    """The one numeric datatype the model takes; None: any numeric datatype."""
    max_elements: int = Field(default=16 * 1024 * 1024, ge=1, le=2**31)
    """More input elements are refused with 400 (the body is bounded by max_body_bytes too)."""

    _known_operation = field_validator("operation")(known_operation)

    @field_validator("datatype")
    @classmethod
    def _numeric(cls, value: str | None) -> str | None:
        from inferswarm.protocols.tensor_codec import NUMERIC

        if value is not None and value not in NUMERIC:
            raise ValueError(f"unknown datatype {value!r}; valid: {', '.join(NUMERIC)}")
        return value


class TensorSettings(StrictModel):
    """The simulated GPU time of one inference is gpu_ms_fixed + gpu_ms_per_mb per MiB of input, held in
    a slot of the target's simulated GPU (so load queues, then gets 503); the real numpy time is added."""

    models: list[TensorModel] = Field(
        default_factory=lambda: [TensorModel(name="double", operation="double")], min_length=1, max_length=100
    )
    gpu_ms_fixed: float = Field(default=2.0, ge=0, le=MAX_MS)
    gpu_ms_per_mb: float = Field(default=1.0, ge=0, le=MAX_MS)
    server_timing: bool = True
    """Send `Server-Timing: compute;dur=<ms>` on v2 answers (/execute always sends X-Genie-Server-Timing)."""

    @field_validator("models")
    @classmethod
    def _unique(cls, value: list[TensorModel]) -> list[TensorModel]:
        names = [m.name for m in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model {twice[0]!r} is listed twice")
        return value


# -- end tensor --------------------------------------------------------------------------------------------


class TargetSettings(StrictModel):
    slots: int = Field(default=4, ge=1, le=100_000)
    """Requests the simulated GPU runs at once."""
    queue_depth: int = Field(default=8, ge=0, le=1_000_000)
    """Requests allowed to wait for a slot; beyond slots + queue_depth the target answers 503."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024**3)
    malformed_status: int | None = Field(default=None, ge=400, le=599)
    """Answer a request body that is not valid JSON with this status instead of 400 (e.g. 500: a server
    that fails on bad input, for `inferswarm check`'s error-handling check to catch)."""
    seed: int | None = Field(default=0, ge=-(2**63), le=2**63 - 1)
    """Seed for service-time sampling; null for a different sequence each start."""
    auth_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """When set, POST routes require `Authorization: Bearer <value of this env var>` (else 401)."""
    capabilities: dict[str, CapabilitySettings] = Field(default_factory=_default_capabilities)
    byoc: ByocSettings = Field(default_factory=ByocSettings)
    async_job_ttl_s: float = Field(default=600.0, gt=0, le=MAX_RUN_S)
    """How long a finished async job's result stays fetchable."""
    edge: EdgeSettings | None = None
    """A Groundlight edge endpoint (detectors, inference pods, the cloud behind it); absent: not served."""
    gateway: GatewaySettings | None = None
    """A go-livepeer gateway in front of emulated orchestrators (discovery, webhook, routing); absent: the
    pipelines answer directly, as before."""
    leaderboard: LeaderboardSettings | None = None
    """The Livepeer leaderboard's stats API; absent: not served."""
    tensor: TensorSettings | None = None
    """An Open Inference Protocol tensor server and seed 003's /execute (emulator.tensor); absent: none."""

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: dict[str, CapabilitySettings]) -> dict[str, CapabilitySettings]:
        unknown = sorted(set(value) - set(KNOWN_CAPABILITIES))
        if unknown:
            raise ValueError(f"unknown capability {unknown[0]!r}; valid: {', '.join(KNOWN_CAPABILITIES)}")
        return value

    def for_capability(self, name: str) -> CapabilitySettings:
        return self.capabilities.get(name) or _default_capabilities()[name]


def load_target_settings(path: str | Path | None) -> TargetSettings:
    if path is None:
        return TargetSettings()
    file = Path(path)
    data = read_yaml(file)
    if data is None:
        return TargetSettings()
    if not isinstance(data, dict):
        raise ConfigError(file, "", "top level must be a mapping of keys to values")
    try:
        return TargetSettings.model_validate(data)
    except ValidationError as exc:
        if looks_like_other_kind(data, TargetSettings, RunConfig):
            raise ConfigError(
                file,
                "",
                "this looks like a run config (for `inferswarm run` or `inferswarm validate`), "
                "not reference-target settings",
            ) from None
        raise validation_error(exc, TargetSettings, data, file) from None
