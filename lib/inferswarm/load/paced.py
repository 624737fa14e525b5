"""What the closed-loop user kinds (ramp, stages) share: an optional per-user request rate."""

from __future__ import annotations

from pydantic import Field

from inferswarm.load.base import BackToBack, ConstantPacing, LoadKind, Pacer
from inferswarm.strict import MAX_RUN_S


class PerUserRate(LoadKind):
    per_user_rps: float | None = Field(default=None, gt=0, le=100_000)
    """Per-user request rate (Locust's constant_throughput); unset means each user sends back to back."""

    def pacer(self, capability: str) -> Pacer:
        if self.per_user_rps is None:
            return BackToBack()
        return ConstantPacing(min(1.0 / self.per_user_rps, MAX_RUN_S))
