"""Does a second worker process add throughput? Aggregate requests/s with 1 and 2 worker processes.

Each round is a real `inferswarm run CONFIG --processes N` (a local master plus N forked Locust
workers) against a fast target on loopback: nginx answering a fixed JSON body when nginx is installed
(`apt-get install nginx-light`), else the reference target's cheapest route (`/health`, which then is
the bottleneck and says little about Locust). Rounds alternate 1, 2, 2, 1, ... so drift hits both
alike; the medians are compared. Figures per round: requests/s over the steady part of the round (from
the master's stats history), the master's and the workers' CPU (from the run's own telemetry).

    .venv/bin/python bench/scale_workers.py [--round-s 10] [--cycles 3] [--users 16] [--target auto]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inferswarm.emulator.launcher import ReferenceTarget, free_port, wait_for_http  # noqa: E402

WARMUP_S = 3  # left out of each round: spawning, connection setup
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
}}
"""


class Nginx:
    """nginx on a free loopback port with one fixed JSON answer; one worker process."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(self.dir)])
        if not wait_for_http(f"{self.url}/ok", 10, self.proc):
            raise RuntimeError(f"nginx did not start: {(self.dir / 'error.log').read_text()}")
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def write_config(path: Path, url: str, route: str, users: int, round_s: float) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "scale",
                "target": {"base_url": url, "request_timeout_s": 10},
                "assets_dir": str(REPO / "test-assets"),
                "capabilities": [{"name": "ok", "kind": "json", "method": "GET", "path": route}],
                "load": {"shape": "stages", "stages": [{"duration_s": round_s, "users": users}]},
                "telemetry": {"interval_s": 1.0},
            }
        )
    )


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (nginx serves from a worker process)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def one_round(config: Path, out: Path, processes: int, target_pid: int) -> dict[str, Any]:
    target_cpu, began = cpu_seconds(target_pid), time.monotonic()
    cmd = [sys.executable, "-m", "inferswarm.cli", "run", str(config), "--processes", str(processes)]
    proc = subprocess.run(
        [*cmd, "--out", str(out), "--no-report"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    target_cpu_pct = 100 * (cpu_seconds(target_pid) - target_cpu) / (time.monotonic() - began)
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    with (run_dir / "locust_stats_history.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated" and int(r["User Count"]) > 0]
    start = int(rows[0]["Timestamp"]) + WARMUP_S
    steady = [r for r in rows if int(r["Timestamp"]) >= start]
    first, last = steady[0], steady[-1]
    seconds = int(last["Timestamp"]) - int(first["Timestamp"])
    requests = int(last["Total Request Count"]) - int(first["Total Request Count"])
    failures = int(last["Total Failure Count"]) - int(first["Total Failure Count"])
    cpu: dict[str, list[float]] = {"master": [], "workers": []}
    with (run_dir / "locust_telemetry.csv").open() as handle:
        for r in csv.DictReader(handle):
            if r["metric"] != "process_cpu_pct" or not start <= float(r["timestamp"]) <= int(
                last["Timestamp"]
            ):
                continue
            cpu["master" if r["node"].startswith("master@") else "workers"].append(float(r["value"]))
    return {
        "processes": processes,
        "rps": requests / seconds if seconds else 0.0,
        "failures": failures,
        "target_cpu_pct": target_cpu_pct,
        "master_cpu_pct": statistics.fmean(cpu["master"]) if cpu["master"] else float("nan"),
        # all workers together (one sample per worker per second): 100 % is one core
        "workers_cpu_pct": sum(cpu["workers"]) * processes / len(cpu["workers"])
        if cpu["workers"]
        else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-s", type=float, default=10.0)
    parser.add_argument("--cycles", type=int, default=3, help="each cycle runs 1,2 then 2,1 worker processes")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--target", choices=["auto", "nginx", "reference"], default="auto")
    args = parser.parse_args()
    installed = shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    use_nginx = args.target == "nginx" or (args.target == "auto" and installed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server: Any = Nginx(tmp) if use_nginx else ReferenceTarget(None)
        with server:
            route = "/ok" if use_nginx else "/health"
            print(f"target: {'nginx' if use_nginx else 'reference target'} {server.url}{route}")
            config = tmp / "scale.yaml"
            write_config(config, server.url, route, args.users, args.round_s)
            rounds: list[dict[str, Any]] = []
            for cycle in range(args.cycles):
                for processes in (1, 2) if cycle % 2 == 0 else (2, 1):
                    assert server.proc is not None
                    result = one_round(config, tmp / "out", processes, server.proc.pid)
                    rounds.append(result)
                    print(
                        f"  {processes} worker process(es): {result['rps']:8.0f} req/s, "
                        f"{result['failures']} failures, master CPU {result['master_cpu_pct']:5.1f}%, "
                        f"workers CPU {result['workers_cpu_pct']:5.1f}%, "
                        f"target CPU {result['target_cpu_pct']:5.1f}% (whole round; 100% = one core)",
                        flush=True,
                    )
                    time.sleep(0.5)
    one = [r for r in rounds if r["processes"] == 1]
    two = [r for r in rounds if r["processes"] == 2]
    rps1, rps2 = statistics.median(r["rps"] for r in one), statistics.median(r["rps"] for r in two)
    print(f"median req/s: 1 worker {rps1:.0f}, 2 workers {rps2:.0f}; scaling factor {rps2 / rps1:.2f}x")
    pairs = [b["rps"] / a["rps"] for a, b in zip(one, two, strict=True)]
    print(f"per-cycle factors: {', '.join(f'{p:.2f}' for p in pairs)}")
    print(
        f"median master CPU: {statistics.median(r['master_cpu_pct'] for r in one):.1f}% with 1 worker, "
        f"{statistics.median(r['master_cpu_pct'] for r in two):.1f}% with 2 ({sys.platform}, "
        f"{len(os.sched_getaffinity(0))} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
