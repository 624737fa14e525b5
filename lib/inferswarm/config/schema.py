"""The run config's models: target, capabilities, load, telemetry, SLOs, report and output.

Capability kinds and load kinds are not listed here: `run_config_model()` builds the validating model
from their registries (`inferswarm.protocols`, `inferswarm.load`), so a kind registered later (a plugin,
a test) is accepted without editing this file. `RunConfig` is the type everything else sees; its
`capabilities` and `load` are the kinds' base classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, create_model, field_validator, model_validator

from inferswarm.checks.config import ChecksConfig
from inferswarm.derived import is_derived
from inferswarm.load import LoadContext, LoadKind, load_kinds
from inferswarm.protocols import CapabilityBase, protocols
from inferswarm.secrets import refuse_literal_credentials
from inferswarm.slo import check_tolerance
from inferswarm.strict import MAX_RUN_S, MAX_TIMEOUT_S, StrictModel

_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def url_problem(url: str) -> str | None:
    """Why `url` is not a usable http(s)://host[:port][/path] URL, or None. Never echoes credentials."""
    if _CONTROL.search(url) or " " in url:
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        return "must start with http:// or https://"
    if "@" in parts.netloc:
        return (
            "credentials in a URL are refused (they would be written to run.json and logs); "
            "use target.secret_headers with an environment variable"
        )
    try:
        port = parts.port
    except ValueError:
        return "the port must be a number from 1 to 65535"
    if not parts.hostname:
        return "has no host"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be a number from 1 to 65535"
    return None


def resolve_assets(source: Path | None, assets_dir: str) -> Path:
    """A config's assets folder: `assets_dir` relative to the config file (the working directory for a
    config that did not come from a file)."""
    base = source.parent if source else Path.cwd()
    return (base / assets_dir).resolve()


def redact_url(url: str) -> str:
    """`url` with any `user:password@` replaced, for messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if sep and "@" in netloc:
        return f"{scheme}://***@{netloc.rsplit('@', 1)[1]}{slash}{path}"
    return url


def _http_url(url: str) -> str:
    problem = url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


def _header_text(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not re.match(_HEADER_NAME, name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if _CONTROL.search(value.replace("\t", "")):
            raise ValueError(f"header {name!r}: value must not contain control characters (line breaks)")
    return headers


class SecretHeader(StrictModel):
    """A request header whose value is read from an environment variable when the run starts."""

    header: str = Field(pattern=_HEADER_NAME, max_length=256)
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)
    prefix: str = Field(default="", pattern=r"^[^\x00-\x1f\x7f]*$", max_length=256)
    """Prepended to the value, e.g. "Bearer "."""
    optional: bool = False
    """Send the header only when the variable is set (e.g. a gateway that may or may not check tokens)."""


class TargetConfig(StrictModel):
    base_url: str = Field(max_length=2048)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_S)
    request_timeout_s: float = Field(default=60.0, gt=0, le=MAX_TIMEOUT_S)
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
    """A response body larger than this fails (`bad_body: too large`) instead of filling the
    generator's memory; the default holds a generated image."""
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[SecretHeader] = Field(default_factory=list, max_length=64)

    _no_literal_secrets = field_validator("headers")(refuse_literal_credentials)
    _valid_headers = field_validator("headers")(_header_text)
    _valid_url = field_validator("base_url")(_http_url)


class AgentSource(StrictModel):
    """An `inferswarm agent` on the target machine, polled by the master."""

    url: str = Field(max_length=2048)
    name: str | None = Field(default=None, max_length=128)
    """Node name in the telemetry; default `agent@host:port`."""

    _valid_url = field_validator("url")(_http_url)


class PrometheusSource(StrictModel):
    """A Prometheus text endpoint the fleet already runs (dcgm-exporter, node_exporter)."""

    url: str = Field(max_length=2048)
    name: str | None = Field(default=None, max_length=128)
    """Node name in the telemetry; default `host:port` of the URL."""
    format: Literal["auto", "dcgm", "node", "inferswarm"] = "auto"

    _valid_url = field_validator("url")(_http_url)


def _status_url(url: str) -> str:
    if url.startswith("/"):
        if _CONTROL.search(url) or " " in url:
            raise ValueError("must not contain spaces or control characters")
        return url
    return _http_url(url)


class EdgeStatusSource(StrictModel):
    """A Groundlight edge endpoint's status page (`/status/metrics.json`: the edge box's CPU and memory)."""

    url: str = Field(default="/status/metrics.json", max_length=2048)
    """An http(s) URL (a bare `http://host:port` gets `/status/metrics.json`), or a path resolved
    against the run's target (`--host`, `--serve-target`, `target.base_url`)."""
    name: str | None = Field(default=None, max_length=128)
    """Node name in the telemetry; default `edge@host:port`."""

    _valid_url = field_validator("url")(_status_url)


INTERVAL_MIN_S, INTERVAL_MAX_S = 0.1, 10.0  # 10 to 0.1 samples per second


class TelemetryConfig(StrictModel):
    enabled: bool = True
    interval_s: float = Field(default=1.0, ge=INTERVAL_MIN_S, le=INTERVAL_MAX_S)
    """Seconds between samples on every node and between polls of remote sources (0.1 to 10)."""
    gpu: bool = True
    """Sample local GPUs through NVML (nothing happens on a machine without one)."""
    per_core: bool = True
    agents: list[AgentSource] = Field(default_factory=list, max_length=256)
    prometheus: list[PrometheusSource] = Field(default_factory=list, max_length=256)
    edge_status: list[EdgeStatusSource] = Field(default_factory=list, max_length=256)
    gpu_check: str | None = None
    """Name of a capability answering with gpu-check JSON, polled at the interval."""
    saturation_cpu_pct: float = Field(default=90.0, gt=0, le=100)
    """A load generator above this CPU share of one core is flagged as saturated."""


