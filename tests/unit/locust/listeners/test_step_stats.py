"""Per-step numbers: each step's requests, failures and exact latency histogram in its measured window."""

from __future__ import annotations

import csv
from pathlib import Path

import gevent

from inferswarm import derived
from inferswarm.load import Stage
from inferswarm.locust.listeners.step_stats import StepStats
from inferswarm.protocols import FailureCategory, RequestFailure
from inferswarm.rundir import LATENCY_COLUMNS, STEPS_COLUMNS, RunFiles
from tests.unit.locust.listeners.events import fire, local_env

STEP = Stage("step 1", 0.0, 60.0, 2, 2.0)
BUSY = RequestFailure(FailureCategory.CAPACITY, "HTTP 503")


def read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_each_step_counts_only_its_own_requests(tmp_path: Path) -> None:
    env = local_env()
    files = RunFiles(tmp_path, "locust")
    steps = StepStats(env, files, warmup_s=0.0)
    fire(env, "a", response_time=999)  # before the step: not counted
    steps.stage_opened(0, STEP)
    fire(env, "a", response_time=10)
    fire(env, "a", response_time=10)
    fire(env, "a", 503, exception=BUSY, response_time=20)
    env.stats.get(derived.entry_name("a", derived.TTFT), derived.TIMING_TYPE).log(7, 0)
    steps.stage_closed(0, completed=True)
    steps.stage_opened(1, STEP)
    fire(env, "a", response_time=30)
    steps.stage_closed(1, completed=False)
    steps.close()

    rows = read(files.path("steps"))
    assert list(rows[0]) == STEPS_COLUMNS
    got = {(r["stage"], r["name"]): (r["requests"], r["failures"], r["warmup_s"]) for r in rows}
    assert got == {
        ("0", "Aggregated"): ("3", "1", "0"),
        ("0", "a"): ("3", "1", "0"),
        ("0", "a:ttft"): ("1", "0", "0"),  # a derived entry keeps its own row (never in Aggregated)
        ("1", "Aggregated"): ("1", "0", "0"),
        ("1", "a"): ("1", "0", "0"),
    }
    for row in rows:
        assert float(row["window_start_epoch_s"]) <= float(row["window_end_epoch_s"])
    latency = read(files.path("step_latency"))
    assert list(latency[0]) == LATENCY_COLUMNS
    histogram = {(r["stage"], r["name"], r["response_time_ms"]): r["count"] for r in latency}
    assert histogram == {
        ("0", "Aggregated", "10"): "2",
        ("0", "Aggregated", "20"): "1",
        ("0", "a", "10"): "2",
        ("0", "a", "20"): "1",
        ("0", "a:ttft", "7"): "1",
        ("1", "Aggregated", "30"): "1",
        ("1", "a", "30"): "1",
    }


def test_the_warm_up_is_left_out(tmp_path: Path) -> None:
    env = local_env()
    files = RunFiles(tmp_path, "locust")
    steps = StepStats(env, files, warmup_s=0.2)
    steps.stage_opened(0, STEP)
    fire(env, "a", response_time=50)  # during the warm-up
    gevent.sleep(0.5)
    fire(env, "a", response_time=10)
    steps.stage_closed(0, completed=True)
    steps.close()
    rows = read(files.path("steps"))
    assert {(r["name"], r["requests"], r["warmup_s"]) for r in rows} == {
        ("Aggregated", "1", "0.2"),
        ("a", "1", "0.2"),
    }
    [start, end] = float(rows[0]["window_start_epoch_s"]), float(rows[0]["window_end_epoch_s"])
    assert end > start
    assert {r["response_time_ms"] for r in read(files.path("step_latency"))} == {"10"}


def test_the_warm_up_never_takes_more_than_half_a_step_and_a_step_inside_it_measures_nothing(
    tmp_path: Path,
) -> None:
    env = local_env()
    files = RunFiles(tmp_path, "locust")
    steps = StepStats(env, files, warmup_s=30.0)
    steps.stage_opened(0, Stage("short", 0.0, 0.4, 1, 1.0))  # warm-up capped at 0.2 s
    fire(env, "a")
    gevent.sleep(0.5)
    fire(env, "a")
    steps.stage_closed(0, completed=True)
    steps.stage_opened(1, STEP)  # warm-up 30 s: the step is stopped long before it is over
    fire(env, "a")
    steps.stage_closed(1, completed=False)
    steps.close()
    rows = read(files.path("steps"))
    assert {(r["stage"], r["name"], r["requests"], r["warmup_s"]) for r in rows} == {
        ("0", "Aggregated", "1", "0.2"),
        ("0", "a", "1", "0.2"),
    }
