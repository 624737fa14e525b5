"""`--every`: cron ticks through croniter; overlapping ticks skipped and logged; a stop ends the wait."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from inferswarm.orchestrators.schedule import cron_problem, run_every, ticks_between

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


class Clock:
    """Time that moves only when the code under test looks at it or a run takes time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=0.25)
        return self.now


def test_cron_expressions_are_checked() -> None:
    assert cron_problem("0 * * * *") is None and cron_problem("* * * * * */5") is None
    problem = cron_problem("every hour")
    assert problem is not None and "not a cron schedule" in problem


def test_ticks_between() -> None:
    # croniter's sixth field is the seconds
    assert ticks_between("* * * * * */10", T0, T0 + timedelta(seconds=30)) == [
        T0 + timedelta(seconds=s) for s in (10, 20, 30)
    ]
    assert ticks_between("0 * * * *", T0, T0 + timedelta(minutes=59)) == []


def test_runs_at_each_tick_and_skips_the_ticks_a_long_run_covered() -> None:
    clock = Clock()
    runs: list[dict[str, Any]] = []
    lines: list[str] = []

    def once(info: dict[str, Any]) -> int:
        runs.append(info)
        if len(runs) == 1:
            clock.now += timedelta(seconds=3.5)  # the first run outlasts three ticks of a 1 s schedule
        return len(runs)

    code = run_every("* * * * * *", once, threading.Event(), lines.append, max_runs=3, clock=clock)
    assert code == 3 and len(runs) == 3
    ticks = [datetime.fromisoformat(r["tick"]) for r in runs]
    assert ticks[0] == T0 + timedelta(seconds=1)
    assert ticks[1] - ticks[0] == timedelta(seconds=4)  # 2, 3, 4 s passed during the first run
    assert ticks[2] - ticks[1] == timedelta(seconds=1)
    assert [r["skipped_before"] for r in runs] == [0, 3, 0]
    skipped = [line for line in lines if "skipped" in line]
    assert len(skipped) == 1 and "skipped 3 run(s)" in skipped[0] and "still going" in skipped[0]


def test_a_stop_while_waiting_ends_at_once_without_a_run() -> None:
    stop = threading.Event()
    runs: list[dict[str, Any]] = []
    threading.Timer(0.1, stop.set).start()
    assert run_every("0 0 1 1 *", lambda info: runs.append(info) or 0, stop, lambda _: None) == 0
    assert runs == []
