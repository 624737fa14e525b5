"""Cycle mode's tallies and console summary: outcomes per (cycle, capability), printed and saved.

`CycleLedger` (every process) counts each request's outcome under its cycle number, from the request
events, and the cycles users skipped because a request overran; workers ship their counts to the master
with Locust's own stats report. `CycleReporter` (the master or the local runner) prints each finished
cycle and the running summary, and writes PREFIX_cycles.csv and cycle_summary.txt (also after Ctrl+C or
SIGTERM).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.load import CyclePlan
from inferswarm.locust.listeners.status_codes import StatusCodes
from inferswarm.locust.outcome import SLOT, slots_skipped
from inferswarm.rundir import CYCLE_COLUMNS, CYCLE_OUTCOMES, write_csv_atomic

OUTCOMES = CYCLE_OUTCOMES
REPORT_KEY = "inferswarm_cycles"
RECENT_ERRORS = 5


class CycleLedger:
    """(cycle, capability, outcome) -> count in this process, and the latest failure messages."""

    def __init__(self, environment: Environment) -> None:
        self.counts: Counter[tuple[int, str, str]] = Counter()
        self.recent_errors: deque[tuple[float, str, str]] = deque(maxlen=50)  # (epoch_s, name, message)
        environment.events.request.add_listener(self._on_request)
        slots_skipped(environment).add_listener(self._on_skipped)
        if isinstance(environment.runner, WorkerRunner):
            environment.events.report_to_master.add_listener(self._ship)
        elif isinstance(environment.runner, MasterRunner):
            environment.events.worker_report.add_listener(self._merge)

    def _on_request(
        self,
        name: str,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        slot = context.get(SLOT) if context else None
        if slot is None:
            return
        self.counts[(slot, name, "ok" if exception is None else "failed")] += 1
        if exception is not None:
            self.recent_errors.append((time.time(), name, str(exception)))

    def _on_skipped(self, name: str, slots: tuple[int, ...], **_: Any) -> None:
        for slot in slots:
            self.counts[(slot, name, "missed")] += 1

    def _ship(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = {
            "ledger": [[c, n, o, k] for (c, n, o), k in self.counts.items()],
            "errors": list(self.recent_errors),
        }
        self.counts.clear()
        self.recent_errors.clear()

    def _merge(self, client_id: str, data: dict[str, Any]) -> None:
        shipped = data.get(REPORT_KEY) or {}
        for cycle, name, outcome, n in shipped.get("ledger", []):
            self.counts[(int(cycle), str(name), str(outcome))] += int(n)
        for epoch, name, message in shipped.get("errors", []):
            self.recent_errors.append((float(epoch), str(name), str(message)))


def per_cycle(counts: Counter[tuple[int, str, str]]) -> dict[int, dict[str, dict[str, int]]]:
    """cycle -> capability -> outcome -> count."""
    table: dict[int, dict[str, dict[str, int]]] = {}
    for (cycle, name, outcome), n in counts.items():
        table.setdefault(cycle, {}).setdefault(name, dict.fromkeys(OUTCOMES, 0))[outcome] += n
    return table


def summary_text(
    environment: Environment,
    plan: CyclePlan,
    cycles_done: int,
    runtime_s: float,
    status: StatusCodes,
    ledger: CycleLedger,
) -> str:
    """The cycle-mode statistics summary, per capability, from Locust's merged stats."""
    lines = [
        "=" * 72,
        f"STATISTICS SUMMARY (after {cycles_done} cycle{'s' if cycles_done != 1 else ''})",
        "=" * 72,
        f"Total runtime: {runtime_s:.1f}s",
        f"Cycles completed: {cycles_done} of {plan.cycles} "
        f"({plan.packets} requests every {plan.interval_s:g}s)",
    ]
    for name in plan.users:
        entry = environment.stats.entries.get((name, "POST")) or next(
            (e for (n, _), e in environment.stats.entries.items() if n == name), None
        )
        requests = entry.num_requests if entry else 0
        failures = entry.num_failures if entry else 0
        lines += ["", name.upper(), "-" * 40, f"  Total requests: {requests}"]
        lines += [f"  Successful: {requests - failures}", f"  Failed: {failures}"]
        rate = 100.0 * (requests - failures) / requests if requests else 0.0
        lines.append(f"  Success rate: {rate:.2f}%")
        if entry and requests:
            lines.append(f"  Avg response time: {entry.avg_response_time:.2f}ms")
            lines.append(f"  Min/Max: {entry.min_response_time or 0:.2f}ms / {entry.max_response_time:.2f}ms")
        lines.append(f"  Status codes: {status.of(name)}")
        errors = [e for e in ledger.recent_errors if e[1] == name][-RECENT_ERRORS:]
        if errors:
            lines.append("  Recent errors:")
            lines += [f"    {time.strftime('%H:%M:%S', time.localtime(t))} {msg}" for t, _, msg in errors]
    return "\n".join(lines)


