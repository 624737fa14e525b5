"""The run config's `checks:` section: which checks run (in `inferswarm check`, before `inferswarm run`)
and their knobs. Every field has a default, so a config without the section is unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from inferswarm.strict import MAX_TIMEOUT_S, StrictModel

CheckName = Literal["network", "http", "requests", "error_handling", "large_payload", "gpu", "clock"]
CHECK_NAMES: tuple[CheckName, ...] = (
    "network",
    "http",
    "requests",
    "error_handling",
    "large_payload",
    "gpu",
    "clock",
)
"""The check families, in the order they run."""
PREFLIGHT_DEFAULT: tuple[CheckName, ...] = ("network", "http", "gpu", "clock")
"""What `inferswarm run` checks unless told otherwise: cheap, and sends the target no capability request
(a request would take a service time and show in the target's own counts)."""
MAX_LARGE_PAYLOAD_BYTES = 1024**3


def _known_once(names: list[CheckName]) -> list[CheckName]:
    if len(set(names)) != len(names):
        raise ValueError("a check is named twice")
    return names


class ChecksConfig(StrictModel):
    enabled: list[CheckName] = Field(default_factory=lambda: list(CHECK_NAMES))
    """The checks `inferswarm check` runs (default: all)."""
    preflight: list[CheckName] = Field(default_factory=lambda: list(PREFLIGHT_DEFAULT))
    """The checks `inferswarm run` runs before any load (default: network, http, gpu, clock); a FAIL
    stops the run. `[]` turns the preflight off, as `--no-preflight` does."""
    timeout_s: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_S)
    """Bound on each check's network exchange (each TCP sample, each HTTP request, each agent)."""
    request_timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    """Bound on the one correct request per capability; default: the capability's own request timeout
    (a slow model is not a failed check)."""
    tcp_samples: int = Field(default=5, ge=1, le=100)
    health_path: str = Field(default="/health", pattern=r"^/[^\s\x00-\x1f\x7f]*$", max_length=2048)
    require_gpu: bool = False
    """No GPU found is a FAIL instead of a WARN."""
    malformed: bool = True
    """The error-handling check: a malformed request per capability must get a 4xx."""
    large_payload_bytes: int | None = Field(default=None, ge=1, le=MAX_LARGE_PAYLOAD_BYTES)
    """The large-payload check's request body size (the most you mean the target to take); none: SKIP."""
    clock_warn_ms: float = Field(default=50.0, gt=0, le=3_600_000)
    clock_fail_ms: float = Field(default=1000.0, gt=0, le=3_600_000)

    _enabled_once = field_validator("enabled", "preflight")(_known_once)
