"""A capacity search in the report: its trials and bracket from run.json, the gates judged on the capacity
it found (not on the failing trials it needed to find it), a section, a console line and a figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from inferswarm.report.analysis import analyse
from inferswarm.report.figures import all_figures
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from tests.unit.report.synthetic import RAMP, write_run

SEARCH = {"shape": "search", "over": "users", "low": 2, "high": 8, "trial_s": 10, "resolution": 2}


def trial(stage: int, level: float, passed: bool, why: list[str] | None = None) -> dict[str, Any]:
    return {"stage": stage, "level": level, "passed": passed, "requests": 100, "why": why or []}


def with_search(run: Path, search: dict[str, Any]) -> Path:
    data = json.loads((run / "run.json").read_text())
    data["search"] = search
    (run / "run.json").write_text(json.dumps(data))
    return run


def searched(tmp_path: Path, trials: list[dict[str, Any]], low: float | None, high: float | None) -> Path:
    # RAMP's steps at 2, 4 and 6 users have no failures; at 8, a third of requests fail (so does the run)
    run = write_run(tmp_path / "run", RAMP, slo=["failure_ratio < 0.05"], load=SEARCH)
    search = {
        "over": "users",
        "resolution": 2,
        "judged_on": "latency of successful requests",
        "trials": trials,
        "highest_passing": low,
        "lowest_failing": high,
        "done": True,
    }
    return with_search(run, search)


def test_gates_are_judged_on_the_capacity_the_search_found(tmp_path: Path) -> None:
    why = ["failure_ratio < 0.05: 0.333"]
    trials = [trial(0, 2, True), trial(1, 4, True), trial(3, 8, False, why), trial(2, 6, True)]
    results = analyse(load_run(searched(tmp_path, trials, 6, 8)))
    assert results.search is not None and results.search.highest_passing == 6
    # the whole run fails the gate (it includes the failing trial); the verdict is on the 6-user trial
    [gate] = results.slo.gates
    assert gate.passed and gate.value == 0 and results.slo.passed
    text = summary_markdown(results)
    assert "Capacity **between 6 users (passed) and 8 (failed)**, within a resolution of 2" in text
    assert "| 3 | 8 | fail | 100 | failure_ratio < 0.05: 0.333 |" in text
    assert "Judged on the capacity the search found" in text
    figure = all_figures(load_run(tmp_path / "run"), results)["search_trials"]
    assert [list(trace.y) for trace in figure.data[:2]] == [[2, 4, 6], [8]]  # passed, failed


def test_a_search_where_nothing_passed_fails_its_gates(tmp_path: Path) -> None:
    trials = [trial(3, 8, False, ["failure_ratio < 0.05: 0.333"])]
    results = analyse(load_run(searched(tmp_path, trials, None, 8)))
    assert not results.slo.passed and results.slo.gates[0].value == pytest.approx(1 / 3, abs=1e-4)
    assert "Capacity **below 8 users: no trial met every SLO**" in summary_markdown(results)


def test_runs_without_a_search_have_no_section(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP, slo=["failure_ratio < 0.05"])))
    assert results.search is None and not results.slo.passed  # judged on the whole run, as before
    assert "Capacity search" not in summary_markdown(results)


def test_an_open_loop_run_per_step_figure_shows_offered_rate_and_schedule(tmp_path: Path) -> None:
    load = {"shape": "rate", "stages": [{"duration_s": 10, "rps": r} for r in (4, 8, 12, 16)]}
    run = write_run(tmp_path / "run", RAMP, load=load)
    path = run / "locust_stages.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row, rps in zip(rows, ("4", "8", "12", "16"), strict=True):
        row["rps"] = rps
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load_run(run)
    results = analyse(data)
    assert results.step_axis.column == "rps" and [s.level for s in results.steps] == [4, 8, 12, 16]
    figure = all_figures(data, results)["per_step"]
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces["offered"].y) == [4, 8, 12, 16]
    assert {"late requests", "schedule lag p99 ms"} <= set(traces)
    closed = analyse(load_run(write_run(tmp_path / "closed", RAMP)))
    closed_names = {
        trace.name for trace in all_figures(load_run(tmp_path / "closed"), closed)["per_step"].data
    }
    assert "offered" not in closed_names and "late requests" not in closed_names
