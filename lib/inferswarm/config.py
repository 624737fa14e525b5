"""The run config: one YAML file describes the target, the capabilities, the load profile and the output.

Validation is strict (unknown keys, wrong types, impossible values, missing assets are errors) and every
error becomes a `ConfigError` naming the file, the field path and the problem in one line.
Relative asset paths are resolved against the config file's directory; the output directory against the
working directory (inputs belong to the config, outputs to where you run).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from inferswarm.derived import is_derived
from inferswarm.protocols import KINDS, Capability
from inferswarm.protocols.base import StrictModel
from inferswarm.secrets import refuse_literal_credentials
from inferswarm.slo import check_tolerance, parse_gate


class ConfigError(Exception):
    """A config problem, reported as `file: field.path: problem`."""

    def __init__(self, file: str | Path | None, field: str, problem: str) -> None:
        self.file = str(file) if file is not None else "<config>"
        self.field = field
        self.problem = problem
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.file}: {self.field}: " if self.field else f"{self.file}: "
        return where + self.problem


class SecretHeader(StrictModel):
    """A request header whose value is read from an environment variable when the run starts."""

    header: str = Field(min_length=1)
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    prefix: str = ""
    """Prepended to the value, e.g. "Bearer "."""
    optional: bool = False
    """Send the header only when the variable is set (e.g. a gateway that may or may not check tokens)."""


class TargetConfig(StrictModel):
    base_url: str = Field(pattern=r"^https?://[^/\s]+")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[SecretHeader] = Field(default_factory=list)

    _no_literal_secrets = field_validator("headers")(refuse_literal_credentials)


class _PacedLoad(StrictModel):
    per_user_rps: float | None = Field(default=None, gt=0)
    """Per-user request rate (Locust's constant_throughput); unset means each user sends back to back."""


class RampLoad(_PacedLoad):
    """Seed 001's ramp: start at `step_users`, add `step_users` every `step_duration_s` up to `max_users`."""

    shape: Literal["ramp"]
    step_users: int = Field(ge=1)
    step_duration_s: float = Field(gt=0)
    max_users: int = Field(ge=1)
    hold_s: float = Field(default=0.0, ge=0)
    """Extra time at `max_users` after the last step."""
    spawn_rate: float | None = Field(default=None, gt=0)
    """Users started per second within a step; default: the whole step at once (step_users per second)."""

    @model_validator(mode="after")
    def _max_covers_step(self) -> RampLoad:
        if self.max_users < self.step_users:
            raise ValueError(f"max_users ({self.max_users}) must be >= step_users ({self.step_users})")
        return self


class StageSpec(StrictModel):
    duration_s: float = Field(gt=0)
    users: int = Field(ge=0)
    spawn_rate: float | None = Field(default=None, gt=0)
    """Users started or stopped per second; default: reach `users` within one second."""
    name: str | None = None


class StagesLoad(_PacedLoad):
    shape: Literal["stages"]
    stages: list[StageSpec] = Field(min_length=1)


class CycleLoad(StrictModel):
    """Seed 000's cycle mode: `packets` requests spread over `capabilities`, every `interval_s` seconds."""

    shape: Literal["cycle"]
    packets: int = Field(ge=1, le=10_000)
    """x: requests per cycle, sent concurrently."""
    capabilities: list[str] = Field(default_factory=list)
    """y: the capabilities a cycle spreads its requests over (round-robin); default: all of them."""
    interval_s: float = Field(gt=0)
    """z: seconds from the start of one cycle to the start of the next."""
    cycles: int = Field(default=10, ge=1)
    """How many cycles to run; the run ends after the last one's requests are answered."""


LoadConfig = Annotated[RampLoad | StagesLoad | CycleLoad, Field(discriminator="shape")]
LOAD_SHAPES = ("ramp", "stages", "cycle")


class AgentSource(StrictModel):
    """An `inferswarm agent` on the target machine, polled by the master."""

    url: str = Field(pattern=r"^https?://[^/\s]+")
    name: str | None = None
    """Node name in the telemetry; default `agent@host:port`."""


class PrometheusSource(StrictModel):
    """A Prometheus text endpoint the fleet already runs (dcgm-exporter, node_exporter)."""

    url: str = Field(pattern=r"^https?://[^/\s]+")
    name: str | None = None
    """Node name in the telemetry; default `host:port` of the URL."""
    format: Literal["auto", "dcgm", "node", "inferswarm"] = "auto"


INTERVAL_MIN_S, INTERVAL_MAX_S = 0.1, 10.0  # 10 to 0.1 samples per second


class TelemetryConfig(StrictModel):
    enabled: bool = True
    interval_s: float = Field(default=1.0, ge=INTERVAL_MIN_S, le=INTERVAL_MAX_S)
    """Seconds between samples on every node and between polls of remote sources (0.1 to 10)."""
    gpu: bool = True
    """Sample local GPUs through NVML (nothing happens on a machine without one)."""
    per_core: bool = True
    agents: list[AgentSource] = Field(default_factory=list)
    prometheus: list[PrometheusSource] = Field(default_factory=list)
    gpu_check: str | None = None
    """Name of a capability answering with gpu-check JSON, polled at the interval (seed 000)."""
    saturation_cpu_pct: float = Field(default=90.0, gt=0, le=100)
    """A load generator above this CPU share of one core is flagged as saturated."""


class SaturationRule(StrictModel):
    """When a step counts as past the saturation point."""

    min_gain: float = Field(default=0.5, ge=0, le=1)
    """Added users must add at least this share of the throughput they would add if nothing saturated."""
    latency_rise: float = Field(default=0.2, ge=0)
    """...while p95 rises by more than this share over the previous step; or:"""
    max_failure_ratio: float = Field(default=0.05, ge=0, le=1)
    """Failures above this share of requests mark a step as saturated on their own."""


class ReportConfig(StrictModel):
    warmup_s: float = Field(default=1.0, ge=0)
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


class RunConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    target: TargetConfig
    assets_dir: str = "../test-assets"
    capabilities: list[Capability] = Field(min_length=1)
    load: LoadConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    slo: list[str] = Field(default_factory=list)
    """Gates such as `p95_ms < 2000` or `text-to-image: failure_ratio < 0.01`; see inferswarm.slo."""
    report: ReportConfig = Field(default_factory=ReportConfig)

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("capabilities")
    @classmethod
    def _unique_names(cls, capabilities: list[Any]) -> list[Any]:
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
        base = self._source.parent if self._source else Path.cwd()
        return (base / self.assets_dir).resolve()


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every I/O and syntax problem into a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read file: {exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(path, "", f"YAML syntax error: {where}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"YAML syntax error: {exc}") from None


def _fields_of(annotation: Any, raw: Any) -> dict[str, Any] | None:
    """Model fields for an annotation (resolving unions by the raw input's tag), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict(annotation.model_fields)
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            fields = arg.model_fields
            for tag in ("kind", "shape"):
                if tag in fields and isinstance(raw, dict):
                    allowed = get_args(fields[tag].annotation)
                    if raw.get(tag) in allowed:
                        return dict(fields)
        elif get_origin(arg) is not None or get_args(arg):
            found = _fields_of(arg, raw)
            if found is not None:
                return found
    return None


def _walk(loc: tuple[Any, ...], data: Any) -> tuple[str, list[str] | None]:
    """Render a pydantic location as `a.b[0].c` without union tags; also return the valid keys there."""
    parts: list[str] = []
    annotation: Any = RunConfig
    raw = data
    valid: list[str] | None = None
    for element in loc:
        if isinstance(element, int):
            parts.append(f"[{element}]")
            raw = raw[element] if isinstance(raw, list) and element < len(raw) else None
            args = get_args(annotation)
            annotation = args[0] if args else Any
            continue
        fields = _fields_of(annotation, raw)
        if fields is None or element not in fields:
            if (
                isinstance(raw, dict)
                and element not in raw
                and element in (raw.get("kind"), raw.get("shape"))
            ):
                continue  # a discriminated union's tag, not a real key
            valid = sorted(fields) if fields is not None else None
            parts.append(("." if parts else "") + str(element))
            raw = raw.get(element) if isinstance(raw, dict) else None
            annotation = Any
            continue
        parts.append(("." if parts else "") + str(element))
        raw = raw.get(element) if isinstance(raw, dict) else None
        annotation = fields[element].annotation
    return "".join(parts), valid


def _describe(error: Any, data: Any) -> tuple[str, str]:
    path, valid = _walk(tuple(error["loc"]), data)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = path.rsplit(".", 1)[-1]
        hint = ""
        if valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
        return path, f"unknown key {key!r}{hint}"
    if kind == "missing":
        return path, "required field is missing"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("discriminator", "").strip("'")
        expected = error.get("ctx", {}).get("expected_tags", "")
        got = error.get("ctx", {}).get("tag", "")
        return f"{path}.{tag}" if path else tag, f"unknown {tag} {got!r}; valid: {expected}"
    if kind == "union_tag_not_found":
        tag = error.get("ctx", {}).get("discriminator", "").strip("'")
        valid_tags = ", ".join(KINDS) if tag == "kind" else ", ".join(LOAD_SHAPES)
        return f"{path}.{tag}" if path else tag, f"required field is missing (one of: {valid_tags})"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    return path, message


def _prioritised(described: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Unknown keys first; a "missing" error explained by a misspelt key's suggestion is dropped."""
    suggested = set()
    for field, problem in described:
        match = re.search(r"did you mean '([^']+)'", problem)
        if match:
            parent = field.rsplit(".", 1)[0] if "." in field else ""
            suggested.add(f"{parent}.{match.group(1)}" if parent else match.group(1))
    kept = [d for d in described if not (d[1] == "required field is missing" and d[0] in suggested)]
    return sorted(kept, key=lambda d: not d[1].startswith("unknown key"))


def parse_config(data: Any, source: Path | None = None) -> RunConfig:
    """Validate already-parsed YAML data; `source` anchors relative paths and error messages."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "top level must be a mapping of keys to values")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        described = _prioritised([_describe(e, data) for e in exc.errors()])
        field, problem = described[0]
        extra = len(described) - 1
        more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
        raise ConfigError(source, field, problem + more) from None
    config._source = source.resolve() if source else None
    _check_assets(config, source)
    _check_references(config, source)
    return config


def _check_references(config: RunConfig, source: Path | None) -> None:
    known = [c.name for c in config.capabilities]
    for index, text in enumerate(config.slo):
        try:
            gate = parse_gate(text)
        except ValueError as exc:
            raise ConfigError(source, f"slo[{index}]", str(exc)) from None
        if gate.capability is not None and gate.capability not in known:
            close = difflib.get_close_matches(gate.capability, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(source, f"slo[{index}]", f"no capability named {gate.capability!r} ({hint})")
    if isinstance(config.load, CycleLoad):
        for index, wanted in enumerate(config.load.capabilities):
            if wanted not in known:
                close = difflib.get_close_matches(wanted, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                raise ConfigError(
                    source, f"load.capabilities[{index}]", f"no capability named {wanted!r} ({hint})"
                )
    name = config.telemetry.gpu_check
    if name is not None and name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise ConfigError(source, "telemetry.gpu_check", f"no capability named {name!r} ({hint})")


def _check_assets(config: RunConfig, source: Path | None) -> None:
    assets = config.assets_path
    for index, cap in enumerate(config.capabilities):
        for field, path in cap.resolve_paths(assets):
            if not path.is_file():
                raise ConfigError(source, f"capabilities[{index}].{field}", f"asset file not found: {path}")


AGENTS_ENV = "INFERSWARM_AGENTS"


def with_extra_agents(config: RunConfig, urls: str | None) -> RunConfig:
    """Add `inferswarm agent` URLs given outside the file (comma-separated, e.g. from INFERSWARM_AGENTS)."""
    if not urls or not urls.strip():
        return config
    agents = list(config.telemetry.agents)
    for url in (u.strip() for u in urls.split(",")):
        if not url:
            continue
        try:
            agents.append(AgentSource(url=url))
        except ValidationError:
            where = f"--agent / {AGENTS_ENV}"
            raise ConfigError(where, "", f"{url!r} is not an http(s)://host:port URL") from None
    telemetry = config.telemetry.model_copy(update={"agents": agents})
    updated = config.model_copy(update={"telemetry": telemetry})
    updated._source = config.source
    return updated


LOAD_ENV = "INFERSWARM_LOAD"


def with_load_override(config: RunConfig, override: str | None) -> RunConfig:
    """Replace the load profile with one given outside the file (JSON, e.g. from `run -x -y -z`).

    Keys not given keep the file's values when the file has the same shape. The result is validated
    exactly like the file, so a bad override is a ConfigError naming the field.
    """
    if not override or not override.strip():
        return config
    where = f"{LOAD_ENV} / run -x -y -z"
    try:
        given = json.loads(override)
    except ValueError:
        raise ConfigError(where, "", "not valid JSON") from None
    if not isinstance(given, dict):
        raise ConfigError(where, "", "must be a JSON object")
    base = config.load.model_dump() if config.load.shape == given.get("shape", config.load.shape) else {}
    data = config.model_dump()
    data["load"] = {**base, **given}
    try:
        updated = parse_config(data, config.source)
    except ConfigError as exc:
        raise ConfigError(where, exc.field, exc.problem) from None
    return updated


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a run config file. Raises ConfigError."""
    file = Path(path)
    return parse_config(read_yaml(file), file)


def resolve_secret_headers(config: RunConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Header values for `target.secret_headers`, read from the environment. Missing variables are errors."""
    env = os.environ if environ is None else environ
    headers: dict[str, str] = {}
    for index, secret in enumerate(config.target.secret_headers):
        value = env.get(secret.env)
        if not value and secret.optional:
            continue
        if not value:
            raise ConfigError(
                config.source,
                f"target.secret_headers[{index}].env",
                f"environment variable {secret.env} is not set",
            )
        headers[secret.header] = secret.prefix + value
    return headers
