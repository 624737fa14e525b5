"""Golden numbers on a synthetic run with known answers: per-step throughput and percentiles (Locust's
own percentile rule), the saturation point, GPU figures and the SLO verdicts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from locust.stats import calculate_response_time_percentile

from inferswarm.report.analysis import analyse, percentile
from inferswarm.report.load import load_run
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
    steps = results["steps"]
    assert [s["users"] for s in steps] == [2, 4, 6, 8]
    assert [s["rps"] for s in steps] == [10.0, 20.0, 21.0, 30.0]
    assert [s["success_rps"] for s in steps] == [10.0, 20.0, 21.0, 20.0]
    assert [s["failure_ratio"] for s in steps] == [0.0, 0.0, 0.0, 0.3333]
    assert all(s["exact"] for s in steps)
    # Locust's rule: 5 % of requests at 900 ms make p95 = 900, and half at <= 100 ms still gives p50 = 200
    assert [(s["p50_ms"], s["p95_ms"], s["p99_ms"]) for s in steps] == [
        (200, 900, 900),
        (200, 900, 900),
        (400, 1800, 1800),
        (600, 2500, 2500),
    ]
    assert steps[0]["window_start_epoch_s"] == START and steps[0]["window_end_epoch_s"] == START + 10
    assert steps[2]["capabilities"]["cap"]["p95_ms"] == 1800
    # GPU per step from the telemetry in that step's window only
    assert [s["gpu_util_mean_pct"] for s in steps] == [20.0, 40.0, 90.0, 95.0]


def test_saturation_point_and_knee(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP)))
    assert results["saturation"] == {
        "stage": 2,
        "users": 6,
        "reason": "+2 users added +1.00 req/s (< 50% of 10.00) while p95 rose 900 → 1800 ms",
        "knee_users": 4,
        "knee_success_rps": 20.0,
    }


def test_failures_alone_mark_saturation(tmp_path: Path) -> None:
    linear = [
        RAMP[0],
        {**RAMP[1], "ok": 170, "fail": 30},  # 15 % failures at 4 users
    ]
    results = analyse(load_run(write_run(tmp_path / "run", linear)))
    assert results["saturation"]["users"] == 4
    assert results["saturation"]["reason"] == "failure ratio 15.0% > 5.0%"
    assert results["saturation"]["knee_users"] == 2


def test_no_saturation_when_throughput_scales(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP[:2])))
    assert results["saturation"] is None


def test_summary_gpu_and_gates(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", RAMP, slo=GATES)))
    total = results["summary"]["total"]
    assert (total["requests"], total["failures"], total["rps"]) == (810, 100, 20.25)
    assert total["failures_by_category"] == {"capacity": 100}
    assert results["summary"]["cap"]["status_codes"] == {"200": 710, "503": 100}
    gpu = results["gpu"]
    assert gpu["gpu_util_mean_pct"] == 61.25
    assert gpu["gpu_mem_peak_pct"] == 95.0
    assert gpu["gpu_energy_j"] == 3900.0  # 100 W for 39 s between the first and last sample
    assert gpu["energy_per_request_j"] == round(3900 / 810, 4)
    verdicts = {(g["gate"], g["passed"]) for g in results["slo"]["gates"]}
    assert verdicts == {
        ("p95_ms < 1000", True),
        ("rps >= 20", True),
        ("cap: failure_ratio < 0.01", False),
        ("gpu_mem_peak_pct < 90", False),
        ("p99_ms < 10000", True),
    }
    assert results["slo"]["passed"] is False
    # judged step by step: 2 users are too slow for rps >= 20, 6 users break p95 and GPU memory
    assert results["slo"]["highest_passing_step"] == {"stage": 1, "users": 4, "success_rps": 20.0}


def test_gate_without_data_fails(tmp_path: Path) -> None:
    results = analyse(
        load_run(write_run(tmp_path / "run", RAMP, slo=["gpu_util_mean_pct > 10"], telemetry=False))
    )
    (gate,) = results["slo"]["gates"]
    assert gate == {
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
    steps = results["steps"]
    # from the cumulative counts in the history, after dropping 2 s of each 10 s step
    assert [s["rps"] for s in steps] == [10.0, 20.0, 21.0, 30.0]
    assert not any(s["exact"] for s in steps)
    assert steps[0]["window_start_epoch_s"] == START + 2
    assert "locust_steps.csv: missing" in results["notes"]
