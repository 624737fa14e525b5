"""The load kind's plan as a Locust shape: ticks, the stages file, cycle mode's early end."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

from inferswarm.config import RampLoad, StagesLoad, StageSpec
from inferswarm.load import CycleLoad, LoadContext, SearchLoad, Stage
from inferswarm.locust.shape import RecordingShape, StageRecorder, shape_class_for

CONTEXT = LoadContext(capabilities=("a",), longest_timeout_s=10.0)


def ramp(**kw: object) -> RampLoad:
    base: dict[str, object] = {"shape": "ramp", "step_users": 2, "step_duration_s": 10.0, "max_users": 6}
    base.update(kw)
    return RampLoad.model_validate(base)


class FakeClock:
    def __init__(self) -> None:
        self.run_time = 0.0
        self.epoch = 1_700_000_000.0


def make_shape(load: RampLoad | CycleLoad, clock: FakeClock) -> RecordingShape:
    cls = shape_class_for(load, CONTEXT)
    assert issubclass(cls, RecordingShape) and not cls.abstract
    assert cls.stages == tuple(load.plan(CONTEXT))
    shape = cls()
    shape.get_run_time = lambda: clock.run_time  # type: ignore[method-assign]
    return shape


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_ramp_shape_class() -> None:
    cls = shape_class_for(ramp(), CONTEXT)
    assert cls.__name__ == "RampShape" and not cls.ends_when_users_stop
    assert cls().planned_duration_s == 30


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
    rows = read_rows(tmp_path / "stages.csv")
    assert [(r["users"], r["start_epoch_s"], r["end_epoch_s"], r["completed"]) for r in rows] == [
        ("2", "1700000000.000", "1700000010.000", "true"),
        ("4", "1700000010.000", "1700000020.000", "true"),
        ("6", "1700000020.000", "1700000030.000", "true"),
    ]
    assert [
        (r["stage"], r["name"], r["spawn_rate"], r["planned_start_s"], r["planned_end_s"]) for r in rows
    ] == [
        ("0", "step 1", "2", "0", "10"),
        ("1", "step 2", "2", "10", "20"),
        ("2", "step 3", "2", "20", "30"),
    ]


def test_interrupted_stage_is_closed_as_incomplete(tmp_path: Path) -> None:
    clock = FakeClock()
    shape = make_shape(ramp(), clock)
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    for second in (0, 5, 11, 14):
        clock.run_time = float(second)
        shape.tick()
    shape.recorder.finish()  # the run stops during step 2
    rows = read_rows(tmp_path / "stages.csv")
    assert [(r["stage"], r["completed"], r["end_epoch_s"]) for r in rows] == [
        ("0", "true", "1700000011.000"),
        ("1", "false", "1700000014.000"),
    ]
    assert not shape.completed


def test_stages_shape_class_name() -> None:
    cls = shape_class_for(StagesLoad(shape="stages", stages=[StageSpec(duration_s=1, users=1)]), CONTEXT)
    assert cls.__name__ == "StagesShape" and issubclass(cls, RecordingShape)
    assert cls().planned_duration_s == 1


class Listener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int, object]] = []

    def stage_opened(self, index: int, stage: Stage) -> None:
        self.heard.append(("opened", index, stage.name))

    def stage_closed(self, index: int, completed: bool) -> None:
        self.heard.append(("closed", index, completed))


def test_recorder_tells_its_listeners_and_writes_the_header_even_without_stages(tmp_path: Path) -> None:
    listener = Listener()
    recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: 5.0)
    recorder.listeners.append(listener)
    recorder.enter(0, Stage("warm", 0.0, 1.0, 1, 1.0))
    recorder.enter(1, Stage("hot", 1.0, 1.0, 2, 1.0))
    recorder.finish()
    assert listener.heard == [
        ("opened", 0, "warm"),
        ("closed", 0, True),
        ("opened", 1, "hot"),
        ("closed", 1, False),
    ]
    empty = StageRecorder(tmp_path / "empty.csv")
    empty.finish()  # a run stopped before its first tick still leaves a readable (empty) file
    assert (tmp_path / "empty.csv").read_text().splitlines() == [
        "stage,name,users,spawn_rate,planned_start_s,planned_end_s,start_epoch_s,end_epoch_s,completed,rps"
    ]


def test_cycle_shape_ends_when_every_user_has_stopped(tmp_path: Path) -> None:
    load = CycleLoad(shape="cycle", packets=4, interval_s=1.0, cycles=3)
    cls = shape_class_for(load, CONTEXT)
    assert cls.__name__ == "CycleShape" and cls.ends_when_users_stop
    clock = FakeClock()
    shape = make_shape(load, clock)
    runner = SimpleNamespace(user_count=0)
    shape.runner = runner
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    spawn_rate = load.plan(CONTEXT)[0].spawn_rate
    ticks = []
    for second, users in [(0, 0), (1, 2), (2, 4), (3, 3), (4, 1), (5, 0), (6, 0)]:
        clock.run_time, runner.user_count = float(second), users
        ticks.append(shape.tick())
    # no users yet (spawning) is not "all stopped"; the users stopping themselves one by one is not
    # a reason to spawn again (the tick stays the same); the last one stopping ends the shape
    assert ticks == [(4, spawn_rate)] * 5 + [None, None]
    assert shape.completed
    shape.recorder.finish()
    rows = read_rows(tmp_path / "stages.csv")
    assert [(r["stage"], r["users"], r["end_epoch_s"], r["completed"]) for r in rows] == [
        ("0", "4", "1700000005.000", "true")
    ]


def test_cycle_shape_can_run_again_after_reset(tmp_path: Path) -> None:
    """The web UI can start the same shape again: the second run is a new stage, not yet completed."""
    load = CycleLoad(shape="cycle", packets=1, interval_s=1.0, cycles=1)
    clock = FakeClock()
    shape = make_shape(load, clock)
    runner = SimpleNamespace(user_count=1)
    shape.runner = runner
    listener = Listener()
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    shape.recorder.listeners.append(listener)
    assert shape.tick() is not None
    clock.run_time, runner.user_count = 2.0, 0
    assert shape.tick() is None and shape.completed
    shape.reset_time()
    clock.run_time, runner.user_count = 0.0, 0
    assert shape.tick() == (1, load.plan(CONTEXT)[0].spawn_rate)
    assert not shape.completed  # the second run is under way; stopped now, it did not complete
    assert listener.heard == [("opened", 0, "cycles"), ("closed", 0, True), ("opened", 0, "cycles")]


def test_a_masters_second_reset_in_the_first_stage_records_it_once(tmp_path: Path) -> None:
    """A master resets the shape's clock in start_shape and again in start() after the first tick."""
    clock = FakeClock()
    shape = make_shape(ramp(), clock)
    listener = Listener()
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    shape.recorder.listeners.append(listener)
    shape.reset_time()
    assert shape.tick() == (2, 2.0)
    shape.reset_time()
    for second in range(0, 31):
        clock.run_time = float(second)
        shape.tick()
    shape.recorder.finish()
    rows = read_rows(tmp_path / "stages.csv")
    assert [(r["stage"], r["users"], r["completed"]) for r in rows] == [
        ("0", "2", "true"),
        ("1", "4", "true"),
        ("2", "6", "true"),
    ]
    assert [h for h in listener.heard if h[0] == "opened"] == [
        ("opened", 0, "step 1"),
        ("opened", 1, "step 2"),
        ("opened", 2, "step 3"),
    ]


