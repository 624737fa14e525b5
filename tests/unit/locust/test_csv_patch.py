"""Locust's CSVs are final when closed, and its writer greenlet ends quietly afterwards."""

from __future__ import annotations

import csv
from pathlib import Path

import gevent
from locust import stats
from locust.env import Environment

from inferswarm.locust import csv_patch as locust_csv


def counts(path: Path) -> dict[str, int]:
    with path.open() as handle:
        return {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(handle)}


def test_close_writes_the_final_statistics_and_stops_the_writer(tmp_path: Path) -> None:
    locust_csv.install()
    env = Environment()
    env.create_local_runner()
    assert env.runner is not None
    prefix = str(tmp_path / "locust")
    writer = stats.StatsCSVFileWriter(env, stats.PERCENTILES_TO_REPORT, prefix, full_history=False)
    greenlet = gevent.spawn(writer.stats_writer)
    for _ in range(3):
        env.runner.stats.log_request("POST", "chat", 10, 100)
    gevent.sleep(0.2)  # the writer's first pass: 3 requests
    for _ in range(4):  # logged after that pass, before its next one (a second later)
        env.runner.stats.log_request("POST", "chat", 10, 100)
    env.runner.stats.log_error("POST", "chat", RuntimeError("boom"))
    writer.close_files()
    assert counts(tmp_path / "locust_stats.csv") == {"chat": 7, "Aggregated": 7}
    with (tmp_path / "locust_failures.csv").open() as handle:
        assert [r["Error"] for r in csv.DictReader(handle)] == ["RuntimeError('boom')"]
    gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.2)  # the writer wakes on closed files...
    assert greenlet.dead and greenlet.exception is None  # ...and ends without an error