class SaturationRule(StrictModel):
    """When a step counts as past the saturation point."""

    min_gain: float = Field(default=0.5, ge=0, le=1)
    """Added users must add at least this share of the throughput they would add if nothing saturated."""
    latency_rise: float = Field(default=0.2, ge=0, le=1000)
    """...while p95 rises by more than this share over the previous step; or:"""
    max_failure_ratio: float = Field(default=0.05, ge=0, le=1)
    """Failures above this share of requests mark a step as saturated on their own."""


class ReportConfig(StrictModel):
    warmup_s: float = Field(default=1.0, ge=0, le=MAX_RUN_S)
    """Dropped at the start of each step before its numbers are taken (at most half the step)."""
    saturation: SaturationRule = Field(default_factory=SaturationRule)
    tolerances: dict[str, float] = Field(default_factory=dict)
    """`inferswarm compare`: allowed change per metric before it counts as a regression."""

    @field_validator("tolerances")
    @classmethod
    def _known_metrics(cls, tolerances: dict[str, float]) -> dict[str, float]:
        for metric, value in tolerances.items():
            check_tolerance(metric, value)
        return tolerances


class OutputConfig(StrictModel):
    dir: str = "results"
    request_log: bool = True
    """Write every request's exact timings (`PREFIX_requests.parquet`): exact percentiles in the report,
    latency from the intended start, goodput. Off: the report falls back to Locust's rounded histograms."""


class GoodputConfig(StrictModel):
    """Per-request SLOs: goodput counts the requests that succeeded and met every one given.

    `latency_ms` is judged on the latency from the intended start (how late the request was sent plus
    its response time): what a user on that schedule waits; for closed-loop load it is the response time.
    `ttft_ms` and `itl_ms` apply to streamed requests only (a request without that number is judged on
    the others)."""

    latency_ms: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S * 1000)
    ttft_ms: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S * 1000)
    itl_ms: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S * 1000)

    @model_validator(mode="after")
    def _at_least_one(self) -> GoodputConfig:
        if self.latency_ms is None and self.ttft_ms is None and self.itl_ms is None:
            raise ValueError("give at least one of latency_ms, ttft_ms, itl_ms")
        return self


MAX_CAPABILITIES = 1000


class RunConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    target: TargetConfig
    assets_dir: str = "../test-assets"
    capabilities: list[CapabilityBase] = Field(min_length=1, max_length=MAX_CAPABILITIES)
    load: LoadKind
    output: OutputConfig = Field(default_factory=OutputConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    slo: list[str] = Field(default_factory=list, max_length=1000)
    """Gates such as `p95_ms < 2000` or `text-to-image: failure_ratio < 0.01`; see inferswarm.slo."""
    goodput: GoodputConfig | None = None
    """Per-request SLOs for goodput (`goodput_rps`, `goodput_ratio`); needs the request log."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    """Preflight checks: `inferswarm check`, and before `inferswarm run`; see docs/checks.md."""

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("capabilities")
    @classmethod
    def _unique_names(cls, capabilities: list[Any]) -> list[Any]:
        # A capability may stand for several (a tensor capability's `sizes`: one per size).
        capabilities = [each for cap in capabilities for each in cap.expand()]
        seen: set[str] = set()
        for cap in capabilities:
            if cap.name in seen:
                raise ValueError(f"capability name {cap.name!r} is used twice")
            if is_derived(cap.name):
                raise ValueError(f"capability name {cap.name!r} ends like a derived statistic's name")
            seen.add(cap.name)
        return capabilities

    @property
    def source(self) -> Path | None:
        """The YAML file this config was loaded from, if any."""
        return self._source

    @property
    def assets_path(self) -> Path:
        return resolve_assets(self._source, self.assets_dir)

    def load_context(self) -> LoadContext:
        """What the load kind may know about the rest of the config."""
        timeouts = [c.request_timeout_s or self.target.request_timeout_s for c in self.capabilities]
        return LoadContext(
            capabilities=tuple(c.name for c in self.capabilities),
            longest_timeout_s=max(timeouts, default=self.target.request_timeout_s),
            weights=tuple(c.weight for c in self.capabilities),
            gates=tuple(self.slo),
        )


_built: dict[tuple[tuple[str, ...], tuple[str, ...]], type[RunConfig]] = {}


def run_config_model() -> type[RunConfig]:
    """`RunConfig` with `capabilities` and `load` as discriminated unions of the registered kinds."""
    capability_models = {kind: p.model for kind, p in sorted(protocols().items())}
    load_models = dict(sorted(load_kinds().items()))
    key = (tuple(capability_models), tuple(load_models))
    if key not in _built:
        capability = Annotated[Union[tuple(capability_models.values())], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
        load = Annotated[Union[tuple(load_models.values())], Field(discriminator="shape")]  # type: ignore[valid-type]  # noqa: UP007
        _built[key] = create_model(
            "RunConfig",
            __base__=RunConfig,
            __module__=__name__,
            capabilities=(list[capability], Field(min_length=1, max_length=MAX_CAPABILITIES)),  # type: ignore[valid-type]
            load=(load, ...),  # type: ignore[arg-type]
        )
    return _built[key]


def valid_tags() -> dict[str, list[str]]:
    """Valid values of the config's discriminators, for error messages."""
    return {"kind": sorted(protocols()), "shape": sorted(load_kinds())}
