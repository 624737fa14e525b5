"""Load shapes: a config's load profile as a Locust `LoadTestShape` that records its stage boundaries.

A shape is a fixed list of `Stage`s (computed from the config, so it can be tested without Locust running)
and a tick that walks through them. Each stage's real start and end (epoch seconds) go to
`<prefix>_stages.csv` in the run directory, so reports can split the run into steps.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from locust import LoadTestShape

from inferswarm.config import CycleLoad, LoadConfig, RampLoad, StagesLoad


@dataclass(frozen=True)
class Stage:
    name: str
    start_s: float
    """Planned offset from the start of the shape."""
    duration_s: float
    users: int
    spawn_rate: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def ramp_stages(load: RampLoad) -> list[Stage]:
    """Steps of `step_users` up to `max_users` (the last step is capped at `max_users`), then the hold."""
    spawn_rate = load.spawn_rate or float(load.step_users)
    stages: list[Stage] = []
    users, offset = 0, 0.0
    while users < load.max_users:
        users = min(users + load.step_users, load.max_users)
        stages.append(Stage(f"step {len(stages) + 1}", offset, load.step_duration_s, users, spawn_rate))
        offset += load.step_duration_s
    if load.hold_s > 0:
        stages.append(Stage("hold", offset, load.hold_s, load.max_users, spawn_rate))
    return stages


def explicit_stages(load: StagesLoad) -> list[Stage]:
    stages: list[Stage] = []
    offset, previous = 0.0, 0
    for index, spec in enumerate(load.stages):
        rate = spec.spawn_rate or float(max(abs(spec.users - previous), 1))
        stages.append(Stage(spec.name or f"stage {index + 1}", offset, spec.duration_s, spec.users, rate))
        offset += spec.duration_s
        previous = spec.users
    return stages


# Cycle mode: users start this fast, so one cycle's requests really are in flight together.
CYCLE_SPAWN_RATE = 100.0


def cycle_stages(load: CycleLoad, grace_s: float) -> list[Stage]:
    """One stage holding `packets` users for every cycle plus `grace_s` for the last answers.

    The users stop themselves after their last cycle, and the shape ends as soon as none is left.
    """
    duration = load.cycles * load.interval_s + grace_s
    return [Stage("cycles", 0.0, duration, load.packets, max(CYCLE_SPAWN_RATE, float(load.packets)))]


def stages_for(load: LoadConfig, grace_s: float = 0.0) -> list[Stage]:
    if isinstance(load, RampLoad):
        return ramp_stages(load)
    if isinstance(load, CycleLoad):
        return cycle_stages(load, grace_s)
    return explicit_stages(load)


def stage_at(stages: Sequence[Stage], run_time_s: float) -> int | None:
    """Index of the stage running at `run_time_s`, or None once the last stage is over."""
    for index, stage in enumerate(stages):
        if run_time_s < stage.end_s:
            return index
    return None


STAGE_COLUMNS = [
    "stage",
    "name",
    "users",
    "spawn_rate",
    "planned_start_s",
    "planned_end_s",
    "start_epoch_s",
    "end_epoch_s",
    "completed",
]


class StageListener(Protocol):
    def stage_opened(self, index: int, stage: Stage) -> None: ...

    def stage_closed(self, index: int, completed: bool) -> None: ...


class StageRecorder:
    """Appends one row per finished stage to a CSV, flushed at once so a killed run keeps its boundaries.

    Listeners hear about every stage opened and closed (the per-step statistics use it).
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.listeners: list[StageListener] = []
        self._clock = clock
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._open: tuple[int, Stage, float] | None = None

    def _ensure_file(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(STAGE_COLUMNS)
            self._file.flush()

    def enter(self, index: int | None, stage: Stage | None) -> None:
        """The shape moved to `stage` (None: the shape is over). Closes the previous stage as completed."""
        now = self._clock()
        self._close(now, completed=True)
        if index is not None and stage is not None:
            self._open = (index, stage, now)
            for listener in self.listeners:
                listener.stage_opened(index, stage)

    def finish(self) -> None:
        """The run is ending; a stage still open did not run its full planned duration."""
        self._close(self._clock(), completed=False)
        if self._file is not None:
            self._file.close()
            self._file = None

    def _close(self, now: float, completed: bool) -> None:
        self._ensure_file()
        if self._open is None:
            return
        index, stage, started = self._open
        self._writer.writerow(
            [
                index,
                stage.name,
                stage.users,
                f"{stage.spawn_rate:g}",
                f"{stage.start_s:g}",
                f"{stage.end_s:g}",
                f"{started:.3f}",
                f"{now:.3f}",
                "true" if completed else "false",
            ]
        )
        assert self._file is not None
        self._file.flush()
        self._open = None
        for listener in self.listeners:
            listener.stage_closed(index, completed)


class RecordingShape(LoadTestShape):
    """Walks `stages`; tells the recorder (if one is attached) whenever the stage changes."""

    abstract = True
    stages: ClassVar[tuple[Stage, ...]] = ()

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.recorder: StageRecorder | None = None
        self._current: int | None = -1
        self.completed = False

    def tick(self) -> tuple[int, float] | None:
        index = stage_at(self.stages, self.get_run_time())  # type: ignore[no-untyped-call]
        if index != self._current:
            self._current = index
            self.completed = False  # the web UI can start the same shape again
            if self.recorder is not None:
                self.recorder.enter(index, self.stages[index] if index is not None else None)
        if index is None:
            self.completed = True
            return None
        stage = self.stages[index]
        return stage.users, stage.spawn_rate

    @property
    def planned_duration_s(self) -> float:
        return self.stages[-1].end_s if self.stages else 0.0


class RampShape(RecordingShape):
    abstract = True


class CycleShape(RecordingShape):
    """Ends when every cycle user has stopped itself (after its last cycle), or at the stage's end."""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self._users_seen = False
        self._ended = False

    def reset_time(self) -> None:
        super().reset_time()  # type: ignore[no-untyped-call]
        self._users_seen = self._ended = False

    def tick(self) -> tuple[int, float] | None:
        if self._ended:
            return None
        result = super().tick()
        if result is None:
            return None
        count = self.runner.user_count if self.runner is not None else 0
        if count >= result[0]:
            self._users_seen = True
        elif self._users_seen and count == 0:
            self._ended = self.completed = True
            if self.recorder is not None:
                self.recorder.enter(None, None)
            return None
        return result


class StagesShape(RecordingShape):
    abstract = True


def shape_class_for(load: LoadConfig, grace_s: float = 0.0) -> type[RecordingShape]:
    """A concrete shape class for Locust to find in the locustfile, named after the profile.

    `grace_s` (cycle mode): how long the last cycle's requests may take, i.e. the longest request timeout.
    """
    base: type[RecordingShape]
    if isinstance(load, RampLoad):
        base = RampShape
    elif isinstance(load, CycleLoad):
        base = CycleShape
    else:
        base = StagesShape
    return type(base.__name__, (base,), {"abstract": False, "stages": tuple(stages_for(load, grace_s))})
