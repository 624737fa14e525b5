"""The load kind's plan as a Locust `LoadTestShape` that records each stage's real start and end.

The stages come from the load kind (`inferswarm.load`), computed without Locust. The shape walks them
and tells the `StageRecorder`, which appends one row per finished stage to `PREFIX_stages.csv` (flushed
at once, so a killed run keeps its boundaries) and tells its listeners (the per-step statistics).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

from locust import LoadTestShape, User

from inferswarm.load import LoadContext, LoadKind, Stage, stage_at
from inferswarm.rundir import STAGE_COLUMNS, CsvAppender


class StagePlanner(Protocol):
    """Decides the next stage when the planned ones are over (a search's next trial), or None: done."""

    def next_stage(self, index: int, start_s: float) -> Stage | None: ...

    def reset(self) -> None: ...


class StageListener(Protocol):
    def stage_opened(self, index: int, stage: Stage) -> None: ...

    def stage_closed(self, index: int, completed: bool) -> None: ...


class StageRecorder:
    """Appends one row per finished stage; listeners hear about every stage opened and closed."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.listeners: list[StageListener] = []
        self._clock = clock
        self._csv: CsvAppender | None = None
        self._open: tuple[int, Stage, float] | None = None

    def enter(self, index: int | None, stage: Stage | None) -> None:
        """The shape moved to `stage` (None: the shape is over). Closes the previous stage as completed."""
        now = self._clock()
        self._close(now, completed=True)
        if index is not None and stage is not None:
            self._open = (index, stage, now)
            for listener in self.listeners:
                listener.stage_opened(index, stage)

    def interrupt(self) -> None:
        """The test was stopped; a stage still open did not run its full planned duration."""
        self._close(self._clock(), completed=False)

    def finish(self) -> None:
        """The run is ending: close an open stage as interrupted, and the file."""
        self.interrupt()
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def _close(self, now: float, completed: bool) -> None:
        if self._csv is None:
            self._csv = CsvAppender(self.path, STAGE_COLUMNS)
        if self._open is None:
            return
        index, stage, started = self._open
        row = [
            index,
            stage.name,
            stage.users,
            f"{stage.spawn_rate:g}",
            f"{stage.start_s:g}",
            f"{stage.end_s:g}",
            f"{started:.3f}",
            f"{now:.3f}",
            "true" if completed else "false",
            "" if stage.rps is None else f"{stage.rps:g}",
        ]
        self._csv.rows([row])
        self._open = None
        for listener in self.listeners:
            listener.stage_closed(index, completed)


class RecordingShape(LoadTestShape):
    """Walks `stages`; tells the recorder (if one is attached) whenever the stage changes.

    With `ends_when_users_stop` (cycle mode) the shape also ends as soon as every user has stopped
    itself after its last scheduled request.
    """

    abstract = True
    stages: ClassVar[tuple[Stage, ...]] = ()
    ends_when_users_stop: ClassVar[bool] = False
    longest_s: ClassVar[float | None] = None
    """How long a plan made as the run goes may last; None: the stages' end."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.recorder: StageRecorder | None = None
        self.planner: StagePlanner | None = None
        """Adds stages as the run goes (attached by the owner for a load kind that plans as it goes)."""
        self.plan: tuple[Stage, ...] = self.stages
        """The stages of this run so far: the class's, plus those the planner added."""
        self._planned_all = False
        self._current: int | None = -1
        self.completed = False
        self._users_seen = False
        self._ended = False
        self._classes_of: tuple[str, ...] | None = None
        """The capabilities of the last stage that named its own (see `tick`)."""
        self._classes_running = False

    def reset_time(self) -> None:
        # Locust calls this twice per run on a master (start_shape, then start() after the first
        # tick): a reset in the middle of the first stage keeps that stage open rather than
        # recording it twice. Only a shape that has ended (the web UI starting it again) restarts.
        super().reset_time()  # type: ignore[no-untyped-call]
        if self._ended or self.completed or self._current is None:
            self._current = -1
            self._restart_plan()
        self._users_seen = self._ended = False
        self.completed = False

    def stopped(self) -> None:
        """The test was stopped before the shape ended: the open stage is interrupted, and a later
        start (web UI) begins again at the first stage."""
        if self.recorder is not None:
            self.recorder.interrupt()
        self._current = -1
        self._restart_plan()

    def _restart_plan(self) -> None:
        self.plan = self.stages
        self._planned_all = False
        if self.planner is not None:
            self.planner.reset()

    def end(self) -> None:
        """End the shape at its next tick: a load kind's end condition was met (readiness). The open
        stage closes as completed."""
        if not self._ended:
            self._ended = self.completed = True
            if self.recorder is not None:
                self.recorder.enter(None, None)

    def tick(self) -> tuple[int, float] | tuple[int, float, list[type[User]]] | None:
        if self._ended:
            return None
        run_time: float = self.get_run_time()  # type: ignore[no-untyped-call]
        index = stage_at(self.plan, run_time)
        if index is None and self.planner is not None and self._current is not None and not self._planned_all:
            index = self._plan_next(run_time)
        if index != self._current:
            self._current = index
            self.completed = False  # the web UI can start the same shape again
            if self.recorder is not None:
                self.recorder.enter(index, self.plan[index] if index is not None else None)
        if index is None:
            self.completed = True
            return None
        stage = self.plan[index]
        if self.ends_when_users_stop and self._all_users_stopped(stage.users):
            self._ended = self.completed = True
            if self.recorder is not None:
                self.recorder.enter(None, None)
            return None
        if stage.capabilities is None:
            return stage.users, stage.spawn_rate
        # Locust runs only the user classes a shape names. Its dispatcher does not swap one class's users
        # for another's at an unchanged user count, so a stage that changes the classes first stops
        # every user (one tick), then starts its own.
        classes = [c for c in self.runner.user_classes if c.__name__ in stage.capabilities]  # type: ignore[union-attr]
        if stage.capabilities != self._classes_of:
            self._classes_of = stage.capabilities
            if self._classes_running:
                self._classes_running = False
                return 0, stage.spawn_rate, classes
        self._classes_running = True
        return stage.users, stage.spawn_rate, classes

    def _plan_next(self, run_time: float) -> int | None:
        """The planned stages are over: close the last (its statistics are then final), ask for the next."""
        assert self.planner is not None
        if self.recorder is not None:
            self.recorder.enter(None, None)
        stage = self.planner.next_stage(len(self.plan), run_time)
        if stage is None:
            self._planned_all = True  # the shape ends at this tick
            return None
        self.plan = (*self.plan, stage)
        return len(self.plan) - 1

    def _all_users_stopped(self, planned: int) -> bool:
        count = self.runner.user_count if self.runner is not None else 0
        if count >= planned:
            self._users_seen = True
            return False
        return self._users_seen and count == 0

    @property
    def planned_duration_s(self) -> float:
        """How long the plan lasts (for a plan made as the run goes, the longest it may last)."""
        if self.longest_s is not None:
            return self.longest_s
        return self.stages[-1].end_s if self.stages else 0.0


def shape_class_for(load: LoadKind, context: LoadContext) -> type[RecordingShape]:
    """A concrete shape class for Locust to find in the locustfile, named after the load kind."""
    name = f"{load.shape.capitalize()}Shape"
    attrs = {
        "abstract": False,
        "stages": tuple(load.plan(context)),
        "ends_when_users_stop": load.ends_when_users_stop,
        "longest_s": load.longest_s(context),
    }
    return type(name, (RecordingShape,), attrs)
