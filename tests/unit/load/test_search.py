from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import RATE_AXIS, USERS_AXIS, LoadContext, SearchLoad, Trial, bracket, step_axis_of

CONTEXT = LoadContext(capabilities=("a",), longest_timeout_s=10.0, gates=("p95_ms < 500",))


def search(**kw: object) -> SearchLoad:
    base: dict[str, object] = {"shape": "search", "low": 10, "high": 80, "resolution": 5, "trial_s": 4}
    base.update(kw)
    return SearchLoad.model_validate(base)


def run_search(load: SearchLoad, capacity: float) -> list[Trial]:
    """The trials a search makes against a service that passes every level up to `capacity`."""
    trials: list[Trial] = []
    while (level := load.next_level(trials)) is not None:
        trials.append(Trial(level, level <= capacity))
    return trials


def test_it_grows_until_a_failure_then_bisects_to_the_resolution() -> None:
    trials = run_search(search(), capacity=47)
    assert [t.level for t in trials] == [10, 20, 40, 80, 60, 50, 45]
    assert bracket(trials) == (45, 50)
    low, high = bracket(trials)
    assert low is not None and high is not None and low <= 47 < high and high - low <= 5


@pytest.mark.parametrize("capacity", [3.0, 11.0, 33.3, 79.0, 200.0])
def test_the_bracket_holds_the_capacity(capacity: float) -> None:
    load = search(resolution=2)
    low, high = bracket(run_search(load, capacity))
    if capacity < 10:
        assert (low, high) == (None, 10)  # even the first level failed
    elif capacity >= 80:
        assert (low, high) == (80, None)  # the highest level passed
    else:
        assert low is not None and high is not None
        assert low <= capacity < high and high - low <= 2


def test_over_users_levels_are_whole_users_and_closed_loop() -> None:
    load = search(over="users", low=2, high=20, resolution=1)
    trials = run_search(load, capacity=13)
    assert all(t.level == int(t.level) for t in trials)
    assert bracket(trials) == (13, 14)
    assert load.arrivals() is None
    [first] = load.plan(CONTEXT)
    assert (first.users, first.rps) == (2, None)
    assert step_axis_of({"shape": "search", "over": "users"}) == USERS_AXIS


def test_over_rps_trials_are_open_loop_stages_at_the_level() -> None:
    load = search(max_concurrency=30)
    stage = load.trial_stage(3, 12.0, 42.5)
    assert (stage.name, stage.start_s, stage.duration_s, stage.rps, stage.users) == (
        "trial 4",
        12.0,
        4,
        42.5,
        30,
    )
    assert load.arrivals() is not None
    assert step_axis_of({"shape": "search"}) == RATE_AXIS
    assert load.longest_s() == 12 * 4


def test_max_trials_bounds_the_search() -> None:
    assert len(run_search(search(max_trials=3, resolution=0.001), capacity=47)) == 3


def test_a_search_needs_gates_it_can_judge_during_the_run() -> None:
    assert search().check(CONTEXT) == []
    assert search().check(LoadContext(("a",), 10.0)) == [
        ("shape", "a search judges its trials on the SLO gates: give `slo`, e.g. ['p95_ms < 2000']")
    ]
    [(_, problem)] = search().check(LoadContext(("a",), 10.0, gates=("gpu_util_mean_pct > 50",)))
    assert "'gpu_util_mean_pct > 50' cannot judge a trial during the run" in problem


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"low": 50, "high": 10}, "high (10) must be >= low (50)"),
        ({"over": "users", "low": 1.5}, "whole numbers of users"),
        ({"max_trials": 101}, "less than or equal to 100"),
    ],
)
def test_bad_search_configs(kw: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        search(**kw)
