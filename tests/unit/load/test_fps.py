"""Load kind `fps` (seed 001's single-client FPS test): one client, back to back, one stage."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.load import BackToBack, FpsLoad, LoadContext, Stage, Wait

CONTEXT = LoadContext(capabilities=("binary", "count"), longest_timeout_s=30.0)


def fps(**kw: object) -> FpsLoad:
    return FpsLoad.model_validate({"shape": "fps", "duration_s": 30, **kw})


def test_one_stage_with_one_user_for_the_duration() -> None:
    assert fps().plan(CONTEXT) == [Stage("fps", 0.0, 30.0, 1, 1.0)]


def test_one_client_on_the_first_capability_unless_named() -> None:
    assert fps().users_per_capability(CONTEXT) == {"binary": 1}
    assert fps(capability="count").users_per_capability(CONTEXT) == {"count": 1}


def test_back_to_back_pacing() -> None:
    pacer = fps().pacer("binary")
    assert isinstance(pacer, BackToBack)
    pacer.start(100.0)
    assert pacer.next_wait(100.5) == Wait(0.0)


def test_the_plan_says_frames_per_second() -> None:
    assert fps(duration_s=12.5).describe(CONTEXT) == (
        "load: fps, 1 client on binary back to back for 12.5 s; "
        "throughput is frames (requests) per second end to end"
    )
    assert not FpsLoad.ends_when_users_stop and not FpsLoad.records_slots


def test_an_unknown_capability_is_named_with_a_hint() -> None:
    assert fps(capability="cont").check(CONTEXT) == [
        ("capability", "no capability named 'cont' (did you mean 'count'?)")
    ]
    assert fps().check(CONTEXT) == []


@pytest.mark.parametrize("bad", [{"duration_s": 0}, {"duration_s": -1}, {"users": 2}])
def test_bad_fields_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        fps(**bad)
