"""The base of every config model, kept in a leaf module so config, protocols and load kinds share it."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys and type coercion are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def literal_tag(model: type[BaseModel], field: str) -> str:
    """The one value of a `field: Literal["<tag>"]` discriminator (a kind's registry key)."""
    tags = get_args(model.__pydantic_fields__[field].annotation)
    if len(tags) != 1 or not isinstance(tags[0], str):
        raise TypeError(f"{model.__name__}.{field} must be a Literal of one string")
    return tags[0]
