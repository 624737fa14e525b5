"""The long-form CSV, the live view and generator-saturation tracking."""

from __future__ import annotations

import csv
from pathlib import Path

from inferswarm.telemetry.samples import COLUMNS, Sample, sample
from inferswarm.telemetry.store import LiveView, SaturationTracker, TelemetryCsv


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_long_form_visible_after_each_flush(tmp_path: Path) -> None:
    path = tmp_path / "locust_telemetry.csv"
    out = TelemetryCsv(path)
    assert path.read_text() == ",".join(COLUMNS) + "\n"  # the header is on disk at once
    out.write([sample(1700000000.12345, "local@h", "host", "host", "cpu_util_pct", 12.5)])
    out.write([sample(1700000000.5, "worker@h/7", "nvml", "gpu0", "gpu_mem_used_bytes", 2**36)])
    out.flush()
    # a reader (or a run killed now) sees both rows before the file is closed
    got = rows(path)
    assert got == [
        {
            "timestamp": "1700000000.123",
            "node": "local@h",
            "source": "host",
            "device": "host",
            "metric": "cpu_util_pct",
            "value": "12.5",
            "unit": "%",
        },
        {
            "timestamp": "1700000000.500",
            "node": "worker@h/7",
            "source": "nvml",
            "device": "gpu0",
            "metric": "gpu_mem_used_bytes",
            "value": str(2**36),  # big integers stay exact
            "unit": "bytes",
        },
    ]
    out.close()
    out.write([sample(1.0, "n", "host", "host", "load_1m", 1)])  # after close: ignored, no crash
    assert len(rows(path)) == 2 and out.rows == 2


def test_csv_quotes_odd_names(tmp_path: Path) -> None:
    s = Sample(1.0, 'node,with "quotes"', "host", "host", "load_1m", 0.5, "load")
    out = TelemetryCsv(tmp_path / "t.csv")
    out.write([s])
    out.close()
    assert rows(tmp_path / "t.csv")[0]["node"] == 'node,with "quotes"'
    assert (tmp_path / "t.csv").read_text().splitlines()[1].startswith('1.000,"node,with ""quotes""",host')


def test_live_view_latest_and_series_since() -> None:
    live = LiveView(history_points=3)
    for t in range(5):
        live.add([sample(float(t), "a", "host", "host", "cpu_util_pct", t * 10)])
    live.add([sample(4.0, "b", "nvml", "gpu0", "gpu_util_pct", 99)])
    assert live.nodes() == ["a", "b"]
    latest = {(r["node"], r["metric"]): r for r in live.rows(now=6.0)}
    assert latest[("a", "cpu_util_pct")]["value"] == 40 and latest[("a", "cpu_util_pct")]["age_s"] == 2.0
    (series,) = live.series(["cpu_util_pct"], since=2.5)
    assert series["t"] == [3.0, 4.0] and series["v"] == [30, 40]  # bounded to 3 points, then filtered
    assert live.series(["gpu_util_pct"])[0]["v"] == [99]


def test_saturation_flags_generators_not_the_master() -> None:
    tracker = SaturationTracker(90.0)
    batch = [
        sample(1.0, "worker@h/1", "process", "pid1", "process_cpu_pct", 95.0),
        sample(1.0, "worker@h/2", "process", "pid2", "process_cpu_pct", 40.0),
        sample(1.0, "master@h", "process", "pid3", "process_cpu_pct", 99.0),
        sample(1.0, "worker@h/2", "host", "host", "cpu_util_pct", 100.0),  # host CPU is not the generator
    ]
    flagged = tracker.check(batch)
    assert [(s.node, s.metric, s.value, s.unit) for s in flagged] == [
        ("worker@h/1", "generator_saturated", 1, "flag")
    ]
    tracker.check([sample(3.0, "worker@h/1", "process", "pid1", "process_cpu_pct", 99.5)])
    summary = tracker.summary()
    assert summary["saturated"] is True and summary["threshold_cpu_pct"] == 90.0
    assert summary["nodes"] == {
        "worker@h/1": {"first_epoch_s": 1.0, "last_epoch_s": 3.0, "samples": 2, "peak_cpu_pct": 99.5}
    }
    assert not SaturationTracker(90.0).saturated


def test_a_generator_behind_its_send_schedule_is_flagged_beside_cpu() -> None:
    tracker = SaturationTracker(90.0, lag_threshold_ms=10.0)
    flagged = tracker.check(
        [
            sample(1.0, "local@h", "process", "pid1", "schedule_lag_ms", 4.0),  # timer jitter: on time
            sample(2.0, "local@h", "process", "pid1", "schedule_lag_ms", 250.0),
            sample(3.0, "local@h", "process", "pid1", "schedule_lag_ms", 40.0),
        ]
    )
    assert [(s.timestamp, s.metric, s.value, s.unit) for s in flagged] == [
        (2.0, "generator_behind", 1, "flag"),
        (3.0, "generator_behind", 1, "flag"),
    ]
    summary = tracker.summary()
    assert summary["behind_schedule"] == {
        "local@h": {"first_epoch_s": 2.0, "last_epoch_s": 3.0, "samples": 2, "peak_lag_ms": 250.0}
    }
    assert summary["lag_threshold_ms"] == 10.0 and summary["saturated"] is False  # its CPU was fine
