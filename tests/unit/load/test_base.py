"""What every load kind shares: stage lookup, the pacers of closed-loop users, the default plan line."""

from __future__ import annotations

import pytest

from inferswarm.load import BackToBack, ConstantPacing, LoadContext, RampLoad, Stage, Wait, stage_at

CONTEXT = LoadContext(capabilities=("a",), longest_timeout_s=10.0)


def ramp() -> RampLoad:
    return RampLoad(shape="ramp", step_users=2, step_duration_s=10.0, max_users=6)


@pytest.mark.parametrize(
    ("t", "index"), [(0.0, 0), (9.99, 0), (10.0, 1), (29.9, 2), (30.0, None), (99, None)]
)
def test_stage_at(t: float, index: int | None) -> None:
    assert stage_at(ramp().plan(CONTEXT), t) == index


def test_stage_end_and_no_stages() -> None:
    assert Stage("s", 2.5, 4.0, 3, 1.0).end_s == 6.5
    assert stage_at([], 0.0) is None


def test_back_to_back_never_waits() -> None:
    pacer = BackToBack()
    pacer.start(100.0)
    assert [pacer.next_wait(100.0 + t) for t in (0.1, 5.0, 60.0)] == [Wait(0.0)] * 3
    assert pacer.slot == 0


def test_constant_pacing_counts_from_request_start_to_request_start() -> None:
    pacer = ConstantPacing(1.0)
    pacer.start(100.0)
    first = pacer.next_wait(100.3)  # the request took 0.3 s
    assert first == Wait(pytest.approx(0.7))
    second = pacer.next_wait(100.3 + 0.7 + 0.5)  # waited 0.7, the next request took 0.5 s
    assert second == Wait(pytest.approx(0.5))
    overrun = pacer.next_wait(101.5 + 0.5 + 2.0)  # a request that overran the interval: next at once
    assert overrun == Wait(0.0)
    assert pacer.next_wait(104.0 + 0.25) == Wait(pytest.approx(0.75))
    assert not (first.stop or second.stop or overrun.stop) and pacer.slot == 0


def test_default_describe_and_hooks() -> None:
    load = RampLoad(shape="ramp", step_users=2, step_duration_s=10.0, max_users=6, hold_s=5)
    assert load.describe(CONTEXT) == "load: ramp, 4 stages, up to 6 users, 35 s"
    assert load.users_per_capability(CONTEXT) is None
    assert load.cycle_plan(CONTEXT) is None
    assert load.check(CONTEXT) == []
    assert (load.axis.column, load.axis.label) == ("users", "users")
    assert not load.ends_when_users_stop and not load.records_slots
