"""The base of every config model, kept in a leaf module so config, protocols and load kinds share it.

Also the bounds every config field lives within: a number that would switch a deadline off, hang the
planner or run for weeks is refused at load with one line, never discovered mid-run.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import get_args

from pydantic import BaseModel, ConfigDict

MAX_TIMEOUT_S = 3600.0
"""Any timeout or per-request deadline: at most an hour (finite: a deadline is never switched off)."""
MAX_RUN_S = 7 * 24 * 3600.0
"""The planned duration of a whole run (every stage, every cycle): at most 7 days."""
MAX_USERS = 1_000_000
"""Concurrent users in any stage."""
MAX_STAGES = 10_000
"""Stages a load plan may generate (a ramp's steps, an explicit list)."""
MAX_SPAWN_RATE = 100_000.0
"""Users started or stopped per second."""
MAX_WEIGHT = 1_000_000


class StrictModel(BaseModel):
    """Unknown keys, type coercion, inf and nan are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def literal_tag(model: type[BaseModel], field: str) -> str:
    """The one value of a `field: Literal["<tag>"]` discriminator (a kind's registry key)."""
    tags = get_args(model.__pydantic_fields__[field].annotation)
    if len(tags) != 1 or not isinstance(tags[0], str):
        raise TypeError(f"{model.__name__}.{field} must be a Literal of one string")
    return tags[0]


def first_duplicate(values: Sequence[str]) -> str | None:
    """The first value that appears more than once (for "... appears twice" errors), or None."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def no_such_name(what: str, name: str, known: Sequence[str]) -> str:
    """`no <what> named 'x' (did you mean 'y'?)`, or the known names when none is close: the one
    wording for a reference to something the config does not have."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"no {what} named {name!r} ({hint})"
