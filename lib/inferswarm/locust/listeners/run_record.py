"""run.json while Locust runs: written when the owner starts, when the test starts, on every change
its collaborators report (workers, generator saturation), and at quit. Only the owner process (the
master or the local runner) writes it while Locust runs."""

from __future__ import annotations

import time
from typing import Any

from locust.env import Environment

from inferswarm.rundir import RunRecord


class RunRecorder:
    def __init__(self, environment: Environment, record: RunRecord) -> None:
        self.record = record
        environment.events.test_start.add_listener(self._on_test_start)

    @property
    def test_start_epoch_s(self) -> float | None:
        value = self.record.data.get("test_start_epoch_s")
        return float(value) if isinstance(value, int | float) else None

    def _on_test_start(self, **_: Any) -> None:
        if self.test_start_epoch_s is None:
            self.record.update(test_start_epoch_s=round(time.time(), 3))

    def saved(self, **fields: Any) -> None:
        self.record.update(**fields)

    def end(self, completed: bool, exit_code: int, **fields: Any) -> None:
        self.record.end("completed" if completed else "interrupted", exit_code, **fields)
