"""Golden numbers on a synthetic run with known answers: per-step throughput and percentiles (Locust's
own percentile rule), the saturation point, GPU figures and the SLO verdicts; the steps' axis."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from locust.stats import calculate_response_time_percentile

from inferswarm.config import ReportConfig
from inferswarm.load import StepAxis
from inferswarm.report.analysis import analyse, percentile, step_table
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from inferswarm.report.results import USERS, Axis, Results
from tests.unit.report.synthetic import RAMP, START, write_run

GATES = ["p95_ms < 1000", "rps >= 20", "cap: failure_ratio < 0.01", "gpu_mem_peak_pct < 90", "p99_ms < 10000"]


@pytest.mark.parametrize("seed", range(20))
def test_percentile_matches_locust(seed: int) -> None:
    rng = random.Random(seed)
    hist = {rng.randint(1, 5000): rng.randint(1, 50) for _ in range(rng.randint(1, 60))}
    total = sum(hist.values())
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        assert percentile(hist.items(), q) == calculate_response_time_percentile(hist, total, q)
    assert percentile([], 0.5) is None


def test_steps_throughput_and_exact_percentiles(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP, slo=GATES)))
    steps = results.steps
    assert [s.users for s in steps] == [2, 4, 6, 8]
    # a ramp's steps are placed by users: each step's level is its users
    assert results.step_axis == USERS and [s.level for s in steps] == [2, 4, 6, 8]
    assert [s.rps for s in steps] == [10.0, 20.0, 21.0, 30.0]
    assert [s.success_rps for s in steps] == [10.0, 20.0, 21.0, 20.0]
    assert [s.failure_ratio for s in steps] == [0.0, 0.0, 0.0, 0.3333]
    assert all(s.exact for s in steps)
    # Locust's rule: 5 % of requests at 900 ms make p95 = 900, and half at <= 100 ms still gives p50 = 200
    assert [(s.p50_ms, s.p95_ms, s.p99_ms) for s in steps] == [
        (200, 900, 900),
        (200, 900, 900),
        (400, 1800, 1800),
        (600, 2500, 2500),
    ]
    assert steps[0].window_start_epoch_s == START and steps[0].window_end_epoch_s == START + 10
    assert steps[2].capabilities["cap"].p95_ms == 1800
    # GPU per step from the telemetry in that step's window only
    assert [s.gpu_util_mean_pct for s in steps] == [20.0, 40.0, 90.0, 95.0]


def test_saturation_point_and_knee(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP)))
    assert results.saturation is not None
    assert results.saturation.model_dump() == {
        "stage": 2,
        "users": 6,
        "level": 6,
        "reason": "+2 users added +1.00 req/s (< 50% of 10.00) while p95 rose 900 → 1800 ms",
        "knee_users": 4,
        "knee_level": 4,
        "knee_success_rps": 20.0,
    }


def test_failures_alone_mark_saturation(tmp_path: Path) -> None:
    linear = [
        RAMP[0],
        {**RAMP[1], "ok": 170, "fail": 30},  # 15 % failures at 4 users
    ]
    results = analyse(load_run(write_run(tmp_path / "run", linear)))
    assert results.saturation is not None
    assert results.saturation.users == 4
    assert results.saturation.reason == "failure ratio 15.0% > 5.0%"
    assert results.saturation.knee_users == 2


def test_no_saturation_when_throughput_scales(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP[:2])))
    assert results.saturation is None


def test_summary_gpu_and_gates(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP, slo=GATES)))
    total = results.summary["total"]
    assert (total.requests, total.failures, total.rps) == (810, 100, 20.25)
    assert total.failures_by_category == {"capacity": 100}
    assert results.summary["cap"].status_codes == {"200": 710, "503": 100}
    gpu = results.gpu
    assert gpu.gpu_util_mean_pct == 61.25
    assert gpu.gpu_mem_peak_pct == 95.0
    assert gpu.gpu_energy_j == 3900.0  # 100 W for 39 s between the first and last sample
    assert gpu.energy_per_request_j == round(3900 / 810, 4)
    verdicts = {(g.gate, g.passed) for g in results.slo.gates}
    assert verdicts == {
        ("p95_ms < 1000", True),
        ("rps >= 20", True),
        ("cap: failure_ratio < 0.01", False),
        ("gpu_mem_peak_pct < 90", False),
        ("p99_ms < 10000", True),
    }
    assert results.slo.passed is False
    # judged step by step: 2 users are too slow for rps >= 20, 6 users break p95 and GPU memory
    best = results.slo.highest_passing_step
    assert best is not None
    assert best.model_dump() == {"stage": 1, "users": 4, "level": 4, "success_rps": 20.0}


def test_gate_without_data_fails(tmp_path: Path) -> None:
    results = analyse(
        load_run(write_run(tmp_path / "run", RAMP, slo=["gpu_util_mean_pct > 10"], telemetry=False))
    )
    (gate,) = results.slo.gates
    assert gate.model_dump() == {
        "gate": "gpu_util_mean_pct > 10",
        "scope": "total",
        "value": None,
        "passed": False,
        "why": "no data",
    }


def test_warmup_falls_back_to_history_without_step_files(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP, report={"warmup_s": 2})
    (run / "locust_steps.csv").unlink()
    (run / "locust_step_latency.csv").unlink()
    data = load_run(run)
    results = analyse(data)
    steps = results.steps
    # from the cumulative counts in the history, after dropping 2 s of each 10 s step
    assert [s.rps for s in steps] == [10.0, 20.0, 21.0, 30.0]
    assert not any(s.exact for s in steps)
    assert steps[0].window_start_epoch_s == START + 2
    assert "locust_steps.csv: missing" in results.notes


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP, slo=GATES)))
    again = Results.model_validate_json(results.model_dump_json())
    assert again == results
    # the same keys too: optional figures (GPU, a gate's `why`) stay absent where they were
    assert again.model_dump() == results.model_dump()


def test_unknown_load_kind_places_steps_by_users(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP, load={"shape": "from-a-newer-inferswarm", "rate": 3})
    results = analyse(load_run(run))
    assert results.step_axis == USERS
    assert [s.level for s in results.steps] == [s.users for s in results.steps] == [2, 4, 6, 8]
    assert results.saturation is not None and results.saturation.level == 6
    assert "| step | users | req/s |" in summary_markdown(results)


def test_custom_axis_label_in_the_summary(tmp_path: Path) -> None:
    clients = StepAxis(column="users", label="clients")
    data = load_run(write_run(tmp_path / "run", RAMP, slo=["rps >= 20", "failure_ratio < 0.1"]))
    steps = step_table(data, ReportConfig(warmup_s=0), clients)
    assert [s.level for s in steps] == [2, 4, 6, 8]
    results = analyse(data, axis=clients)
    assert results.step_axis == Axis(column="users", label="clients")
    summary = summary_markdown(results)
    assert "| step | clients | req/s |" in summary and "| step 3 | 6 | 21.00 |" in summary
    assert "Saturated at **6 clients** (+2 clients added +1.00 req/s" in summary
    assert "the highest load it sustained was 4 clients at 20.00 successful req/s" in summary
    assert "Highest step meeting every SLO: 6 clients (21.00 successful req/s)." in summary
    assert " users" not in summary.split("## Per step")[1]


def add_stage_column(run: Path, column: str, values: list[str]) -> None:
    path = run / "locust_stages.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows = [[*rows[0], column]] + [[*row, value] for row, value in zip(rows[1:], values, strict=True)]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_level_from_another_stages_column(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    add_stage_column(run, "offered_rps", ["5", "10", "15", "20"])
    offered = StepAxis(column="offered_rps", label="req/s offered")
    results = analyse(load_run(run), axis=offered)
    # the level comes from the axis column; users stay the stages CSV's users
    assert [(s.level, s.users) for s in results.steps] == [(5, 2), (10, 4), (15, 6), (20, 8)]
    sat = results.saturation
    assert sat is not None
    assert (sat.level, sat.users, sat.knee_level, sat.knee_users) == (15, 6, 10, 4)
    assert sat.reason.startswith("+5 req/s offered added +1.00 req/s (< 50% of 10.00)")
    # a stage without a value on the axis has no place on it
    add_stage_column(run, "offered_rps_2", ["5", "", "15", "20"])
    data = load_run(run)
    steps = step_table(data, ReportConfig(warmup_s=0), StepAxis(column="offered_rps_2", label="x"))
    assert [s.level for s in steps] == [5, 15, 20]
    assert "locust_stages.csv: 1 stage(s) without a value in column offered_rps_2 left out" in data.notes