class CycleReporter:
    """Prints each finished cycle and the running summary; writes the cycle table and the final summary."""

    def __init__(
        self,
        environment: Environment,
        plan: CyclePlan,
        ledger: CycleLedger,
        status: StatusCodes,
        csv_path: Path,
        summary_path: Path,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.environment = environment
        self.plan = plan
        self.ledger = ledger
        self.csv_path = csv_path
        self.summary_path = summary_path
        self.status = status
        # flushed at once: Locust may leave through os._exit, which would drop a buffered summary
        self.out = out or (lambda text: print(text, flush=True))
        self.printed: set[int] = set()
        self.started_s: float | None = None
        self._loop: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        self.started_s = time.time()
        self.out(
            f"CYCLE MODE: {self.plan.packets} requests per cycle across "
            + ", ".join(f"{n} ({k})" for n, k in self.plan.users.items())
            + f", every {self.plan.interval_s:g}s, {self.plan.cycles} cycles"
        )
        self._loop = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(self.plan.interval_s)
            self.tick(final=False)

    def finished_cycles(self, final: bool) -> list[int]:
        """Cycles whose every request is accounted for (all of them at the end)."""
        table = per_cycle(self.ledger.counts)
        done = []
        for cycle in sorted(table):
            accounted = sum(sum(o.values()) for o in table[cycle].values())
            if cycle not in self.printed and (final or accounted >= self.plan.packets):
                done.append(cycle)
        return done

    def tick(self, final: bool) -> None:
        table = per_cycle(self.ledger.counts)
        new = self.finished_cycles(final)
        for cycle in new:
            self.printed.add(cycle)
            row = table[cycle]
            ok = sum(o["ok"] for o in row.values())
            failed = sum(o["failed"] for o in row.values())
            missed = sum(o["missed"] for o in row.values())
            parts = ", ".join(f"{n} {sum(o.values())}" for n, o in sorted(row.items()))
            note = "" if ok + failed + missed >= self.plan.packets else " (incomplete)"
            self.out(
                f"cycle {cycle + 1}: {ok + failed} sent ({parts}), "
                f"{ok} ok, {failed} failed, {missed} missed{note}"
            )
        self.write_csv()
        if new or final:
            runtime = time.time() - (self.started_s or time.time())
            self.out(
                summary_text(
                    self.environment, self.plan, len(self.printed), runtime, self.status, self.ledger
                )
            )

    def _summary(self, runtime_s: float) -> str:
        return summary_text(
            self.environment, self.plan, len(self.printed), runtime_s, self.status, self.ledger
        )

    def write_csv(self) -> None:
        rows = [
            [cycle + 1, name, *(outcomes[o] for o in OUTCOMES)]
            for cycle, row in sorted(per_cycle(self.ledger.counts).items())
            for name, outcomes in sorted(row.items())
        ]
        write_csv_atomic(self.csv_path, CYCLE_COLUMNS, rows)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
        self.tick(final=True)
        runtime = time.time() - (self.started_s or time.time())
        text = self._summary(runtime)
        self.summary_path.write_text(text + "\n", encoding="utf-8")
