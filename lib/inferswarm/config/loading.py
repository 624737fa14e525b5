"""Reading run configs: YAML (duplicate keys refused), validation, cross-references, assets, overrides.

Relative asset paths are resolved against the config file's directory; the output directory against the
working directory (inputs belong to the config, outputs to where you run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inferswarm.config.errors import ConfigError, unknown_name, validation_error
from inferswarm.config.schema import AgentSource, RunConfig, run_config_model, valid_tags
from inferswarm.slo import parse_gate


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


def parse_config(data: Any, source: Path | None = None) -> RunConfig:
    """Validate already-parsed YAML data; `source` anchors relative paths and error messages."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "top level must be a mapping of keys to values")
    model = run_config_model()
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, model, data, source, valid_tags()) from None
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
            raise unknown_name(source, f"slo[{index}]", "capability", gate.capability, known)
    for field, problem in config.load.check(config.load_context()):
        raise ConfigError(source, f"load.{field}", problem)
    name = config.telemetry.gpu_check
    if name is not None and name not in known:
        raise unknown_name(source, "telemetry.gpu_check", "capability", name, known)


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
    base = (
        config.load.model_dump(by_alias=True)
        if config.load.shape == given.get("shape", config.load.shape)
        else {}
    )
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
