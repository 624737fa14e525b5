"""Load kind `readiness` (seed 001's memory-pressure and rollout tests): the plan, pacing and checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import LoadContext, ReadinessLoad, ReadinessPlan, Wait
from inferswarm.load.cycle import CYCLE_SPAWN_RATE, CyclePacer

CONTEXT = LoadContext(capabilities=("det-a", "det-b", "det-c"), longest_timeout_s=10.0)


def readiness(**kw: object) -> ReadinessLoad:
    return ReadinessLoad.model_validate({"shape": "readiness", "interval_s": 1, "timeout_s": 120, **kw})


def test_one_user_per_detector_all_by_default() -> None:
    assert readiness().users_per_capability(CONTEXT) == {"det-a": 1, "det-b": 1, "det-c": 1}
    chosen = readiness(capabilities=["det-c", "det-a"])
    assert chosen.users_per_capability(CONTEXT) == {"det-c": 1, "det-a": 1}


def test_the_readiness_plan_carries_the_end_condition() -> None:
    assert readiness(connect_timeout_s=60).readiness_plan(CONTEXT) == ReadinessPlan(
        ("det-a", "det-b", "det-c"), 1.0, 120.0, 60.0, poll_routes=True
    )
    # the endpoint's readiness routes are polled unless turned off
    plan = readiness(poll_routes=False).readiness_plan(CONTEXT)
    assert plan is not None and plan.poll_routes is False


def test_one_stage_bounded_by_both_timeouts_and_the_last_answer() -> None:
    [stage] = readiness(connect_timeout_s=60).plan(CONTEXT)
    assert (stage.name, stage.start_s, stage.users) == ("readiness", 0.0, 3)
    assert stage.duration_s == 60 + 120 + 1 + 10
    assert stage.spawn_rate == CYCLE_SPAWN_RATE  # every detector's first query in the same iteration


def test_each_detector_is_paced_one_query_per_iteration() -> None:
    load = readiness(interval_s=2, timeout_s=10, connect_timeout_s=4)
    assert load.iterations == 8  # ceil((4 + 10) / 2) + 1: a backstop behind the owner's timeouts
    pacer = load.pacer("det-a")
    assert isinstance(pacer, CyclePacer)
    pacer.start(100.0)
    assert pacer.slot == 0
    assert pacer.next_wait(100.5) == Wait(pytest.approx(1.5))
    assert pacer.slot == 1
    assert load.ends_when_users_stop and load.records_slots


def test_describe() -> None:
    assert readiness().describe(CONTEXT) == (
        "load: readiness, one query to each of 3 detectors every 1 s until all answer from the edge in "
        "one iteration; gives up 120 s after the first connection (or 600 s without one)"
    )


def test_unknown_and_repeated_detectors_are_named() -> None:
    assert readiness(capabilities=["det-a", "dat-a", "det-a"]).check(CONTEXT) == [
        ("capabilities[1]", "no capability named 'dat-a' (did you mean 'det-a'?)"),
        ("capabilities[2]", "'det-a' is listed twice"),
    ]


@pytest.mark.parametrize(
    "bad",
    [{"interval_s": 0}, {"timeout_s": 0}, {"interval_s": 0.0001, "timeout_s": 600_000}, {"packets": 3}],
)
def test_bad_fields_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        readiness(**bad)
