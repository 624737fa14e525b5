"""Numbers the report needs that Locust's CSVs do not keep: exact per-step latency histograms and
request counts.

Locust's stats history holds *windowed* percentiles (the last 10 s), which mix neighbouring steps when
steps are short. So at each stage's start, after its warm-up, and at its end, the cumulative
response-time histograms (Locust's own rounding) are snapshotted and the measured window's difference
is written:

  PREFIX_steps.csv          stage, name, requests, failures, window_start_epoch_s, window_end_epoch_s,
                            warmup_s
  PREFIX_step_latency.csv   stage, name, response_time_ms, count
(Columns: `inferswarm.rundir`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment

from inferswarm.load import Stage
from inferswarm.rundir import LATENCY_COLUMNS, STEPS_COLUMNS, CsvAppender, RunFiles

AGGREGATED = "Aggregated"


@dataclass
class Snapshot:
    epoch_s: float
    entries: dict[str, tuple[int, int, dict[int, int]]]  # name -> (requests, failures, histogram)


def snapshot(environment: Environment, clock: Callable[[], float] = time.time) -> Snapshot:
    stats = environment.stats
    entries = {
        entry.name: (entry.num_requests, entry.num_failures, dict(entry.response_times))
        for entry in stats.entries.values()
    }
    total = stats.total
    entries[AGGREGATED] = (total.num_requests, total.num_failures, dict(total.response_times))
    return Snapshot(clock(), entries)


def difference(before: Snapshot, after: Snapshot) -> dict[str, tuple[int, int, dict[int, int]]]:
    out: dict[str, tuple[int, int, dict[int, int]]] = {}
    for name, (requests, failures, hist) in after.entries.items():
        base_requests, base_failures, base_hist = before.entries.get(name, (0, 0, {}))
        delta = {ms: n - base_hist.get(ms, 0) for ms, n in hist.items() if n - base_hist.get(ms, 0) > 0}
        if requests - base_requests or failures - base_failures:
            out[name] = (requests - base_requests, failures - base_failures, delta)
    return out


class StepStats:
    """Listens to the stage recorder; writes each step's measured window when the step ends."""

    def __init__(self, environment: Environment, files: RunFiles, warmup_s: float) -> None:
        self.environment = environment
        self.warmup_s = warmup_s
        self.steps = CsvAppender(files.path("steps"), STEPS_COLUMNS)
        self.latency = CsvAppender(files.path("step_latency"), LATENCY_COLUMNS)
        self._start: Snapshot | None = None
        self._measured_from: Snapshot | None = None
        self._warmup_used = 0.0
        self._timer: gevent.Greenlet[Any, Any] | None = None
        self.last_window: tuple[dict[str, tuple[int, int, dict[int, int]]], float] | None = None
        """The last closed step's measured window and its length in seconds (None: nothing measured)."""

    def stage_opened(self, index: int, stage: Stage) -> None:
        self._start = snapshot(self.environment)
        self._measured_from = None
        # never let the warm-up eat more than half a step
        self._warmup_used = min(self.warmup_s, stage.duration_s / 2)
        if self._warmup_used <= 0:
            self._measured_from = self._start
        else:
            self._timer = gevent.spawn_later(self._warmup_used, self._warmed_up)

    def _warmed_up(self) -> None:
        self._measured_from = snapshot(self.environment)

    def stage_closed(self, index: int, completed: bool) -> None:
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None
        start = self._measured_from
        self._start = self._measured_from = None
        self.last_window = None
        if start is None:  # the step ended inside its warm-up: nothing measured
            return
        end = snapshot(self.environment)
        window = [f"{start.epoch_s:.3f}", f"{end.epoch_s:.3f}", f"{self._warmup_used:g}"]
        diff = difference(start, end)
        self.last_window = (diff, end.epoch_s - start.epoch_s)
        self.steps.rows([[index, name, req, fail, *window] for name, (req, fail, _) in sorted(diff.items())])
        self.latency.rows(
            [
                [index, name, ms, count]
                for name, (_, _, hist) in sorted(diff.items())
                for ms, count in sorted(hist.items())
            ]
        )

    def close(self) -> None:
        self.steps.close()
        self.latency.close()
