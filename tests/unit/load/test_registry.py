"""Load kinds register under their `shape` tag; the registry answers what the config and report ask."""

from __future__ import annotations

from typing import Literal

import pytest

from inferswarm.load import (
    USERS_AXIS,
    CycleLoad,
    LoadContext,
    LoadKind,
    RampLoad,
    Stage,
    StagesLoad,
    StepAxis,
    load_kind,
    load_kinds,
    register_load,
    step_axis_of,
)


def test_built_in_kinds() -> None:
    kinds = load_kinds()
    assert {"ramp": RampLoad, "stages": StagesLoad, "cycle": CycleLoad}.items() <= kinds.items()
    assert load_kind("cycle") is CycleLoad
    kinds.pop("ramp")  # a copy: the registry is not changed through it
    assert load_kind("ramp") is RampLoad


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(
        KeyError,
        match="unknown load shape 'spike'; valid: cycle, fps, ramp, rate, readiness, search, sizes, stages",
    ):
        load_kind("spike")


def test_a_kind_needs_one_literal_tag() -> None:
    class Untagged(LoadKind):
        shape: str = "x"

        def plan(self, context: LoadContext) -> list[Stage]:
            return []

    with pytest.raises(TypeError, match=r"Untagged.shape must be a Literal of one string"):
        register_load(Untagged)


@pytest.mark.usefixtures("private_registries")
def test_step_axis_of_a_run_json_load_section() -> None:
    rate_axis = StepAxis(column="users", label="requests/s")

    @register_load
    class Open(LoadKind):
        axis = rate_axis
        shape: Literal["test-open-axis"]

        def plan(self, context: LoadContext) -> list[Stage]:
            return []

    assert step_axis_of({"shape": "test-open-axis"}) is rate_axis
    assert step_axis_of({"shape": "ramp"}) is USERS_AXIS
    assert step_axis_of({"shape": "gone"}) is USERS_AXIS  # a run from a kind this install lacks
    assert step_axis_of(None) is USERS_AXIS and step_axis_of({"shape": 3}) is USERS_AXIS


def test_the_test_kind_did_not_stay_registered() -> None:
    assert "test-open-axis" not in load_kinds()
