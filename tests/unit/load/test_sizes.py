"""The `sizes` load kind and per-stage capabilities: one size of a tensor sweep per stage, measured alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from inferswarm.load import LoadContext, StagesLoad
from inferswarm.load.sizes import SizesLoad, swept_bases, variants_of
from inferswarm.locust.shape import RecordingShape, shape_class_for

SWEEP = ("other", "double@64x64", "double@256x256", "double@1024x1024")
CONTEXT = LoadContext(capabilities=SWEEP, longest_timeout_s=10.0)


def sizes(**kw: object) -> SizesLoad:
    return SizesLoad.model_validate({"shape": "sizes", "step_duration_s": 5, **kw})


def test_one_stage_per_size_in_config_order_each_running_only_that_size() -> None:
    load = sizes(users=3)
    assert load.check(CONTEXT) == []
    plan = load.plan(CONTEXT)
    assert [(s.name, s.start_s, s.duration_s, s.users, s.capabilities) for s in plan] == [
        ("64x64", 0.0, 5.0, 3, ("double@64x64",)),
        ("256x256", 5.0, 5.0, 3, ("double@256x256",)),
        ("1024x1024", 10.0, 5.0, 3, ("double@1024x1024",)),
    ]
    assert load.describe(CONTEXT) == (
        "load: sizes, 3 users on each size of double for 5 s: 64x64, 256x256, 1024x1024 (15 s)"
    )
    assert swept_bases(SWEEP) == ["double"] and variants_of("double", SWEEP)[0] == "double@64x64"


def test_the_swept_capability_must_have_sizes_and_be_named_when_ambiguous() -> None:
    [(field, problem)] = sizes(capability="other").check(CONTEXT)
    assert field == "capability" and "'other' has no sizes" in problem
    two = LoadContext(capabilities=("a@1", "a@2", "b@1"), longest_timeout_s=1.0)
    [(field, problem)] = sizes().check(two)
    assert "name the tensor capability to sweep (capabilities with sizes: a, b)" in problem
    assert sizes(capability="b").check(two) == []
    none = LoadContext(capabilities=("a",), longest_timeout_s=1.0)
    assert "capabilities with sizes: none" in sizes().check(none)[0][1]


def test_a_stages_list_can_name_its_capabilities_and_they_must_exist() -> None:
    load = StagesLoad.model_validate(
        {
            "shape": "stages",
            "stages": [
                {"duration_s": 2, "users": 1, "capabilities": ["double@64x64"]},
                {"duration_s": 2, "users": 1},
            ],
        }
    )
    assert [s.capabilities for s in load.plan(CONTEXT)] == [("double@64x64",), None]
    assert load.check(CONTEXT) == []
    wrong = StagesLoad.model_validate(
        {"shape": "stages", "stages": [{"duration_s": 2, "users": 1, "capabilities": ["double@65x64"]}]}
    )
    [(field, problem)] = wrong.check(CONTEXT)
    assert field == "stages[0].capabilities" and "did you mean 'double@64x64'" in problem


def test_the_shape_hands_locust_only_the_stages_user_classes() -> None:
    load = sizes(users=2)
    cls = shape_class_for(load, CONTEXT)
    assert issubclass(cls, RecordingShape)
    shape = cls()
    classes = [type(name, (), {}) for name in SWEEP]
    shape.runner = SimpleNamespace(user_classes=classes)  # type: ignore[assignment]
    clock = {"t": 0.0}
    shape.get_run_time = lambda: clock["t"]  # type: ignore[method-assign]
    ticks = []
    for t in (0.0, 1.0, 6.0, 7.0, 11.0, 12.0):
        clock["t"] = t
        ticks.append(shape.tick())
    # a new size first stops every user (Locust does not swap classes at an unchanged count), then starts
    assert [(users, rate, [c.__name__ for c in only]) for users, rate, only in ticks] == [  # type: ignore[misc]
        (2, 2.0, ["double@64x64"]),
        (2, 2.0, ["double@64x64"]),
        (0, 2.0, ["double@256x256"]),
        (2, 2.0, ["double@256x256"]),
        (0, 2.0, ["double@1024x1024"]),
        (2, 2.0, ["double@1024x1024"]),
    ]
    clock["t"] = 15.0
    assert shape.tick() is None


@pytest.mark.parametrize("bad", [{"users": 0}, {"step_duration_s": 0}, {"spawn_rate": -1}])
def test_bounds(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sizes(**bad)