def test_a_stopped_test_interrupts_its_stage_and_starts_again_at_the_first(tmp_path: Path) -> None:
    clock = FakeClock()
    shape = make_shape(ramp(), clock)
    shape.recorder = StageRecorder(tmp_path / "stages.csv", clock=lambda: clock.epoch + clock.run_time)
    for second in (0, 5):
        clock.run_time = float(second)
        shape.tick()
    shape.stopped()  # test_stop from the web UI, in the middle of stage 0
    shape.reset_time()
    clock.run_time = 0.0
    assert shape.tick() == (2, 2.0)
    shape.recorder.finish()
    rows = read_rows(tmp_path / "stages.csv")
    assert [(r["stage"], r["completed"]) for r in rows] == [("0", "false"), ("0", "false")]


def test_planned_duration_is_the_longest_a_plan_made_as_it_goes_may_last() -> None:
    search = SearchLoad(shape="search", low=1, high=8, trial_s=5, max_trials=4)
    assert shape_class_for(search, CONTEXT)().planned_duration_s == 20  # only the first trial is planned

    class HandMade(RecordingShape):  # a shape written without a load kind: its stages' end
        abstract = False
        stages = (Stage("a", 0.0, 3.0, 1, 1.0), Stage("b", 3.0, 4.5, 2, 1.0))

    assert HandMade().planned_duration_s == 7.5
