"""`--every "<cron>"`: one run per tick of a crontab schedule, as seed 002's container runs from cron.

Cron syntax comes from croniter (five fields; a sixth, seconds, for tests). Runs never overlap: ticks
that pass while a run is going are skipped and logged, and the next run starts at the first tick after
it ends. A stop while waiting ends at once; a stop during a run lets that run finish its job in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a cron schedule, or None."""
    if not croniter.is_valid(expression):
        return f'{expression!r} is not a cron schedule (e.g. "0 * * * *": every hour on the hour)'
    return None


def ticks_between(expression: str, after: datetime, until: datetime) -> list[datetime]:
    """The schedule's ticks in (after, until]."""
    found: list[datetime] = []
    it = croniter(expression, after)
    while True:
        tick: datetime = it.get_next(datetime)
        if tick > until:
            return found
        found.append(tick)


def run_every(
    expression: str,
    run_once: Callable[[dict[str, Any]], int],
    stop: threading.Event,
    log: Callable[[str], None],
    max_runs: int | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Call `run_once(schedule_info)` at each tick until `stop` (or `max_runs` runs); the last exit code."""
    code = 0
    runs = 0
    skipped = 0
    last = clock()
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        tick: datetime = croniter(expression, last).get_next(datetime)
        log(f"schedule: next run at {tick.isoformat(timespec='seconds')}")
        while not stop.is_set():
            left = (tick - clock()).total_seconds()
            if left <= 0:
                break
            stop.wait(min(left, 1.0))
        if stop.is_set():
            break
        code = run_once({"cron": expression, "tick": tick.isoformat(), "skipped_before": skipped})
        runs += 1
        ended = clock()
        missed = ticks_between(expression, tick, ended)
        skipped = len(missed)
        if missed:
            log(
                f"schedule: skipped {len(missed)} run(s) due from {missed[0].isoformat(timespec='seconds')} "
                f"to {missed[-1].isoformat(timespec='seconds')}: the previous run was still going"
            )
        last = ended
    return code
