"""The reference target's own config: simulated GPU capacity and service times per capability."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from inferswarm.config import ConfigError, RunConfig, read_yaml, validation_error
from inferswarm.config.errors import looks_like_other_kind
from inferswarm.strict import MAX_RUN_S, MAX_TIMEOUT_S, StrictModel

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


class TargetSettings(StrictModel):
    slots: int = Field(default=4, ge=1, le=100_000)
    """Requests the simulated GPU runs at once."""
    queue_depth: int = Field(default=8, ge=0, le=1_000_000)
    """Requests allowed to wait for a slot; beyond slots + queue_depth the target answers 503."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024**3)
    seed: int | None = Field(default=0, ge=-(2**63), le=2**63 - 1)
    """Seed for service-time sampling; null for a different sequence each start."""
    auth_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """When set, POST routes require `Authorization: Bearer <value of this env var>` (else 401)."""
    capabilities: dict[str, CapabilitySettings] = Field(default_factory=_default_capabilities)
    byoc: ByocSettings = Field(default_factory=ByocSettings)
    async_job_ttl_s: float = Field(default=600.0, gt=0, le=MAX_RUN_S)
    """How long a finished async job's result stays fetchable."""

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
