"""Load kinds: how many users (or requests) over time, as strategy objects registered by `shape`.

Adding a load kind is one module here: a `LoadKind` subclass with a `shape: Literal[...]` tag,
decorated with `@register_load`, imported below. See docs/architecture.md.
"""

from __future__ import annotations

from inferswarm.load import cycle, fps, ramp, rate, readiness, search, sizes, stages  # noqa: F401  (built-in kinds register themselves)
from inferswarm.load.arrivals import Arrival, ArrivalSpec
from inferswarm.load.base import (
    RATE_AXIS,
    USERS_AXIS,
    BackToBack,
    ConstantPacing,
    CyclePlan,
    LoadContext,
    LoadKind,
    Pacer,
    ReadinessPlan,
    Stage,
    StepAxis,
    Wait,
    stage_at,
)
from inferswarm.load.cycle import CycleLoad
from inferswarm.load.fps import FpsLoad
from inferswarm.load.ramp import RampLoad
from inferswarm.load.rate import OpenLoop, RateLoad, RateStage
from inferswarm.load.readiness import ReadinessLoad
from inferswarm.load.registry import load_kind, load_kinds, register_load, step_axis_of
from inferswarm.load.search import SearchLoad, Trial, bracket
from inferswarm.load.stages import StagesLoad, StageSpec

__all__ = [
    "RATE_AXIS",
    "USERS_AXIS",
    "Arrival",
    "ArrivalSpec",
    "BackToBack",
    "ConstantPacing",
    "CycleLoad",
    "CyclePlan",
    "FpsLoad",
    "LoadContext",
    "LoadKind",
    "OpenLoop",
    "Pacer",
    "RampLoad",
    "RateLoad",
    "RateStage",
    "ReadinessLoad",
    "ReadinessPlan",
    "SearchLoad",
    "Stage",
    "StageSpec",
    "StagesLoad",
    "StepAxis",
    "Trial",
    "Wait",
    "bracket",
    "load_kind",
    "load_kinds",
    "register_load",
    "stage_at",
    "step_axis_of",
]
