"""The reference target's own config: simulated GPU capacity and service times per capability."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from inferswarm.config import ConfigError, read_yaml
from inferswarm.protocols.base import StrictModel


class ServiceTime(StrictModel):
    """How long one request occupies a GPU slot."""

    distribution: Literal["fixed", "exponential", "lognormal", "uniform"] = "lognormal"
    mean_ms: float = Field(default=200.0, gt=0)
    cv: float = Field(default=0.25, ge=0)
    """Coefficient of variation (stddev / mean), for lognormal."""
    spread_ms: float = Field(default=0.0, ge=0)
    """Half-width, for uniform: mean ± spread."""

    @model_validator(mode="after")
    def _uniform_positive(self) -> ServiceTime:
        if self.distribution == "uniform" and self.spread_ms > self.mean_ms:
            raise ValueError("spread_ms must not exceed mean_ms (service times cannot be negative)")
        return self

    def sample_s(self, rng: random.Random) -> float:
        mean = self.mean_ms / 1000.0
        if self.distribution == "fixed":
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
    gpu: bool = True
    """Whether the request holds a GPU slot (gpu-check only reads NVML, so by default it does not)."""


def _default_capabilities() -> dict[str, CapabilitySettings]:
    return {
        "text-to-image": CapabilitySettings(service_time=ServiceTime(mean_ms=400.0)),
        "prompt-enhance": CapabilitySettings(service_time=ServiceTime(mean_ms=120.0)),
        "image-to-text": CapabilitySettings(service_time=ServiceTime(mean_ms=150.0)),
        "gpu-check": CapabilitySettings(
            service_time=ServiceTime(distribution="fixed", mean_ms=5.0), gpu=False
        ),
    }


KNOWN_CAPABILITIES = tuple(_default_capabilities())


class TargetSettings(StrictModel):
    slots: int = Field(default=4, ge=1)
    """Requests the simulated GPU runs at once."""
    queue_depth: int = Field(default=8, ge=0)
    """Requests allowed to wait for a slot; beyond slots + queue_depth the target answers 503."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    seed: int | None = 0
    """Seed for service-time sampling; null for a different sequence each start."""
    auth_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """When set, POST routes require `Authorization: Bearer <value of this env var>` (else 401)."""
    capabilities: dict[str, CapabilitySettings] = Field(default_factory=_default_capabilities)

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
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        problem = (
            "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        )
        raise ConfigError(file, field, problem) from None
