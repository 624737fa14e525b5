"""Load kinds register themselves here under their `shape` tag; the config's union is built from it."""

from __future__ import annotations

from typing import Any, TypeVar

from inferswarm.load.base import USERS_AXIS, LoadKind, StepAxis
from inferswarm.strict import literal_tag

K = TypeVar("K", bound=type[LoadKind])

_KINDS: dict[str, type[LoadKind]] = {}


def register_load(cls: K) -> K:
    """Class decorator: make a load kind selectable as `load: {shape: <its tag>}`."""
    _KINDS[literal_tag(cls, "shape")] = cls
    return cls


def load_kinds() -> dict[str, type[LoadKind]]:
    """Every registered load kind by tag (built-in kinds are registered by importing `inferswarm.load`)."""
    return dict(_KINDS)


def load_kind(shape: str) -> type[LoadKind]:
    try:
        return _KINDS[shape]
    except KeyError:
        raise KeyError(f"unknown load shape {shape!r}; valid: {', '.join(sorted(_KINDS))}") from None


def step_axis_of(load: Any) -> StepAxis:
    """The report's x axis for a load section as stored in run.json (users when the kind is unknown)."""
    shape = load.get("shape") if isinstance(load, dict) else None
    kind = _KINDS.get(shape) if isinstance(shape, str) else None
    return kind.axis_of(load) if kind is not None else USERS_AXIS
