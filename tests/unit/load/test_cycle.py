"""Cycle mode (seed 000): the plan, the per-user pacer with its skipped and final cycles, the checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import CycleLoad, CyclePlan, LoadContext, Wait
from inferswarm.load.cycle import CYCLE_SPAWN_RATE, CyclePacer

CONTEXT = LoadContext(capabilities=("text-to-image", "prompt-enhance", "gpu-check"), longest_timeout_s=30.0)


def cycle(**kw: object) -> CycleLoad:
    base: dict[str, object] = {"shape": "cycle", "packets": 5, "interval_s": 2.0, "cycles": 3}
    base.update(kw)
    return CycleLoad.model_validate(base)


def test_packets_are_shared_round_robin_over_all_capabilities_by_default() -> None:
    plan = cycle().cycle_plan(CONTEXT)
    assert plan == CyclePlan(5, 2.0, 3, {"text-to-image": 2, "prompt-enhance": 2, "gpu-check": 1})
    assert list(plan.users) == ["text-to-image", "prompt-enhance", "gpu-check"]  # config order
    assert cycle().users_per_capability(CONTEXT) == plan.users


def test_only_the_chosen_capabilities_and_none_without_a_packet() -> None:
    chosen = cycle(packets=3, capabilities=["gpu-check", "text-to-image"]).cycle_plan(CONTEXT)
    assert chosen.users == {"gpu-check": 2, "text-to-image": 1}
    fewer = cycle(packets=2).cycle_plan(CONTEXT)
    assert fewer.users == {"text-to-image": 1, "prompt-enhance": 1}  # gpu-check gets none: no user


def test_one_stage_for_every_cycle_plus_the_longest_timeout() -> None:
    [stage] = cycle().plan(CONTEXT)
    assert (stage.name, stage.start_s, stage.duration_s, stage.users) == ("cycles", 0.0, 3 * 2.0 + 30.0, 5)
    assert stage.spawn_rate == CYCLE_SPAWN_RATE
    [big] = cycle(packets=500).plan(CONTEXT)
    assert big.spawn_rate == 500.0  # a cycle's users all start within a second


def test_kind_flags() -> None:
    load = cycle()
    assert load.ends_when_users_stop and load.records_slots
    assert isinstance(load.pacer("gpu-check"), CyclePacer)
    assert load.describe(CONTEXT) == "load: cycle, 5 requests every 2 s, 3 cycles (about 6 s)"


def test_pacer_one_request_per_cycle_then_stop() -> None:
    pacer = CyclePacer(interval_s=1.0, cycles=3)
    pacer.start(100.0)
    assert pacer.slot == 0
    assert pacer.next_wait(100.2) == Wait(pytest.approx(0.8))
    assert pacer.slot == 1
    assert pacer.next_wait(101.4) == Wait(pytest.approx(0.6))
    assert pacer.slot == 2
    assert pacer.next_wait(102.1) == Wait(0.0, (), stop=True)  # three cycles sent: the user is done


def test_pacer_skips_the_cycles_a_request_overran() -> None:
    pacer = CyclePacer(interval_s=1.0, cycles=6)
    pacer.start(100.0)
    late = pacer.next_wait(103.5)  # cycle 0's request took 3.5 s: cycles 1 and 2 passed entirely
    assert late.skipped == (1, 2) and not late.stop
    assert pacer.slot == 3 and late.seconds == 0.0  # cycle 3 started at 103.0: send it at once
    assert pacer.next_wait(103.7) == Wait(pytest.approx(0.3))  # back on the grid: cycle 4 at 104.0
    assert pacer.slot == 4


def test_pacer_overrunning_the_last_cycles_reports_them_and_stops() -> None:
    pacer = CyclePacer(interval_s=1.0, cycles=3)
    pacer.start(0.0)
    assert pacer.next_wait(5.0) == Wait(0.0, (1, 2), stop=True)


def test_pacer_start_resets_the_schedule() -> None:
    pacer = CyclePacer(interval_s=1.0, cycles=3)
    pacer.start(0.0)
    pacer.next_wait(0.5)
    pacer.start(50.0)
    assert pacer.slot == 0 and pacer.next_wait(50.1) == Wait(pytest.approx(0.9))


def test_check_names_unknown_capabilities_with_a_suggestion() -> None:
    load = cycle(capabilities=["text-to-image", "gpu-chek", "zzz"])
    assert load.check(CONTEXT) == [
        ("capabilities[1]", "no capability named 'gpu-chek' (did you mean 'gpu-check'?)"),
        ("capabilities[2]", "no capability named 'zzz' (known: text-to-image, prompt-enhance, gpu-check)"),
    ]
    assert cycle().check(CONTEXT) == []


@pytest.mark.parametrize(
    ("field", "value"), [("packets", 0), ("packets", 10_001), ("interval_s", 0), ("cycles", 0)]
)
def test_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        cycle(**{field: value})
