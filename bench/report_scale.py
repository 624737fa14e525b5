"""`inferswarm report` on a synthetic 24-hour run: 1 s stats history for 10 capabilities and telemetry
for 8 GPUs on 4 nodes (what NVML sampling writes: 9 GPU metrics per device, host metrics and 8 per-core
CPU rows per node, every second), ramped in 24 one-hour steps. `--gpus-per-node 8` makes it 32 GPUs.
Prints the report's wall time and peak memory (its own process, as `inferswarm run` starts it).
`--request-log-rps 2000 --hours 1` adds a per-request log (`locust_requests.parquet`) of that many
requests per second over the whole run, which the report then reads for its exact percentiles.

    .venv/bin/python bench/report_scale.py [--hours 24] [--keep DIR] [--request-log-rps N]

Goal (issue "Reports"): under 10 s and under 1 GiB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

START = 1_790_000_000
CAPS = [f"cap-{i}" for i in range(10)]
NODES = [f"agent@gpu-{n}" for n in range(4)]
GPU_METRICS = [
    ("gpu_util_pct", "%"),
    ("gpu_mem_ctrl_util_pct", "%"),
    ("gpu_mem_used_bytes", "bytes"),
    ("gpu_mem_total_bytes", "bytes"),
    ("gpu_temp_c", "C"),
    ("gpu_power_w", "W"),
    ("gpu_energy_j", "J"),
    ("gpu_sm_clock_mhz", "MHz"),
    ("gpu_throttle_reasons", "bitmask"),
]
HOST_METRICS = [
    ("cpu_util_pct", "%"),
    ("mem_used_bytes", "bytes"),
    ("mem_total_bytes", "bytes"),
    ("mem_util_pct", "%"),
    ("swap_used_bytes", "bytes"),
    ("net_rx_bytes", "bytes"),
    ("net_tx_bytes", "bytes"),
    ("disk_read_bytes", "bytes"),
    ("disk_write_bytes", "bytes"),
    ("load_1m", "load"),
]


def series_names(gpus_per_node: int) -> list[tuple[str, str, str, str, str]]:
    names = []
    for node in NODES:
        for g in range(gpus_per_node):
            names += [(node, "nvml", f"gpu{g}", m, u) for m, u in GPU_METRICS]
        names += [(node, "host", "host", m, u) for m, u in HOST_METRICS]
        names += [(node, "host", f"cpu{c}", "cpu_util_pct", "%") for c in range(8)]
    return names


def write_run(run_dir: Path, hours: int, gpus_per_node: int) -> dict[str, int]:
    seconds = hours * 3600
    rng = np.random.default_rng(1)
    t = np.arange(1, seconds + 1) + START
    users = (np.minimum((t - START) // 3600 + 1, hours) * 10).astype(np.int64)
    stages = [
        [
            h,
            f"step {h + 1}",
            (h + 1) * 10,
            10,
            h * 3600,
            (h + 1) * 3600,
            START + h * 3600,
            START + (h + 1) * 3600,
            "true",
        ]
        for h in range(hours)
    ]
    (run_dir / "locust_stages.csv").write_text(
        "stage,name,users,spawn_rate,planned_start_s,planned_end_s,start_epoch_s,end_epoch_s,completed\n"
        + "".join(",".join(map(str, s)) + "\n" for s in stages)
    )
    # stats history: one row per capability per second, then Aggregated
    rps = np.minimum(users * 0.5, 400.0) / len(CAPS)
    pct = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    columns: dict[str, list[np.ndarray]] = {}
    names = [*CAPS, "Aggregated"]
    for i, name in enumerate(names):
        scale = len(CAPS) if name == "Aggregated" else 1
        cols = {
            "Timestamp": t,
            "User Count": users,
            "Type": np.full(seconds, "POST" if scale == 1 else ""),
            "Name": np.full(seconds, name),
            "Requests/s": rps * scale,
            "Failures/s": np.zeros(seconds),
            **{p: (100 + 10 * i + users * (k + 1) // 5).astype(np.int64) for k, p in enumerate(pct)},
            "Total Request Count": (np.cumsum(rps) * scale).astype(np.int64),
            "Total Failure Count": np.zeros(seconds, dtype=np.int64),
        }
        for key, value in cols.items():
            columns.setdefault(key, []).append(value)
    history = pa.table({k: np.concatenate(v) for k, v in columns.items()})
    pacsv.write_csv(history, run_dir / "locust_stats_history.csv")
    total = int(np.sum(rps) * len(CAPS))
    stats_rows = [
        f"POST,{c},{total // 10},0,100,120,5,900,10,{rps.mean():.2f},0," + ",".join(["100"] * 11)
        for c in CAPS
    ] + [f",Aggregated,{total},0,100,120,5,900,10,{rps.mean() * 10:.2f},0," + ",".join(["100"] * 11)]
    (run_dir / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
        "Max Response Time,Average Content Size,Requests/s,Failures/s,"
        + ",".join(pct)
        + "\n"
        + "\n".join(stats_rows)
        + "\n"
    )
    # telemetry: an hour at a time, long form
    series = series_names(gpus_per_node)
    rows = 0
    with (run_dir / "locust_telemetry.csv").open("wb") as out:
        for hour in range(hours):
            ts = np.repeat(t[hour * 3600 : (hour + 1) * 3600].astype(np.float64), len(series))
            n = len(ts)
            idx = np.tile(np.arange(len(series)), 3600)
            table = pa.table(
                {
                    "timestamp": ts,
                    "node": pa.DictionaryArray.from_arrays(pa.array(idx), pa.array([s[0] for s in series])),
                    "source": pa.DictionaryArray.from_arrays(pa.array(idx), pa.array([s[1] for s in series])),
                    "device": pa.DictionaryArray.from_arrays(pa.array(idx), pa.array([s[2] for s in series])),
                    "metric": pa.DictionaryArray.from_arrays(pa.array(idx), pa.array([s[3] for s in series])),
                    "value": np.round(rng.random(n) * 100, 2),
                    "unit": pa.DictionaryArray.from_arrays(pa.array(idx), pa.array([s[4] for s in series])),
                }
            )
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=hour == 0, quoting_style="none"))
            out.write(buffer.getvalue().to_pybytes())
            rows += n
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "name": "day",
                "status": "completed",
                "csv_prefix": "locust",
                "config": {"slo": ["p95_ms < 5000"]},
            }
        )
    )
    return {"history_rows": history.num_rows, "telemetry_rows": rows}


def write_request_log(run_dir: Path, hours: int, rps: int) -> int:
    """`rps` requests per second over the run, an hour's rows at a time (the bench's own memory stays
    small); response times lognormal around 200 ms, 2 % failures, in steps like the history's."""
    import pyarrow.parquet as pq

    from inferswarm.requests_file import SCHEMA

    rng = np.random.default_rng(2)
    rows = 0
    with pq.ParquetWriter(run_dir / "locust_requests.parquet", SCHEMA, compression="zstd") as writer:
        for hour in range(hours):
            n = rps * 3600
            send = START + hour * 3600 + np.sort(rng.uniform(0, 3600, n))
            ok = rng.random(n) > 0.02
            columns = {
                "capability": pa.array(np.array(CAPS)[rng.integers(0, len(CAPS), n)]),
                "node": pa.array(np.array(["local"] * n)),
                "intended_epoch_s": pa.array(send - rng.exponential(0.0005, n)),
                "send_epoch_s": pa.array(send),
                "first_byte_ms": pa.array(rng.lognormal(4.5, 0.4, n)),
                "response_ms": pa.array(rng.lognormal(5.3, 0.4, n)),
                "status": pa.array(np.where(ok, 200, 503).astype(np.int32)),
                "ok": pa.array(ok),
                "category": pa.array(np.where(ok, "", "capacity")),
                "bytes_received": pa.array(np.full(n, 120, dtype=np.int64)),
                "ttft_ms": pa.nulls(n, pa.float64()),
                "itl_ms": pa.nulls(n, pa.float64()),
                "output_tokens": pa.nulls(n, pa.int64()),
            }
            writer.write_table(pa.Table.from_pydict(columns, schema=SCHEMA), row_group_size=131072)
            rows += n
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--gpus-per-node", type=int, default=2, help="2: 8 GPUs on 4 nodes; 8: 32 GPUs")
    parser.add_argument("--keep", help="write the synthetic run here and keep it")
    parser.add_argument("--request-log-rps", type=int, default=0, help="add a per-request log at this rate")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="report-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        counts = write_run(base, args.hours, args.gpus_per_node)
        if args.request_log_rps:
            logged = write_request_log(base, args.hours, args.request_log_rps)
            print(f"request log: {logged:,} requests ({args.request_log_rps} per second)")
        size = sum(p.stat().st_size for p in base.iterdir()) / 2**20
        print(
            f"synthetic {args.hours} h run, {4 * args.gpus_per_node} GPUs on 4 nodes: "
            f"{counts['history_rows']:,} history rows, {counts['telemetry_rows']:,} telemetry "
            f"rows, {size:,.0f} MiB on disk (written in {time.perf_counter() - started:.1f} s)"
        )
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "inferswarm.cli", "report", str(base), "--no-png"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"inferswarm report: {wall:.1f} s wall, peak RSS {peak_mib:,.0f} MiB, exit {proc.returncode}")
        if proc.returncode not in (0, 3):
            print(proc.stderr[-3000:])
            return 1
        html = (base / "report.html").stat().st_size / 2**20
        print(f"report.html {html:.1f} MiB; goal: < 10 s and < 1024 MiB")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
