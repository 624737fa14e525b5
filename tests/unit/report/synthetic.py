"""Synthetic run directories with known answers, written in the exact formats a run leaves."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from inferswarm.locust.shape import STAGE_COLUMNS

START = 1_700_000_000.0
PCT_COLUMNS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
PCT_LEVELS = [0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PCT_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PCT_COLUMNS,
]


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def step(
    users: int,
    seconds: int,
    ok: int,
    fail: int,
    latency: dict[int, int],
    gpu: float = 50.0,
    ok_latency: dict[int, int] | None = None,
    completed: bool = True,
) -> dict[str, Any]:
    """A step: `latency` is the histogram of all its requests; `ok_latency`, when given, that of its
    successful ones (written as `<cap>:ok` entries, as runs record them)."""
    assert sum(latency.values()) == ok + fail
    assert ok_latency is None or sum(ok_latency.values()) == ok
    return {
        "users": users,
        "seconds": seconds,
        "ok": ok,
        "fail": fail,
        "latency": latency,
        "gpu": gpu,
        "ok_latency": ok_latency,
        "completed": completed,
    }


def locust_percentile(histogram: dict[int, int], q: float) -> int:
    """Locust's rule, written out again so the synthetic files do not use the code they test."""
    total = sum(histogram.values())
    processed = 0
    for ms in sorted(histogram, reverse=True):
        processed += histogram[ms]
        if total - processed <= int(total * q):
            return ms
    return min(histogram)


