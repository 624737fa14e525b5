"""The config of an orchestrator-matrix run (`kind: orchestrators`), seed 002's job tester in YAML.

Validated like a run config (strict, one line per problem). Every pipeline's parameters are checked
against the Livepeer pipeline table the `livepeer` capability kind uses, by building that capability, so a
parameter the gateway would refuse is refused here first. Secrets (the gateway's bearer token, the
leaderboard's HMAC key) come from environment variables named here, never from the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from inferswarm.config.errors import ConfigError, looks_like_other_kind, validation_error
from inferswarm.config.loading import read_yaml
from inferswarm.config.schema import resolve_assets, url_problem
from inferswarm.protocols.livepeer import PIPELINES, LivepeerCapability, Pipeline
from inferswarm.strict import MAX_TIMEOUT_S, StrictModel, first_duplicate

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEFAULT_FILES = {"image": "image-64x48.png", "audio": "tone-1s-16khz.wav"}
"""The asset each pipeline's file field gets when the config names none (under assets_dir)."""
MAX_JOBS_PER_CELL = 1000


def _url(value: str) -> str:
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value.rstrip("/")


class GatewayConfig(StrictModel):
    """The go-livepeer gateway the jobs go through (seed 002's broadcasterJobEndpoint/CliEndpoint)."""

    url: str = Field(max_length=2048)
    """Where jobs are sent: `POST <url>/<pipeline>`."""
    cli_url: str | None = Field(default=None, max_length=2048)
    """The gateway's CLI port, for discovery; default: `url`."""
    token_env: str | None = Field(default="LIVEPEER_GATEWAY_TOKEN", pattern=ENV_NAME)
    """Environment variable with the bearer token sent with each job; unset or empty: no header."""
    token_required: bool = False
    """Refuse to start when the token's variable is unset (a hosted gateway that checks it)."""
    discovery: Literal["auto", "network", "legacy"] = "auto"
    """`network`: GET /getNetworkCapabilities (current go-livepeer); `legacy`: the job-tester fork's
    /getOrchestratorAICapabilities with /registeredOrchestrators for service URIs; `auto`: network,
    falling back to legacy when the gateway does not have it."""
    discovery_timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S)
    request_timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIMEOUT_S)
    """Per job, from the send to the end of the body."""
    orchestrator_urls: dict[str, str] = Field(default_factory=dict, max_length=10_000)
    """Orchestrator address -> the job URL of a test gateway that only knows that orchestrator (a
    network without the webhook). Jobs for other orchestrators go through `url`."""

    @field_validator("url", "cli_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("orchestrator_urls")
    @classmethod
    def _each_url(cls, value: dict[str, str]) -> dict[str, str]:
        return {address.lower(): _url(url) for address, url in value.items()}

    @property
    def discovery_url(self) -> str:
        return self.cli_url or self.url


class WebhookConfig(StrictModel):
    """The embedded webhook server the gateway polls (`-orchWebhookUrl=http://<host>:<port>/orchestrators`)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Bind address; 0.0.0.0 when the gateway runs on another machine or in another container."""
    port: int = Field(default=7934, ge=0, le=65535)
    """0: any free port (tests)."""
    settle_s: float = Field(default=0.0, ge=0, le=MAX_TIMEOUT_S)
    """Wait this long after pinning an orchestrator before its first job."""
    wait_for_poll: bool = False
    """Also wait until the gateway has fetched the webhook since the pin (a gateway that refreshes its
    list on a timer; the job-tester fork with -webhookRefreshInterval=0 fetches on every job instead)."""
    poll_timeout_s: float = Field(default=70.0, gt=0, le=MAX_TIMEOUT_S)
    """With wait_for_poll: give up on an orchestrator when no fetch came within this long (the real
    gateway refreshes at most once a minute)."""


class LeaderboardConfig(StrictModel):
    """The leaderboard API the stats are posted to (seed 002's metricsApiEndpoint and metricsSecret)."""

    url: str | None = Field(default=None, max_length=2048)
    """The API base, e.g. https://leaderboard-serverless.vercel.app/api (`/post_stats`, `/regions`
    are appended); none: the stats are written to the run directory only."""
    secret_env: str = Field(default="LEADERBOARD_SECRET", pattern=ENV_NAME)
    """Environment variable with the HMAC-SHA256 key the leaderboard checks."""
    dry_run: bool = False
    """Write the stats, post nothing."""
    retries: int = Field(default=3, ge=0, le=20)
    """Further attempts after a 5xx or a connection error (4xx are never retried)."""
    backoff_s: float = Field(default=1.0, ge=0, le=600)
    """First wait between attempts, doubled each time."""
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @property
    def posts(self) -> bool:
        return self.url is not None and not self.dry_run


class NameFilter(StrictModel):
    include: list[str] = Field(default_factory=list, max_length=10_000)
    """Only these (empty: all)."""
    exclude: list[str] = Field(default_factory=list, max_length=10_000)

    def allows(self, *names: str) -> bool:
        """Whether any of `names` (e.g. an orchestrator's address and service URI) is wanted; exact,
        case-insensitive."""
        lowered = {n.lower() for n in names if n}
        if any(e.lower() in lowered for e in self.exclude):
            return False
        return not self.include or any(i.lower() in lowered for i in self.include)


class Filters(StrictModel):
    warm_only: bool = False
    """Test only models the orchestrator reports warm."""
    orchestrators: NameFilter = Field(default_factory=NameFilter)
    """By address or service URI."""
    pipelines: NameFilter = Field(default_factory=NameFilter)
    """By pipeline URI (`text-to-image`)."""
    models: NameFilter = Field(default_factory=NameFilter)


class PipelineJob(StrictModel):
    """One entry of seed 002's `pipelines` list: how to test a pipeline on any model."""

    name: str = Field(default="", max_length=200)
    """The display name (`Text to image`); legacy discovery reports pipelines by it."""
    uri: Pipeline
    capture_response: bool = False
    """Put the response body in the stat's `response_payload` (failures' bodies always go there)."""
    content_type: Literal["application/json", "multipart/form-data"] | None = None
    """Checked against the pipeline (the gateway decides, not the tester); optional."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] | None = None
    """The pipeline's file field -> asset under assets_dir; default: a bundled image or audio file."""

    def capability(self, model: str | None, headers: dict[str, str] | None = None) -> LivepeerCapability:
        """The `livepeer` capability that sends this pipeline's job for `model`."""
        spec = PIPELINES[self.uri]
        files = self.files
        if files is None:
            files = {spec.file_field: DEFAULT_FILES[spec.file_field]} if spec.file_field else {}
        return LivepeerCapability.model_validate(
            {
                "kind": "livepeer",
                "name": self.uri,
                "pipeline": self.uri,
                "model_id": model,
                "params": self.parameters,
                "files": files,
                "headers": headers or {},
            }
        )

    @model_validator(mode="after")
    def _valid_job(self) -> PipelineJob:
        spec = PIPELINES[self.uri]
        wanted = "multipart/form-data" if spec.multipart else "application/json"
        if self.content_type is not None and self.content_type != wanted:
            raise ValueError(f"content_type: {self.uri} takes {wanted}")
        try:
            self.capability(None)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            raise ValueError(message.replace("params.", "parameters.")) from None
        return self


class LoadStep(StrictModel):
    """A short Locust load test per orchestrator, through the gateway pinned to it: capacity, not only
    liveness. It sends every cell of the orchestrator that answered its test job, weighted equally."""

    users: int = Field(default=4, ge=1, le=10_000)
    duration_s: float = Field(default=30.0, ge=1, le=MAX_TIMEOUT_S)
    spawn_rate: float | None = Field(default=None, gt=0, le=10_000)
    """Users started per second; default: all at once."""


class OrchestratorsConfig(StrictModel):
    kind: Literal["orchestrators"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    region: str = Field(pattern=r"^[A-Z0-9]{2,16}$")
    """A leaderboard region id (`FRA`, `MDW`, ...); checked against GET /api/regions before posting."""
    gateway: GatewayConfig
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    leaderboard: LeaderboardConfig = Field(default_factory=LeaderboardConfig)
    filters: Filters = Field(default_factory=Filters)
    pipelines: list[PipelineJob] = Field(min_length=1, max_length=100)
    jobs_per_cell: int = Field(default=1, ge=1, le=MAX_JOBS_PER_CELL)
    """Jobs per (orchestrator, pipeline, model); the stat's success_rate is their share of successes."""
    load: LoadStep | None = None
    """After an orchestrator's test jobs, a load step through the gateway still pinned to it."""
    assets_dir: str = "../test-assets"
    """Relative to the config file."""
    output_dir: str = "results"
    """Base directory of the run directories, relative to where inferswarm runs."""

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("pipelines")
    @classmethod
    def _one_entry_per_pipeline(cls, value: list[PipelineJob]) -> list[PipelineJob]:
        dup = first_duplicate([p.uri for p in value])
        if dup is not None:
            raise ValueError(f"pipeline {dup!r} appears twice")
        return value

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def assets_path(self) -> Path:
        return resolve_assets(self._source, self.assets_dir)

    def pipeline(self, uri: str) -> PipelineJob | None:
        return next((p for p in self.pipelines if p.uri == uri), None)

    def display_names(self) -> dict[str, str]:
        """Configured display name (lower case) -> pipeline URI, for legacy discovery."""
        return {p.name.lower(): p.uri for p in self.pipelines if p.name}


def load_orchestrators_config(path: str | Path) -> OrchestratorsConfig:
    """Read and validate an orchestrators config; every problem is a one-line ConfigError."""
    file = Path(path)
    data = read_yaml(file)
    if not isinstance(data, dict):
        raise ConfigError(file, "", "top level must be a mapping of keys to values")
    if data.get("kind") != "orchestrators":
        from inferswarm.config import RunConfig

        hint = (
            "this looks like a run config (for `inferswarm run`); "
            if looks_like_other_kind(data, OrchestratorsConfig, RunConfig)
            else ""
        )
        raise ConfigError(file, "kind", f"{hint}an orchestrators config starts with `kind: orchestrators`")
    try:
        config = OrchestratorsConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, OrchestratorsConfig, data, file) from None
    config._source = file.resolve()
    for index, job in enumerate(config.pipelines):
        for field, asset in job.capability(None).resolve_paths(config.assets_path):
            if not asset.is_file():
                raise ConfigError(file, f"pipelines[{index}].{field}", f"asset file not found: {asset}")
    return config


def redact(text: str) -> str:
    """`user:password@` removed from URLs in `text` (for messages)."""
    return re.sub(r"://[^/@\s]+@", "://***@", text)
