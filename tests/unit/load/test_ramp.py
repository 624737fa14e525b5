from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import BackToBack, ConstantPacing, LoadContext, RampLoad

CONTEXT = LoadContext(capabilities=("a",), longest_timeout_s=10.0)


def ramp(**kw: object) -> RampLoad:
    base: dict[str, object] = {"shape": "ramp", "step_users": 2, "step_duration_s": 10.0, "max_users": 6}
    base.update(kw)
    return RampLoad.model_validate(base)


def test_ramp_steps_match_seed_001_flags() -> None:
    # --max-clients 6 --step-size 2 --time-between-ramp 10
    stages = ramp().plan(CONTEXT)
    assert [(s.users, s.start_s, s.end_s) for s in stages] == [(2, 0, 10), (4, 10, 20), (6, 20, 30)]
    assert all(s.spawn_rate == 2 for s in stages)
    assert [s.name for s in stages] == ["step 1", "step 2", "step 3"]


def test_ramp_caps_last_step_and_adds_hold() -> None:
    stages = ramp(step_users=3, max_users=7, hold_s=5.0, spawn_rate=0.5).plan(CONTEXT)
    assert [s.users for s in stages] == [3, 6, 7, 7]
    assert stages[-1].name == "hold" and stages[-1].duration_s == 5.0
    assert {s.spawn_rate for s in stages} == {0.5}


def test_max_users_below_step_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"max_users \(1\) must be >= step_users \(2\)"):
        ramp(max_users=1)


def test_per_user_rate_picks_the_pacer() -> None:
    assert isinstance(ramp().pacer("a"), BackToBack)
    paced = ramp(per_user_rps=4.0).pacer("a")
    assert isinstance(paced, ConstantPacing) and paced.interval_s == 0.25
