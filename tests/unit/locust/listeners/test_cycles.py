"""Cycle mode's tallies: outcomes per (cycle, capability) from request events and skipped slots, shipped
by workers and merged on the master; the console lines, the cycles CSV and the final summary."""

from __future__ import annotations

import csv
from pathlib import Path

from locust.runners import MasterRunner, WorkerRunner

from inferswarm.load import CyclePlan
from inferswarm.locust.listeners.cycles import REPORT_KEY, CycleLedger, CycleReporter, per_cycle
from inferswarm.locust.listeners.status_codes import StatusCodes
from inferswarm.locust.outcome import slots_skipped
from inferswarm.protocols import FailureCategory, RequestFailure
from tests.unit.locust.listeners.events import env_on, fire, local_env

BUSY = RequestFailure(FailureCategory.CAPACITY, "HTTP 503")


def test_ledger_counts_requests_with_a_slot_and_skipped_slots() -> None:
    env = local_env()
    ledger = CycleLedger(env)
    fire(env, "a", 200, slot=0)
    fire(env, "a", 200, slot=0)
    fire(env, "b", 503, slot=0, exception=BUSY)
    fire(env, "a", 200, slot=1)
    fire(env, "a", 200)  # no slot: not part of a schedule
    slots_skipped(env).fire(name="b", slots=(1, 2))
    assert ledger.counts == {
        (0, "a", "ok"): 2,
        (0, "b", "failed"): 1,
        (1, "a", "ok"): 1,
        (1, "b", "missed"): 1,
        (2, "b", "missed"): 1,
    }
    assert [(name, message) for _, name, message in ledger.recent_errors] == [("b", "capacity: HTTP 503")]
    assert per_cycle(ledger.counts)[1] == {
        "a": {"ok": 1, "failed": 0, "missed": 0},
        "b": {"ok": 0, "failed": 0, "missed": 1},
    }


def test_slots_skipped_is_one_hook_per_environment() -> None:
    env, other = local_env(), local_env()
    assert slots_skipped(env) is slots_skipped(env) and slots_skipped(env) is not slots_skipped(other)


def test_workers_ship_and_the_master_merges() -> None:
    worker = env_on(WorkerRunner)
    ledger = CycleLedger(worker)
    fire(worker, "a", 200, slot=0)
    fire(worker, "a", 503, slot=1, exception=BUSY)
    slots_skipped(worker).fire(name="a", slots=(2,))
    report: dict[str, object] = {}
    worker.events.report_to_master.fire(client_id="w1", data=report)
    shipped = report[REPORT_KEY]
    assert isinstance(shipped, dict)
    assert sorted(shipped["ledger"]) == [[0, "a", "ok", 1], [1, "a", "failed", 1], [2, "a", "missed", 1]]
    assert [(n, m) for _, n, m in shipped["errors"]] == [("a", "capacity: HTTP 503")]
    assert ledger.counts == {} and not ledger.recent_errors  # shipped once, never twice

    master = env_on(MasterRunner)
    merged = CycleLedger(master)
    for data in (report, report, {}):  # two workers' reports, one report without a ledger
        master.events.worker_report.fire(client_id="w", data=data)
    assert merged.counts == {(0, "a", "ok"): 2, (1, "a", "failed"): 2, (2, "a", "missed"): 2}
    assert [n for _, n, _ in merged.recent_errors] == ["a", "a"]


def read_rows(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return list(csv.reader(handle))


def test_reporter_prints_finished_cycles_and_writes_the_table_and_summary(tmp_path: Path) -> None:
    env = local_env()
    status = StatusCodes(env)
    ledger = CycleLedger(env)
    plan = CyclePlan(packets=3, interval_s=60.0, cycles=2, users={"a": 2, "b": 1})
    printed: list[str] = []
    reporter = CycleReporter(
        env, plan, ledger, status, tmp_path / "cycles.csv", tmp_path / "summary.txt", out=printed.append
    )
    reporter.start()
    assert printed == ["CYCLE MODE: 3 requests per cycle across a (2), b (1), every 60s, 2 cycles"]

    fire(env, "a", 200, slot=0, response_time=100)
    fire(env, "a", 200, slot=0, response_time=300)
    reporter.tick(final=False)  # cycle 1 is not accounted for yet: b's request is still out
    assert len(printed) == 1
    fire(env, "b", 503, slot=0, exception=BUSY)
    fire(env, "a", 200, slot=1, response_time=200)
    slots_skipped(env).fire(name="a", slots=(1,))
    reporter.tick(final=False)
    assert printed[1] == "cycle 1: 3 sent (a 2, b 1), 2 ok, 1 failed, 0 missed"
    assert printed[2].splitlines()[1] == "STATISTICS SUMMARY (after 1 cycle)"
    assert len(printed) == 3

    reporter.stop()  # the end: cycle 2 is printed although b's request never came back
    assert printed[3] == "cycle 2: 1 sent (a 2), 1 ok, 0 failed, 1 missed (incomplete)"
    final = printed[4]
    assert "STATISTICS SUMMARY (after 2 cycles)" in final
    assert "Cycles completed: 2 of 2 (3 requests every 60s)" in final
    a_block = final[final.index("\nA\n") : final.index("\nB\n")]
    assert "  Total requests: 3\n  Successful: 3\n  Failed: 0\n  Success rate: 100.00%" in a_block
    assert "  Avg response time: 200.00ms" in a_block and "  Min/Max: 100.00ms / 300.00ms" in a_block
    assert "  Status codes: {200: 3}" in a_block
    b_block = final[final.index("\nB\n") :]
    assert "  Total requests: 1\n  Successful: 0\n  Failed: 1\n  Success rate: 0.00%" in b_block
    assert "  Status codes: {503: 1}" in b_block
    assert "Recent errors:" in b_block and b_block.rstrip().endswith("capacity: HTTP 503")
    saved = (tmp_path / "summary.txt").read_text()
    assert saved.endswith("\n")

    def without_runtime(text: str) -> list[str]:  # the runtime is read again for the file
        return [line for line in text.splitlines() if not line.startswith("Total runtime: ")]

    assert without_runtime(saved) == without_runtime(final)
    assert read_rows(tmp_path / "cycles.csv") == [
        ["cycle", "name", "ok", "failed", "missed"],
        ["1", "a", "2", "0", "0"],
        ["1", "b", "0", "1", "0"],
        ["2", "a", "1", "0", "1"],
    ]
