"""Numbers the report needs that Locust's CSVs do not keep: exact per-step latency histograms and
request counts, and the HTTP status codes each capability received.

Locust's stats history holds *windowed* percentiles (the last 10 s), which mix neighbouring steps when
steps are short. So at each stage's start, after its warm-up, and at its end, the cumulative
response-time histograms (Locust's own rounding) are snapshotted and the measured window's difference
is written:

  PREFIX_steps.csv          stage, name, requests, failures, window_start_epoch_s, window_end_epoch_s,
                            warmup_s
  PREFIX_step_latency.csv   stage, name, response_time_ms, count
  PREFIX_status_codes.csv   name, status, count        (0 = no HTTP response)

Workers count status codes locally and ship them with Locust's own stats report.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.shapes import Stage

AGGREGATED = "Aggregated"
STEPS_COLUMNS = [
    "stage",
    "name",
    "requests",
    "failures",
    "window_start_epoch_s",
    "window_end_epoch_s",
    "warmup_s",
]
LATENCY_COLUMNS = ["stage", "name", "response_time_ms", "count"]
STATUS_COLUMNS = ["name", "status", "count"]
REPORT_KEY = "inferswarm_status"

# (capability, HTTP status) -> count, in this process; users add to it, a worker ships and clears it
status_counts: Counter[tuple[str, int]] = Counter()


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


class _Csv:
    def __init__(self, path: Path, columns: list[str]) -> None:
        self.handle = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.writer.writerow(columns)
        self.handle.flush()

    def rows(self, rows: list[list[Any]]) -> None:
        self.writer.writerows(rows)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class StepStats:
    """Listens to the stage recorder; writes each step's measured window when the step ends."""

    def __init__(self, environment: Environment, run_dir: Path, prefix: str, warmup_s: float) -> None:
        self.environment = environment
        self.warmup_s = warmup_s
        self.steps = _Csv(run_dir / f"{prefix}_steps.csv", STEPS_COLUMNS)
        self.latency = _Csv(run_dir / f"{prefix}_step_latency.csv", LATENCY_COLUMNS)
        self.status_path = run_dir / f"{prefix}_status_codes.csv"
        self._start: Snapshot | None = None
        self._measured_from: Snapshot | None = None
        self._warmup_used = 0.0
        self._timer: gevent.Greenlet[Any, Any] | None = None

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
        self.write_status_codes()
        if start is None:  # the step ended inside its warm-up: nothing measured
            return
        end = snapshot(self.environment)
        window = [f"{start.epoch_s:.3f}", f"{end.epoch_s:.3f}", f"{self._warmup_used:g}"]
        diff = difference(start, end)
        self.steps.rows([[index, name, req, fail, *window] for name, (req, fail, _) in sorted(diff.items())])
        self.latency.rows(
            [
                [index, name, ms, count]
                for name, (_, _, hist) in sorted(diff.items())
                for ms, count in sorted(hist.items())
            ]
        )

    def write_status_codes(self) -> None:
        tmp = self.status_path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(STATUS_COLUMNS)
            writer.writerows([name, status, n] for (name, status), n in sorted(status_counts.items()))
        tmp.replace(self.status_path)

    def close(self) -> None:
        self.write_status_codes()
        self.steps.close()
        self.latency.close()


def wire_status_codes(environment: Environment) -> None:
    """Workers add their status counts to Locust's stats report; the master merges them."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def report(client_id: str, data: dict[str, Any]) -> None:
            data[REPORT_KEY] = [[name, status, n] for (name, status), n in status_counts.items()]
            status_counts.clear()

        environment.events.report_to_master.add_listener(report)
    elif isinstance(runner, MasterRunner):

        def merge(client_id: str, data: dict[str, Any]) -> None:
            for name, status, n in data.get(REPORT_KEY, []):
                status_counts[(str(name), int(status))] += int(n)

        environment.events.worker_report.add_listener(merge)
