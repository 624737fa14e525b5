from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inferswarm.config import RampLoad, StagesLoad, StageSpec
from inferswarm.shapes import (
    RampShape,
    StageRecorder,
    StagesShape,
    ramp_stages,
    shape_class_for,
    stage_at,
    stages_for,
)


def ramp(**kw: object) -> RampLoad:
    base: dict[str, object] = {"shape": "ramp", "step_users": 2, "step_duration_s": 10.0, "max_users": 6}
    base.update(kw)
    return RampLoad.model_validate(base)


def test_ramp_steps_match_seed_001_flags() -> None:
    # --max-clients 6 --step-size 2 --time-between-ramp 10
    stages = ramp_stages(ramp())
    assert [(s.users, s.start_s, s.end_s) for s in stages] == [(2, 0, 10), (4, 10, 20), (6, 20, 30)]
    assert all(s.spawn_rate == 2 for s in stages)


def test_ramp_caps_last_step_and_adds_hold() -> None:
    stages = ramp_stages(ramp(step_users=3, max_users=7, hold_s=5.0, spawn_rate=0.5))
    assert [s.users for s in stages] == [3, 6, 7, 7]
    assert stages[-1].name == "hold" and stages[-1].duration_s == 5.0
    assert {s.spawn_rate for s in stages} == {0.5}


def test_explicit_stages_default_spawn_rate_reaches_target_in_one_second() -> None:
    load = StagesLoad(
        shape="stages",
        stages=[
            StageSpec(duration_s=5, users=10),
            StageSpec(duration_s=5, users=4, spawn_rate=1, name="cool"),
            StageSpec(duration_s=2, users=4),
        ],
    )
    stages = stages_for(load)
    assert [(s.name, s.users, s.spawn_rate, s.start_s) for s in stages] == [
        ("stage 1", 10, 10.0, 0),
        ("cool", 4, 1.0, 5),
        ("stage 3", 4, 1.0, 10),
    ]


@pytest.mark.parametrize(
    ("t", "index"), [(0.0, 0), (9.99, 0), (10.0, 1), (29.9, 2), (30.0, None), (99, None)]
)
def test_stage_at(t: float, index: int | None) -> None:
    assert stage_at(ramp_stages(ramp()), t) == index


class FakeClock:
    def __init__(self) -> None:
        self.run_time = 0.0
        self.epoch = 1_700_000_000.0


def make_shape(load: RampLoad, clock: FakeClock) -> RampShape:
    cls = shape_class_for(load)
    assert cls.__name__ == "RampShape" and issubclass(cls, RampShape) and not cls.abstract
    shape = cls()
    shape.get_run_time = lambda: clock.run_time  # type: ignore[method-assign]
    return shape  # type: ignore[return-value]


def test_tick_sequence_and_recorded_boundaries(tmp_path: Path) -> None:
    clock = FakeClock()
    shape = make_shape(ramp(), clock)
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    ticks = []
    for second in range(0, 33):
        clock.run_time = float(second)
        ticks.append(shape.tick())
    assert ticks[:10] == [(2, 2.0)] * 10
    assert ticks[10:20] == [(4, 2.0)] * 10
    assert ticks[20:30] == [(6, 2.0)] * 10
    assert ticks[30:] == [None] * 3
    assert shape.completed
    shape.recorder.finish()
    rows = list(csv.DictReader((tmp_path / "stages.csv").open()))
    assert [(r["users"], r["start_epoch_s"], r["end_epoch_s"], r["completed"]) for r in rows] == [
        ("2", "1700000000.000", "1700000010.000", "true"),
        ("4", "1700000010.000", "1700000020.000", "true"),
        ("6", "1700000020.000", "1700000030.000", "true"),
    ]


def test_interrupted_stage_is_closed_as_incomplete(tmp_path: Path) -> None:
    clock = FakeClock()
    shape = make_shape(ramp(), clock)
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    for second in (0, 5, 11, 14):
        clock.run_time = float(second)
        shape.tick()
    shape.recorder.finish()  # the run stops during step 2
    rows = list(csv.DictReader((tmp_path / "stages.csv").open()))
    assert [(r["stage"], r["completed"], r["end_epoch_s"]) for r in rows] == [
        ("0", "true", "1700000011.000"),
        ("1", "false", "1700000014.000"),
    ]
    assert not shape.completed


def test_stages_shape_class_name() -> None:
    cls = shape_class_for(StagesLoad(shape="stages", stages=[StageSpec(duration_s=1, users=1)]))
    assert cls.__name__ == "StagesShape" and issubclass(cls, StagesShape)
    assert cls().planned_duration_s == 1
