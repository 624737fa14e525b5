"""Load kind `rate`: requests arrive at a target rate (open loop), whatever the answers take.

Closed-loop users wait for each answer before sending again, so a stalled service slows the senders
down and the stall vanishes from the latency (coordinated omission). Here each stage has an offered rate;
sends follow an arrival process (`load.arrivals`: constant, Poisson or gamma, seeded) and every request
keeps the time it *should* have been sent, so the report gives latency from the intended start beside
the service latency. The stages are a list (`stages: [{duration_s, rps}]`) or steps of rate (`start_rps`,
`step_rps`, `step_duration_s`, `max_rps`, `hold_s`: the open-loop twin of the ramp).

`max_concurrency` caps requests in flight: it is the number of Locust users (split by weight like
users), each taking the next send time from the process's shared schedule when it is free. A request whose
time comes while every user is busy is sent as soon as one frees up, late by that much (counted, never
skipped). The rate is split across capabilities by weight, and across worker processes by their users.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from inferswarm.load.arrivals import Arrival, ArrivalSpec
from inferswarm.load.base import RATE_AXIS, LoadContext, LoadKind, Stage
from inferswarm.load.registry import register_load
from inferswarm.strict import MAX_RUN_S, MAX_SPAWN_RATE, MAX_STAGES, MAX_USERS, StrictModel

MAX_RPS = 1_000_000.0
DEFAULT_CONCURRENCY = 100


class RateStage(StrictModel):
    duration_s: float = Field(gt=0, le=MAX_RUN_S)
    rps: float = Field(gt=0, le=MAX_RPS)
    """Offered requests per second, all capabilities and processes together."""
    name: str | None = Field(default=None, max_length=128)


class OpenLoop(LoadKind):
    """What the open-loop kinds share: the arrival process and the ceiling on requests in flight."""

    axis: ClassVar = RATE_AXIS
    arrival: Literal["constant", "poisson", "gamma"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=100)
    """Gamma arrivals' shape: 1 is Poisson, below 1 burstier, above 1 more regular (gamma only)."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Seeds the arrival process: the same seed gives the same gaps (recorded in run.json's config)."""
    max_concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=MAX_USERS)
    """Requests in flight at most (the number of users); a send due while all are busy goes out late."""

    @model_validator(mode="after")
    def _burstiness_is_gamma(self) -> OpenLoop:
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError(f"burstiness applies to gamma arrivals only (arrival is {self.arrival})")
        return self

    def arrivals(self) -> ArrivalSpec | None:
        return ArrivalSpec(Arrival(self.arrival), self.burstiness, self.seed)

    def _stage(self, name: str, start_s: float, duration_s: float, rps: float) -> Stage:
        # The whole ceiling within a tenth of a second: a send due before its user exists goes out late.
        ceiling = self.max_concurrency
        return Stage(name, start_s, duration_s, ceiling, min(ceiling * 10.0, MAX_SPAWN_RATE), rps)

    def describe(self, context: LoadContext) -> str:
        stages = self.plan(context)
        expected = sum(s.duration_s * (s.rps or 0.0) for s in stages)
        arrival = self.arrival + (f" (burstiness {self.burstiness:g})" if self.arrival == "gamma" else "")
        steps = ", ".join(f"{s.rps:g} rps x {s.duration_s:g} s" for s in stages[:6])
        more = f", ... ({len(stages)} stages)" if len(stages) > 6 else ""
        return (
            f"load: {self.shape}, {arrival} arrivals, seed {self.seed}: {steps}{more}; "
            f"about {expected:,.0f} requests over {stages[-1].end_s:g} s, "
            f"at most {self.max_concurrency} in flight"
        )


@register_load
class RateLoad(OpenLoop):
    """Stages of offered rate, given as a list or as steps."""

    shape: Literal["rate"]
    stages: list[RateStage] | None = Field(default=None, min_length=1, max_length=MAX_STAGES)
    start_rps: float | None = Field(default=None, gt=0, le=MAX_RPS)
    step_rps: float | None = Field(default=None, gt=0, le=MAX_RPS)
    step_duration_s: float | None = Field(default=None, gt=0, le=MAX_RUN_S)
    max_rps: float | None = Field(default=None, gt=0, le=MAX_RPS)
    hold_s: float = Field(default=0.0, ge=0, le=MAX_RUN_S)
    """Extra time at `max_rps` after the last step."""

    @model_validator(mode="after")
    def _one_form(self) -> RateLoad:
        steps = {
            "start_rps": self.start_rps,
            "step_rps": self.step_rps,
            "step_duration_s": self.step_duration_s,
            "max_rps": self.max_rps,
        }
        given = [k for k, v in steps.items() if v is not None]
        if self.stages is not None:
            if given or self.hold_s:
                raise ValueError(
                    f"give either stages or steps of rate, not both ({', '.join(given or ['hold_s'])})"
                )
        else:
            missing = [k for k in ("start_rps", "step_duration_s", "max_rps") if steps[k] is None]
            if missing:
                raise ValueError(f"give stages, or steps of rate with {', '.join(missing)}")
            assert self.start_rps is not None and self.max_rps is not None
            if self.max_rps < self.start_rps:
                raise ValueError(f"max_rps ({self.max_rps:g}) must be >= start_rps ({self.start_rps:g})")
            if self.max_rps > self.start_rps and self.step_rps is None:
                raise ValueError("step_rps is needed to go from start_rps to max_rps")
        plan = self.plan()
        if len(plan) > MAX_STAGES:
            raise ValueError(f"the steps make {len(plan)} stages; at most {MAX_STAGES} (raise step_rps)")
        if plan[-1].end_s > MAX_RUN_S:
            raise ValueError(f"the load lasts {plan[-1].end_s:g} s; at most {MAX_RUN_S:g} s (7 days)")
        return self

    def plan(self, context: LoadContext | None = None) -> list[Stage]:
        stages: list[Stage] = []
        offset = 0.0
        if self.stages is not None:
            for index, spec in enumerate(self.stages):
                stages.append(
                    self._stage(spec.name or f"stage {index + 1}", offset, spec.duration_s, spec.rps)
                )
                offset += spec.duration_s
            return stages
        assert self.start_rps is not None and self.step_duration_s is not None and self.max_rps is not None
        step = self.step_rps or self.max_rps
        count = 1 + math.ceil(round((self.max_rps - self.start_rps) / step, 9))
        for index in range(min(count, MAX_STAGES + 1)):
            rps = min(self.start_rps + index * step, self.max_rps)
            stages.append(self._stage(f"step {index + 1}", offset, self.step_duration_s, rps))
            offset += self.step_duration_s
        if self.hold_s > 0:
            stages.append(self._stage("hold", offset, self.hold_s, self.max_rps))
        return stages
