"""Load kind `stages`: an explicit list of (duration, users) stages, e.g. a soak or a spike."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inferswarm.load.base import LoadContext, Stage
from inferswarm.load.paced import PerUserRate
from inferswarm.load.registry import register_load
from inferswarm.strict import StrictModel


class StageSpec(StrictModel):
    duration_s: float = Field(gt=0)
    users: int = Field(ge=0)
    spawn_rate: float | None = Field(default=None, gt=0)
    """Users started or stopped per second; default: reach `users` within one second."""
    name: str | None = None


@register_load
class StagesLoad(PerUserRate):
    shape: Literal["stages"]
    stages: list[StageSpec] = Field(min_length=1)

    def plan(self, context: LoadContext | None = None) -> list[Stage]:
        stages: list[Stage] = []
        offset, previous = 0.0, 0
        for index, spec in enumerate(self.stages):
            rate = spec.spawn_rate or float(max(abs(spec.users - previous), 1))
            stages.append(Stage(spec.name or f"stage {index + 1}", offset, spec.duration_s, spec.users, rate))
            offset += spec.duration_s
            previous = spec.users
        return stages
