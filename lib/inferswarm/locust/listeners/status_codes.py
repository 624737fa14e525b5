"""HTTP status codes per capability, counted from the request events, merged on the master.

Workers ship their counts with Locust's own stats report and start again from zero; the owner (master
or local runner) keeps the total and writes `PREFIX_status_codes.csv` at every stage's end and at quit.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.locust.outcome import STATUS
from inferswarm.rundir import STATUS_COLUMNS, write_csv_atomic

REPORT_KEY = "inferswarm_status"


class StatusCodes:
    """(capability, HTTP status) -> count in this process (since the last report, on a worker)."""

    def __init__(self, environment: Environment, path: Path | None = None) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()
        self.path = path
        environment.events.request.add_listener(self._on_request)
        if isinstance(environment.runner, WorkerRunner):
            environment.events.report_to_master.add_listener(self._ship)
        elif isinstance(environment.runner, MasterRunner):
            environment.events.worker_report.add_listener(self._merge)

    def _on_request(
        self,
        request_type: str = "",
        name: str = "",
        response_time: Any = None,
        response_length: Any = None,
        exception: Any = None,
        context: dict[str, Any] | None = None,
        response: Any = None,
        start_time: Any = None,
        url: Any = None,
        **_: Any,
    ) -> None:
        # Every field of Locust's request event named: called once per request, and binding them costs
        # less than gathering them into `**_` (a fresh dict of seven, per request).
        status = context.get(STATUS) if context else None
        if status is not None:
            self.counts[(name, status)] += 1

    def _ship(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = [[name, status, n] for (name, status), n in self.counts.items()]
        self.counts.clear()

    def _merge(self, client_id: str, data: dict[str, Any]) -> None:
        for name, status, n in data.get(REPORT_KEY, []):
            self.counts[(str(name), int(status))] += int(n)

    def of(self, name: str) -> dict[int, int]:
        return {status: n for (cap, status), n in sorted(self.counts.items()) if cap == name}

    def save(self) -> None:
        if self.path is not None:
            rows = ([name, status, n] for (name, status), n in sorted(self.counts.items()))
            write_csv_atomic(self.path, STATUS_COLUMNS, rows)

    # a stage listener: the file is current at every stage's end
    def stage_opened(self, index: int, stage: Any) -> None:
        return None

    def stage_closed(self, index: int, completed: bool) -> None:
        self.save()
