"""Load kind `ramp`: start at `step_users`, add `step_users` every `step_duration_s` up to `max_users`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from inferswarm.load.base import LoadContext, Stage
from inferswarm.load.paced import PerUserRate
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, MAX_SPAWN_RATE, MAX_STAGES, MAX_USERS


@register_load
class RampLoad(PerUserRate):
    """Steps of users, each held for the same time, so the report can find where throughput stops rising."""

    shape: Literal["ramp"]
    step_users: int = Field(ge=1, le=MAX_USERS)
    step_duration_s: float = Field(gt=0, le=MAX_RUN_S)
    max_users: int = Field(ge=1, le=MAX_USERS)
    hold_s: float = Field(default=0.0, ge=0, le=MAX_RUN_S)
    """Extra time at `max_users` after the last step."""
    spawn_rate: float | None = Field(default=None, gt=0, le=MAX_SPAWN_RATE)
    """Users started per second within a step; default: the whole step at once (step_users per second)."""

    @model_validator(mode="after")
    def _max_covers_step(self) -> RampLoad:
        if self.max_users < self.step_users:
            raise ValueError(f"max_users ({self.max_users}) must be >= step_users ({self.step_users})")
        steps = math.ceil(self.max_users / self.step_users)
        if steps > MAX_STAGES:
            raise ValueError(
                f"max_users / step_users makes {steps} steps; at most {MAX_STAGES} (raise step_users)"
            )
        total_s = steps * self.step_duration_s + self.hold_s
        if total_s > MAX_RUN_S:
            raise ValueError(f"the ramp lasts {total_s:g} s; at most {MAX_RUN_S:g} s (7 days)")
        return self

    def plan(self, context: LoadContext | None = None) -> list[Stage]:
        """Steps up to `max_users` (the last step is capped at `max_users`), then the hold."""
        spawn_rate = self.spawn_rate or float(self.step_users)
        stages: list[Stage] = []
        users, offset = 0, 0.0
        while users < self.max_users:
            users = min(users + self.step_users, self.max_users)
            stages.append(Stage(f"step {len(stages) + 1}", offset, self.step_duration_s, users, spawn_rate))
            offset += self.step_duration_s
        if self.hold_s > 0:
            stages.append(Stage("hold", offset, self.hold_s, self.max_users, spawn_rate))
        return stages
