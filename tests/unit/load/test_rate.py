from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import RATE_AXIS, Arrival, ArrivalSpec, LoadContext, RateLoad

CONTEXT = LoadContext(capabilities=("a", "b"), longest_timeout_s=10.0, weights=(3, 1))


def rate(**kw: object) -> RateLoad:
    base: dict[str, object] = {"shape": "rate"}
    base.update(kw)
    return RateLoad.model_validate(base)


def test_steps_of_rate_are_the_open_loop_ramp() -> None:
    load = rate(start_rps=10, step_rps=10, step_duration_s=5, max_rps=35, hold_s=3, max_concurrency=40)
    stages = load.plan(CONTEXT)
    assert [(s.name, s.rps, s.start_s, s.duration_s) for s in stages] == [
        ("step 1", 10, 0, 5),
        ("step 2", 20, 5, 5),
        ("step 3", 30, 10, 5),
        ("step 4", 35, 15, 5),
        ("hold", 35, 20, 3),
    ]
    # users are the ceiling on requests in flight, the same in every stage (no respawning)
    assert {(s.users, s.spawn_rate) for s in stages} == {(40, 400.0)}
    assert load.axis == RATE_AXIS and load.axis.column == "rps"


def test_a_list_of_rate_stages() -> None:
    load = rate(stages=[{"duration_s": 2, "rps": 5}, {"duration_s": 3, "rps": 50, "name": "spike"}])
    assert [(s.name, s.rps, s.end_s) for s in load.plan(CONTEXT)] == [("stage 1", 5, 2), ("spike", 50, 5)]
    assert load.arrivals() == ArrivalSpec(Arrival.POISSON, 1.0, 0)


def test_the_arrival_process_and_seed_come_from_the_config() -> None:
    load = rate(stages=[{"duration_s": 1, "rps": 1}], arrival="gamma", burstiness=0.5, seed=9)
    assert load.arrivals() == ArrivalSpec(Arrival.GAMMA, 0.5, 9)


def test_describe_gives_rates_durations_and_expected_requests() -> None:
    load = rate(start_rps=10, step_rps=10, step_duration_s=5, max_rps=30, arrival="constant", seed=2)
    assert load.describe(CONTEXT) == (
        "load: rate, constant arrivals, seed 2: 10 rps x 5 s, 20 rps x 5 s, 30 rps x 5 s; "
        "about 300 requests over 15 s, at most 100 in flight"
    )


def test_the_context_splits_by_weight() -> None:
    assert CONTEXT.shares() == {"a": 0.75, "b": 0.25}


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({}, "give stages, or steps of rate with start_rps, step_duration_s, max_rps"),
        ({"start_rps": 10, "step_duration_s": 5, "max_rps": 20}, "step_rps is needed"),
        (
            {"start_rps": 20, "step_rps": 5, "step_duration_s": 5, "max_rps": 10},
            "max_rps (10) must be >= start_rps",
        ),
        ({"stages": [{"duration_s": 1, "rps": 1}], "start_rps": 3}, "not both (start_rps)"),
        (
            {"stages": [{"duration_s": 1, "rps": 1}], "burstiness": 0.5},
            "burstiness applies to gamma arrivals only",
        ),
        ({"stages": [{"duration_s": 1, "rps": 0}]}, "greater than 0"),
        ({"stages": [{"duration_s": 1, "rps": 1}], "arrival": "uniform"}, "'constant', 'poisson' or 'gamma'"),
        ({"start_rps": 1, "step_rps": 0.0001, "step_duration_s": 1, "max_rps": 100}, "at most 10000"),
    ],
)
def test_bad_rate_configs_say_what_is_wrong(kw: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        rate(**kw)
