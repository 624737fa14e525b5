"""Load kind `fps`: one client sends back to back for `duration_s`; throughput is frames per second.

Seed 001's single-client FPS test: one detector, one client, the next image query sent as soon as the
previous one is answered, so requests per second end to end are the frames per second one camera could
push through the endpoint. One stage, one user, on one capability (the first by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from inferswarm.load.base import BackToBack, LoadContext, LoadKind, Stage
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, no_such_name


@register_load
class FpsLoad(LoadKind):
    """One client, back to back, for `duration_s` seconds."""

    shape: Literal["fps"]
    duration_s: float = Field(gt=0, le=MAX_RUN_S)
    capability: str | None = Field(default=None, max_length=64)
    """The capability the client sends to; default: the first one in the config."""

    def target(self, context: LoadContext) -> str:
        """The capability the one client sends to."""
        return self.capability or context.capabilities[0]

    def plan(self, context: LoadContext) -> list[Stage]:
        return [Stage("fps", 0.0, self.duration_s, 1, 1.0)]

    def pacer(self, capability: str) -> BackToBack:
        return BackToBack()

    def users_per_capability(self, context: LoadContext) -> Mapping[str, int]:
        return {self.target(context): 1}

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        known = list(context.capabilities)
        if self.capability is None or self.capability in known:
            return []
        return [("capability", no_such_name("capability", self.capability, known))]

    def describe(self, context: LoadContext) -> str:
        return (
            f"load: fps, 1 client on {self.target(context)} back to back for {self.duration_s:g} s; "
            "throughput is frames (requests) per second end to end"
        )
