"""Load kind `sizes`: one stage per tensor size, each running only that size's capability.

A tensor capability with `sizes` stands for one capability per size, named `<name>@<d1>x<d2>...`
(`TensorCapability.expand`). This kind sweeps them in order, smallest first as listed: the same users for
`step_duration_s` on each size, so every size is measured alone (its own throughput, latency, server
time and network overhead) in one run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inferswarm.load.base import LoadContext, Stage
from inferswarm.load.paced import PerUserRate
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, MAX_SPAWN_RATE, MAX_USERS

SIZE_MARK = "@"
"""Separates a capability's name from its size in the names of a sweep's capabilities."""


def variants_of(base: str, capabilities: tuple[str, ...]) -> list[str]:
    """The sweep's capability names for `base`, in config (size) order."""
    return [name for name in capabilities if name.startswith(base + SIZE_MARK)]


def swept_bases(capabilities: tuple[str, ...]) -> list[str]:
    """The capabilities that were given `sizes` (by their names before the size)."""
    bases: list[str] = []
    for name in capabilities:
        base, mark, _ = name.rpartition(SIZE_MARK)
        if mark and base not in bases:
            bases.append(base)
    return bases


@register_load
class SizesLoad(PerUserRate):
    """The same closed-loop users on each size of one tensor capability in turn."""

    shape: Literal["sizes"]
    capability: str | None = Field(default=None, max_length=64)
    """The tensor capability whose `sizes` to sweep; default: the only one with sizes."""
    users: int = Field(default=1, ge=1, le=MAX_USERS)
    step_duration_s: float = Field(gt=0, le=MAX_RUN_S)
    spawn_rate: float | None = Field(default=None, gt=0, le=MAX_SPAWN_RATE)
    """Users started per second at each size; default: all at once."""

    def _base(self, context: LoadContext) -> str | None:
        if self.capability is not None:
            return self.capability
        bases = swept_bases(context.capabilities)
        return bases[0] if len(bases) == 1 else None

    def plan(self, context: LoadContext) -> list[Stage]:
        base = self._base(context)
        names = variants_of(base, context.capabilities) if base else []
        rate = self.spawn_rate or float(self.users)
        return [
            Stage(
                name.rpartition(SIZE_MARK)[2],
                index * self.step_duration_s,
                self.step_duration_s,
                self.users,
                rate,
                capabilities=(name,),
            )
            for index, name in enumerate(names)
        ]

    def check(self, context: LoadContext) -> list[tuple[str, str]]:
        bases = swept_bases(context.capabilities)
        if self.capability is None and len(bases) != 1:
            found = ", ".join(bases) if bases else "none"
            return [("capability", f"name the tensor capability to sweep (capabilities with sizes: {found})")]
        base = self._base(context)
        if not base or not variants_of(base, context.capabilities):
            return [
                ("capability", f"{base!r} has no sizes: give the tensor capability `sizes: [[64, 64], ...]`")
            ]
        if len(self.plan(context)) * self.step_duration_s > MAX_RUN_S:
            return [("step_duration_s", f"the sweep would last more than {MAX_RUN_S:g} s")]
        return []

    def describe(self, context: LoadContext) -> str:
        stages = self.plan(context)
        sizes = ", ".join(s.name for s in stages)
        return (
            f"load: sizes, {self.users} users on each size of {self._base(context)} for "
            f"{self.step_duration_s:g} s: {sizes} ({len(stages) * self.step_duration_s:g} s)"
        )
