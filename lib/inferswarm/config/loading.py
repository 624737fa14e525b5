"""Reading run configs: YAML (duplicate keys refused), validation, cross-references, assets, overrides.

Relative asset paths are resolved against the config file's directory; the output directory against the
working directory (inputs belong to the config, outputs to where you run).

YAML input is bounded before anything is built from it: the file's size, the nesting depth, and the
number of nodes once aliases are expanded (a "billion laughs" file is refused, not expanded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from inferswarm.config.errors import (
    ConfigError,
    looks_like_other_kind,
    unknown_name,
    validation_error,
)
from inferswarm.config.schema import (
    AgentSource,
    RunConfig,
    redact_url,
    run_config_model,
    url_problem,
    valid_tags,
)
from inferswarm.slo import GOODPUT_METRICS, parse_gate
from inferswarm.strict import MAX_RUN_S, MAX_STAGES

MAX_FILE_BYTES = 1024 * 1024
"""A config or settings file larger than this is refused unread."""
MAX_DEPTH = 100
"""Nesting depth of YAML collections."""
MAX_NODES = 1_000_000
"""YAML nodes once every alias is expanded (what validation and any later copy would walk)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys and nesting deeper than MAX_DEPTH."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool | None):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_nodes(root: yaml.Node) -> int | None:
    """Nodes in the document once aliases are expanded (None for a node that contains itself).

    Aliases share node objects, so each distinct node is sized once (iteratively: no recursion limit).
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if done:
            on_path.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                return None
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(path, "", f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "", "cannot read file: not UTF-8 text") from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every I/O and syntax problem into a ConfigError.

    Bounded: at most MAX_FILE_BYTES, MAX_DEPTH levels of nesting, MAX_NODES nodes with aliases expanded.
    """
    text = _read_text(path)
    try:
        return _load_bounded(path, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(path, "", f"YAML syntax error: {where}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"YAML syntax error: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(path, "", f"YAML: a value cannot be read: {exc}") from None


def _load_bounded(path: Path, text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_nodes(node)
        if size is None:
            raise ConfigError(path, "", "YAML: an alias refers to a node that contains it")
        if size > MAX_NODES:
            raise ConfigError(path, "", f"YAML: more than {MAX_NODES} values once aliases are expanded")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_config(data: Any, source: Path | None = None) -> RunConfig:
    """Validate already-parsed YAML data; `source` anchors relative paths and error messages."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "top level must be a mapping of keys to values")
    model = run_config_model()
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        from inferswarm.emulator.settings import TargetSettings  # the emulator imports this package

        if looks_like_other_kind(data, RunConfig, TargetSettings):
            raise ConfigError(
                source,
                "",
                "this looks like a reference-target settings file (for `inferswarm serve --config` "
                "or `inferswarm run --serve-target`), not a run config",
            ) from None
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
        if gate.metric in GOODPUT_METRICS:
            if config.goodput is None:
                problem = f"{gate.metric} needs a goodput section (e.g. goodput: {{latency_ms: 2000}})"
                raise ConfigError(source, f"slo[{index}]", problem)
            if not config.output.request_log:
                problem = f"{gate.metric} needs the request log, but output.request_log is false"
                raise ConfigError(source, f"slo[{index}]", problem)
    for field, problem in config.load.check(config.load_context()):
        raise ConfigError(source, f"load.{field}", problem)
    _check_plan(config, source)
    name = config.telemetry.gpu_check
    if name is not None and name not in known:
        raise unknown_name(source, "telemetry.gpu_check", "capability", name, known)


def _check_plan(config: RunConfig, source: Path | None) -> None:
    """Whatever the load kind: a bounded number of stages and a bounded total duration."""
    stages = config.load.plan(config.load_context())
    if len(stages) > MAX_STAGES:
        raise ConfigError(source, "load", f"the plan has {len(stages)} stages; at most {MAX_STAGES}")
    end_s = max((s.end_s for s in stages), default=0.0)
    if end_s > MAX_RUN_S:
        raise ConfigError(source, "load", f"the plan lasts {end_s:g} s; at most {MAX_RUN_S:g} s (7 days)")


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
        problem = url_problem(url)
        if problem:
            raise ConfigError(
                f"--agent / {AGENTS_ENV}",
                "",
                f"{redact_url(url)!r} is not an http(s)://host:port URL: {problem}",
            )
        agents.append(AgentSource(url=url))
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
    given = _json_object(override, where)
    base = (
        config.load.model_dump(by_alias=True)
        if config.load.shape == given.get("shape", config.load.shape)
        else {}
    )
    data = _as_given(config)
    data["load"] = {**base, **given}
    try:
        updated = parse_config(data, config.source)
    except ConfigError as exc:
        raise ConfigError(where, exc.field, exc.problem) from None
    return updated


def _json_object(text: str, where: str) -> dict[str, Any]:
    """An override given outside the file: a JSON object, or a ConfigError naming where it came from."""
    try:
        given = json.loads(text)
    except ValueError:
        raise ConfigError(where, "", "not valid JSON") from None
    if not isinstance(given, dict):
        raise ConfigError(where, "", "must be a JSON object")
    return given


def _as_given(config: RunConfig) -> dict[str, Any]:
    """The config as its fields were given (defaults left out), to validate again with a change: a
    kind that refuses a field next to another (a fixed `image` with an `image_size`) sees what was set."""
    return config.model_dump(exclude_unset=True)


CAPABILITIES_ENV = "INFERSWARM_CAPABILITIES"
CAPABILITY_OVERRIDE_KEYS = frozenset({"kind", "select", "set"})


def with_capability_override(config: RunConfig, override: str | None) -> RunConfig:
    """Select and change capabilities outside the file (JSON, e.g. from `run --detector-mode
    --image-width --image-height`): `{"kind": K, "select": {field: value}, "set": {field: value}}`.

    `select` keeps only the capabilities of kind K whose fields have those values (every other
    capability, of any kind, is left out of the run; without `select` all stay); `set` changes those
    fields of every kept capability of kind K (a mapping value is merged into the capability's own).
    The result is validated exactly like the file, so a bad override is a ConfigError naming the field.
    """
    if not override or not override.strip():
        return config
    where = f"{CAPABILITIES_ENV} / run --detector-mode --image-width --image-height"
    given = _json_object(override, where)
    unknown = sorted(set(given) - CAPABILITY_OVERRIDE_KEYS)
    if unknown:
        raise ConfigError(
            where, unknown[0], f"unknown key (known: {', '.join(sorted(CAPABILITY_OVERRIDE_KEYS))})"
        )
    kind, select, changes = given.get("kind"), given.get("select") or {}, given.get("set") or {}
    if not isinstance(kind, str) or not kind:
        raise ConfigError(where, "kind", "give the capability kind the override is for")
    for key, value in (("select", select), ("set", changes)):
        if not isinstance(value, dict):
            raise ConfigError(where, key, "must be a JSON object of field: value")
    data = _as_given(config)
    listed = ", ".join(f"{c.name} ({c.kind})" for c in config.capabilities)
    of_kind = [(i, c) for i, c in enumerate(config.capabilities) if c.kind == kind]
    if not of_kind:
        raise ConfigError(where, "kind", f"no {kind} capability in this config (capabilities: {listed})")
    for key in [*select, *changes]:
        if key not in type(of_kind[0][1]).model_fields or key == "kind":
            raise ConfigError(where, key, f"not a field {kind} capabilities can be selected by or given")
    kept = [(i, c) for i, c in of_kind if all(getattr(c, k) == v for k, v in select.items())]
    if not select:
        kept = list(enumerate(config.capabilities))
    elif not kept:
        wanted = ", ".join(f"{k} {v!r}" for k, v in select.items())
        have = ", ".join(
            f"{c.name}: " + ", ".join(f"{k} {getattr(c, k)!r}" for k in select) for _, c in of_kind
        )
        raise ConfigError(where, "select", f"no {kind} capability with {wanted} ({have})")
    capabilities = []
    for index, capability in kept:
        item = dict(data["capabilities"][index])
        for key, value in changes.items() if capability.kind == kind else ():
            current = getattr(capability, key)
            merge = isinstance(value, dict) and isinstance(current, BaseModel)
            item[key] = {**current.model_dump(), **value} if merge else value
        capabilities.append(item)
    data["capabilities"] = capabilities
    try:
        return parse_config(data, config.source)
    except ConfigError as exc:
        raise ConfigError(where, exc.field, exc.problem) from None


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a run config file. Raises ConfigError."""
    file = Path(path)
    return parse_config(read_yaml(file), file)


def resolve_secret_headers(config: RunConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Header values for `target.secret_headers`, read from the environment. Missing variables are errors,
    and so are missing variables of a capability's own secrets (`CapabilityBase.secret_envs`)."""
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
    for index, capability in enumerate(config.capabilities):
        for field_name, var in capability.secret_envs():  # sent by the capability itself (its own header)
            if not env.get(var):
                where = f"capabilities[{index}].{field_name}"
                raise ConfigError(config.source, where, f"environment variable {var} is not set")
    return headers
