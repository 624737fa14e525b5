"""How exactly does an open-loop run send at its rate, and what does the per-request log cost?

Against a static nginx on loopback (`apt-get install nginx-light`; the script starts its own, one worker
process), each round is a real `inferswarm run` (one Locust process, so at most one core), telemetry off:

1. **Accuracy.** A `rate` load with `constant` and then `poisson` arrivals at 10, 100 and 1,000
   requests/s (`--seconds` each): the achieved rate (requests whose intended start fell in the stage,
   over the stage's length: the generator's own accuracy, not Poisson's sampling noise, which is printed
   beside it as the expected spread) and the schedule lag (send - intended start) p50/p99/max, from the run's
   `locust_requests.parquet`.
2. **Highest rate one core sustains.** Constant arrivals from 1,000 requests/s up in steps of 500 until
   the achieved rate misses by more than 1 % or the lag p99 passes 10 ms; the last rate that held.
3. **Per-request log cost.** A closed loop (16 users back to back) with `output.request_log` on and
   off, alternated `--rounds` times; medians of requests/s over the steady seconds and their ratio.

    .venv/bin/python bench/arrival_accuracy.py [--seconds 10] [--rounds 3]

Goals: achieved within 1 %; lag p99 under 2 ms up to 1,000 requests/s on one process; the log costs
under 3 % of throughput.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from scale_workers import Nginx  # noqa: E402

RATES = (10, 100, 1000)
MAX_START, MAX_STEP, MAX_TOP = 1000, 500, 6000
LAG_BOUND_MS = 10.0
USERS = 16
SKIP_S = 2  # leading seconds of a closed-loop round left out (spawning, connections)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def config(url: str, load: dict[str, Any], out: Path, request_log: bool = True) -> dict[str, Any]:
    return {
        "name": "arrivals",
        "target": {"base_url": url, "request_timeout_s": 10},
        "assets_dir": str(REPO / "test-assets"),
        "capabilities": [{"name": "ok", "kind": "json", "method": "GET", "path": "/ok"}],
        "load": load,
        "telemetry": {"enabled": False},
        "output": {"dir": str(out), "request_log": request_log},
    }


def run(data: dict[str, Any], tmp: Path, timeout_s: float) -> Path:
    """One `inferswarm run` without a report; its run directory."""
    out = Path(data["output"]["dir"])
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    before = set(out.glob("*")) if out.exists() else set()
    cmd = [sys.executable, "-m", "inferswarm.cli", "run", str(path), "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    made = sorted(set(out.glob("*")) - before)
    if proc.returncode != 0 or not made:
        raise RuntimeError(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return made[-1]


def stage_window(run_dir: Path) -> tuple[float, float]:
    lines = (run_dir / "locust_stages.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = dict(zip(header, lines[1].split(","), strict=False))
    return float(row["start_epoch_s"]), float(row["end_epoch_s"])


def accuracy(url: str, arrival: str, rps: float, seconds: float, tmp: Path) -> dict[str, float]:
    load = {
        "shape": "rate",
        "arrival": arrival,
        "stages": [{"duration_s": seconds, "rps": rps}],
        "max_concurrency": 64,
    }
    run_dir = run(config(url, load, tmp / "out"), tmp, seconds + 60)
    start, end = stage_window(run_dir)
    table = pq.read_table(run_dir / "locust_requests.parquet", columns=["intended_epoch_s", "send_epoch_s"])
    intended = table.column("intended_epoch_s").to_numpy()
    send = table.column("send_epoch_s").to_numpy()
    inside = (intended >= start) & (intended < end)
    lag_ms = (send[inside] - intended[inside]) * 1000.0
    expected = rps * (end - start)
    return {
        "achieved": float(inside.sum()) / (end - start),
        "noise_pct": 0.0 if arrival == "constant" else 100.0 / math.sqrt(expected),
        "lag_p50": float(np.percentile(lag_ms, 50)),
        "lag_p99": float(np.percentile(lag_ms, 99)),
        "lag_max": float(lag_ms.max()),
    }


def closed_loop_rps(url: str, request_log: bool, seconds: float, tmp: Path) -> float:
    load = {"shape": "stages", "stages": [{"duration_s": seconds, "users": USERS}]}
    run_dir = run(config(url, load, tmp / "out", request_log), tmp, seconds + 60)
    rows = list(csv_rows(run_dir / "locust_stats_history.csv"))
    counts = [
        (int(float(r["Timestamp"])), int(r["Total Request Count"])) for r in rows if r["Name"] == "Aggregated"
    ]
    steady = [c for c in counts if c[0] >= counts[0][0] + SKIP_S]
    if len(steady) < 2:
        raise RuntimeError("too short a round: raise --seconds")
    return (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])


def csv_rows(path: Path) -> Any:
    import csv

    with path.open() as handle:
        yield from csv.DictReader(handle)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each rate run")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of the log-cost comparison")
    args = parser.parse_args()
    if nginx_binary() is None:
        print("arrival_accuracy: nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "nginx").mkdir()
        with Nginx(tmp / "nginx") as nginx:
            heads = ("arrival", "offered", "achieved", "error", "noise", "lag p50", "p99", "max")
            print("{:9} {:>8} {:>9} {:>7} {:>6} {:>8} {:>7} {:>7}".format(*heads))
            for arrival in ("constant", "poisson"):
                for rps in RATES:
                    r = accuracy(nginx.url, arrival, rps, args.seconds, tmp)
                    error = 100.0 * (r["achieved"] / rps - 1)
                    print(
                        f"{arrival:9} {rps:>8g} {r['achieved']:>9.2f} {error:>+6.2f}% "
                        f"{r['noise_pct']:>5.1f}% {r['lag_p50']:>6.2f}ms {r['lag_p99']:>5.2f}ms "
                        f"{r['lag_max']:>5.1f}ms"
                    )
            held = None
            for rps in range(MAX_START, MAX_TOP + 1, MAX_STEP):
                r = accuracy(nginx.url, "constant", rps, args.seconds, tmp)
                ok = abs(r["achieved"] / rps - 1) <= 0.01 and r["lag_p99"] <= LAG_BOUND_MS
                verdict = "holds" if ok else "misses"
                print(
                    f"highest rate: {rps} rps -> {r['achieved']:.1f} achieved, "
                    f"lag p99 {r['lag_p99']:.2f} ms: {verdict}"
                )
                if not ok:
                    break
                held = rps
            print(f"highest constant rate one Locust process sustains here: {held} requests/s")
            on: list[float] = []
            off: list[float] = []
            for _ in range(args.rounds):
                on.append(closed_loop_rps(nginx.url, True, args.seconds, tmp))
                off.append(closed_loop_rps(nginx.url, False, args.seconds, tmp))
            print(
                f"request log on: {statistics.median(on):.0f} rps, off: {statistics.median(off):.0f} rps "
                f"(rounds {json.dumps([round(x) for x in on])} vs {json.dumps([round(x) for x in off])}); "
                f"on/off = {statistics.median(on) / statistics.median(off):.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
