"""The base of every config model, kept in a leaf module so config, protocols and load kinds share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys and type coercion are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
