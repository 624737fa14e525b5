"""Seed 000's cycle mode: x requests spread over y capabilities, every z seconds, concurrently.

Each of the x requests of a cycle is one Locust user (the capabilities get them round-robin), paced to
one request per cycle from its own start, so a cycle's requests are in flight together and the whole
thing runs distributed and in the web UI like any Locust test. A request that overruns its cycle makes
its user skip (and record as missed) the cycles it overran; after the last cycle the user stops.

Outcomes per (cycle, capability) are counted where the request ran; workers ship them to the master with
Locust's own stats report. The master (or the local runner) prints seed 000's summary after every cycle
and at the end (also after Ctrl+C or SIGTERM), and writes PREFIX_cycles.csv and cycle_summary.txt.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.config import CycleLoad, RunConfig
from inferswarm.protocols.base import RequestFailure

OUTCOMES = ("ok", "failed", "missed")
CYCLE_COLUMNS = ["cycle", "name", "ok", "failed", "missed"]
REPORT_KEY = "inferswarm_cycles"
RECENT_ERRORS = 5

# (cycle, capability, outcome) -> count, in this process; a worker ships and clears it
ledger: Counter[tuple[int, str, str]] = Counter()
# (epoch_s, capability, message), newest last
recent_errors: deque[tuple[float, str, str]] = deque(maxlen=50)


@dataclass(frozen=True)
class CyclePlan:
    packets: int
    interval_s: float
    cycles: int
    users: dict[str, int]
    """Capability -> its share of each cycle's packets (round-robin in the order given)."""


def cycle_plan(config: RunConfig) -> CyclePlan:
    load = config.load
    assert isinstance(load, CycleLoad)
    names = load.capabilities or [c.name for c in config.capabilities]
    users = {
        name: load.packets // len(names) + (1 if i < load.packets % len(names) else 0)
        for i, name in enumerate(names)
    }
    return CyclePlan(load.packets, load.interval_s, load.cycles, {n: k for n, k in users.items() if k > 0})


def record_outcome(name: str, cycle: int, failure: RequestFailure | None, missed: bool = False) -> None:
    outcome = "missed" if missed else "ok" if failure is None else "failed"
    ledger[(cycle, name, outcome)] += 1
    if failure is not None:
        recent_errors.append((time.time(), name, str(failure)))


def wire_cycle_ledger(environment: Environment) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def report(client_id: str, data: dict[str, Any]) -> None:
            data[REPORT_KEY] = {
                "ledger": [[c, n, o, k] for (c, n, o), k in ledger.items()],
                "errors": list(recent_errors),
            }
            ledger.clear()
            recent_errors.clear()

        environment.events.report_to_master.add_listener(report)
    elif isinstance(runner, MasterRunner):

        def merge(client_id: str, data: dict[str, Any]) -> None:
            shipped = data.get(REPORT_KEY) or {}
            for cycle, name, outcome, n in shipped.get("ledger", []):
                ledger[(int(cycle), str(name), str(outcome))] += int(n)
            for epoch, name, message in shipped.get("errors", []):
                recent_errors.append((float(epoch), str(name), str(message)))

        environment.events.worker_report.add_listener(merge)


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
    status: Counter[tuple[str, int]],
) -> str:
    """Seed 000's statistics summary, per capability, from Locust's merged stats."""
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
        codes = {code: n for (cap, code), n in sorted(status.items()) if cap == name}
        lines.append(f"  Status codes: {codes}")
        errors = [e for e in recent_errors if e[1] == name][-RECENT_ERRORS:]
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
        run_dir: Path,
        prefix: str,
        status: Counter[tuple[str, int]],
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.environment = environment
        self.plan = plan
        self.csv_path = run_dir / f"{prefix}_cycles.csv"
        self.summary_path = run_dir / "cycle_summary.txt"
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
        table = per_cycle(ledger)
        done = []
        for cycle in sorted(table):
            accounted = sum(sum(o.values()) for o in table[cycle].values())
            if cycle not in self.printed and (final or accounted >= self.plan.packets):
                done.append(cycle)
        return done

    def tick(self, final: bool) -> None:
        table = per_cycle(ledger)
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
            self.out(summary_text(self.environment, self.plan, len(self.printed), runtime, self.status))

    def write_csv(self) -> None:
        tmp = self.csv_path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CYCLE_COLUMNS)
            for cycle, row in sorted(per_cycle(ledger).items()):
                for name, outcomes in sorted(row.items()):
                    writer.writerow([cycle + 1, name, *(outcomes[o] for o in OUTCOMES)])
        tmp.replace(self.csv_path)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
        self.tick(final=True)
        runtime = time.time() - (self.started_s or time.time())
        text = summary_text(self.environment, self.plan, len(self.printed), runtime, self.status)
        self.summary_path.write_text(text + "\n", encoding="utf-8")