def write_run(
    run_dir: Path,
    steps: list[dict[str, Any]],
    slo: list[str] | None = None,
    telemetry: bool = True,
    cap: str = "cap",
    report: dict[str, Any] | None = None,
    load: dict[str, Any] | None = None,
    error: str = "capacity: HTTP 503",
    after_stop_s: int = 0,
) -> Path:
    """One capability `cap`; every step's requests spread evenly over its seconds; warm-up 0 unless given;
    `load` is the config's load section as run.json holds it; every failure is `error` (status 0 for a
    connection error, else 503). `after_stop_s`: seconds of history Locust writes after the test stopped
    (the web UI's stop: 0 users, the last rates repeated)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "name": "synthetic",
        "slo": slo or [],
        "report": report or {"warmup_s": 0},
        "load": load or {"shape": "stages", "per_user_rps": None},
    }
    end = START + sum(s["seconds"] for s in steps)
    run = {
        "name": "synthetic",
        "config": config,
        "csv_prefix": "locust",
        "status": "completed",
        "mode": "local",
        "started_at": "2023-11-14T22:13:20.000Z",
        "ended_at": "x",
        "duration_s": end - START,
        "versions": {"inferswarm": "test"},
        "host": {"hostname": "h"},
    }
    (run_dir / "run.json").write_text(json.dumps(run))

    ok_name = f"{cap}:ok"
    stages, steps_rows, latency_rows, history, telemetry_rows = [], [], [], [], []
    ok_total: dict[int, int] = {}
    t, total_req, total_fail = START, 0, 0
    for index, s in enumerate(steps):
        start, stop = t, t + s["seconds"]
        completed = "true" if s.get("completed", True) else "false"
        stages.append(
            [
                index,
                f"step {index + 1}",
                s["users"],
                1,
                start - START,
                stop - START,
                start,
                stop,
                completed,
                "",
            ]
        )
        for name in (cap, "Aggregated"):
            steps_rows.append([index, name, s["ok"] + s["fail"], s["fail"], start, stop, 0])
            latency_rows += [[index, name, ms, n] for ms, n in sorted(s["latency"].items())]
        ok_latency = s.get("ok_latency")
        if ok_latency:
            steps_rows.append([index, ok_name, s["ok"], 0, start, stop, 0])
            latency_rows += [[index, ok_name, ms, n] for ms, n in sorted(ok_latency.items())]
            for ms, n in ok_latency.items():
                ok_total[ms] = ok_total.get(ms, 0) + n
        per_second = (s["ok"] + s["fail"]) / s["seconds"]
        fail_per_second = s["fail"] / s["seconds"]
        for second in range(1, s["seconds"] + 1):
            done = round(per_second * second)
            failed = round(fail_per_second * second)
            for name in (cap, "Aggregated"):
                history.append(
                    [
                        int(start) + second,
                        s["users"],
                        "POST" if name == cap else "",
                        name,
                        per_second,
                        fail_per_second,
                        *["N/A"] * len(PCT_COLUMNS),
                        total_req + done,
                        total_fail + failed,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ]
                )
            if ok_latency:
                pcts = [locust_percentile(ok_latency, q) for q in PCT_LEVELS]
                history.append(
                    [
                        int(start) + second,
                        s["users"],
                        "success",
                        ok_name,
                        s["ok"] / s["seconds"],
                        0.0,
                        *pcts,
                        round(s["ok"] / s["seconds"] * second),
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                    ]
                )
            if telemetry:
                ts = start + second
                telemetry_rows += [
                    [f"{ts:.3f}", "agent@gpu", "nvml", "gpu0", "gpu_util_pct", s["gpu"], "%"],
                    [
                        f"{ts:.3f}",
                        "agent@gpu",
                        "nvml",
                        "gpu0",
                        "gpu_mem_used_bytes",
                        int(s["gpu"] * 2**30),
                        "bytes",
                    ],
                    [f"{ts:.3f}", "agent@gpu", "nvml", "gpu0", "gpu_mem_total_bytes", 100 * 2**30, "bytes"],
                    [
                        f"{ts:.3f}",
                        "agent@gpu",
                        "nvml",
                        "gpu0",
                        "gpu_energy_j",
                        1000.0 + 100 * (ts - START),
                        "J",
                    ],
                    [f"{ts:.3f}", "local@lg", "host", "host", "cpu_util_pct", 10.0, "%"],
                ]
        total_req += s["ok"] + s["fail"]
        total_fail += s["fail"]
        t = stop
    last = history[-2:] if history else []
    for second in range(1, after_stop_s + 1):
        for row in last:  # Locust repeats the last window's rates, with 0 users
            history.append([int(t) + second, 0, *row[2:]])
    _write(
        run_dir / "locust_stages.csv",
        STAGE_COLUMNS,
        stages,
    )
    _write(
        run_dir / "locust_steps.csv",
        ["stage", "name", "requests", "failures", "window_start_epoch_s", "window_end_epoch_s", "warmup_s"],
        steps_rows,
    )
    _write(run_dir / "locust_step_latency.csv", ["stage", "name", "response_time_ms", "count"], latency_rows)
    _write(run_dir / "locust_stats_history.csv", HISTORY_COLUMNS, history)
    seconds = end - START
    stats = [
        [
            "POST" if name == cap else "",
            name,
            total_req,
            total_fail,
            0,
            0,
            0,
            0,
            0,
            total_req / seconds,
            total_fail / seconds,
            100,
            100,
            100,
            100,
            200,
            300,
            400,
            500,
            600,
            600,
            600,
        ]
        for name in (cap, "Aggregated")
    ]
    if ok_total:
        ok_count = sum(ok_total.values())
        pcts = [locust_percentile(ok_total, q) for q in PCT_LEVELS]
        mean = sum(ms * n for ms, n in ok_total.items()) / ok_count
        stats.insert(
            1,
            [
                "success",
                ok_name,
                ok_count,
                0,
                pcts[0],
                mean,
                min(ok_total),
                max(ok_total),
                0,
                ok_count / seconds,
                0.0,
                *pcts,
            ],
        )
    _write(run_dir / "locust_stats.csv", STATS_COLUMNS, stats)
    _write(
        run_dir / "locust_failures.csv",
        ["Method", "Name", "Error", "Occurrences"],
        [["POST", cap, error, total_fail]] if total_fail else [],
    )
    failed_status = 0 if error.startswith("connection_error") else 503
    _write(
        run_dir / "locust_status_codes.csv",
        ["name", "status", "count"],
        [[cap, 200, total_req - total_fail]] + ([[cap, failed_status, total_fail]] if total_fail else []),
    )
    if telemetry:
        _write(
            run_dir / "locust_telemetry.csv",
            ["timestamp", "node", "source", "device", "metric", "value", "unit"],
            telemetry_rows,
        )
    return run_dir


# A ramp with a known answer: linear to 4 users, then 6 users add almost nothing while p95 doubles
# (saturation at 6, knee at 4), then 8 users fail a third of their requests.
RAMP = [
    step(2, 10, 100, 0, {100: 50, 200: 45, 900: 5}, gpu=20.0),
    step(4, 10, 200, 0, {100: 100, 200: 90, 900: 10}, gpu=40.0),
    step(6, 10, 210, 0, {200: 105, 400: 94, 1800: 11}, gpu=90.0),
    step(8, 10, 200, 100, {300: 150, 600: 135, 2500: 15}, gpu=95.0),
]
