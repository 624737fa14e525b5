"""Load kind `stages`: an explicit list of (duration, users) stages, e.g. a soak or a spike."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from inferswarm.load.base import LoadContext, Stage
from inferswarm.load.paced import PerUserRate
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, MAX_SPAWN_RATE, MAX_STAGES, MAX_USERS, StrictModel, no_such_name


class StageSpec(StrictModel):
    duration_s: float = Field(gt=0, le=MAX_RUN_S)
    users: int = Field(ge=0, le=MAX_USERS)
    spawn_rate: float | None = Field(default=None, gt=0, le=MAX_SPAWN_RATE)
    """Users started or stopped per second; default: reach `users` within one second."""
    name: str | None = Field(default=None, max_length=128)
    capabilities: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    """Only these capabilities' users run in this stage (e.g. one size of a tensor sweep); default: all."""


@register_load
class StagesLoad(PerUserRate):
    shape: Literal["stages"]
    stages: list[StageSpec] = Field(min_length=1, max_length=MAX_STAGES)

    @field_validator("stages")
    @classmethod
    def _bounded_total(cls, stages: list[StageSpec]) -> list[StageSpec]:
        total_s = sum(spec.duration_s for spec in stages)
        if total_s > MAX_RUN_S:
            raise ValueError(f"the stages last {total_s:g} s; at most {MAX_RUN_S:g} s (7 days)")
        return stages

    def plan(self, context: LoadContext | None = None) -> list[Stage]:
        stages: list[Stage] = []
        offset, previous = 0.0, 0
        for index, spec in enumerate(self.stages):
            rate = spec.spawn_rate or float(max(abs(spec.users - previous), 1))
            only = tuple(spec.capabilities) if spec.capabilities else None
            name = spec.name or f"stage {index + 1}"
            stages.append(Stage(name, offset, spec.duration_s, spec.users, rate, capabilities=only))
            offset += spec.duration_s
            previous = spec.users
        return stages

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        known = list(context.capabilities)
        for index, spec in enumerate(self.stages):
            for name in spec.capabilities or []:
                if name not in known:
                    return [(f"stages[{index}].capabilities", no_such_name("capability", name, known))]
        return []
