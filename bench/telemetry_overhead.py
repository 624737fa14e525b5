"""What telemetry costs the load generator, measured side by side in one run.

Throughput of one capability user class against the reference target on loopback, in alternating rounds
with telemetry off, on at the default 1 Hz and on at the maximum 10 Hz (the order rotates every cycle so
drift hits every mode alike); the median round per mode is compared. Also: the cost of one local sample
set (host + process + GPU where present), per set and per sample row, and the gevent loop lag seen by
an always-on probe in each mode.

    .venv/bin/python bench/telemetry_overhead.py [--round-s 5] [--cycles 4] [--users 8]

Goal (issue "Telemetry"): throughput within 1 %, under 1 ms per sample.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401  (gevent monkey-patching first, as in a real Locust process)
import yaml
from locust.env import Environment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inferswarm.config import parse_config  # noqa: E402
from inferswarm.emulator.launcher import ReferenceTarget  # noqa: E402
from inferswarm.locust.listeners.telemetry import TelemetryHub  # noqa: E402
from inferswarm.locust.sampling import LoopLagProbe  # noqa: E402
from inferswarm.locust.user import build_user_classes  # noqa: E402
from inferswarm.telemetry.sampling import LocalSampling  # noqa: E402

TARGET = {
    "slots": 256,
    "queue_depth": 0,
    "capabilities": {"prompt-enhance": {"service_time": {"distribution": "fixed", "mean_ms": 1}}},
}


def run_config(url: str, interval_s: float) -> Any:
    return parse_config(
        {
            "name": "bench",
            "target": {"base_url": url},
            "assets_dir": str(REPO / "test-assets"),
            "capabilities": [
                {
                    "name": "prompt-enhance",
                    "kind": "json",
                    "path": "/prompt-enhance",
                    "params": {"prompt": "x"},
                }
            ],
            "load": {"shape": "stages", "stages": [{"duration_s": 1, "users": 1}]},
            "telemetry": {"interval_s": interval_s},
        }
    )


def one_round(url: str, mode: str, users: int, seconds: float, out: Path) -> tuple[float, float]:
    """Requests per second and the worst loop lag (ms) of one round."""
    interval = {"off": 1.0, "1 Hz": 1.0, "10 Hz": 0.1}[mode]
    config = run_config(url, interval)
    env = Environment(user_classes=build_user_classes(config, {}), host=url)
    runner = env.create_local_runner()
    hub = None
    if mode != "off":
        hub = TelemetryHub(env, config, out / f"telemetry-{time.monotonic_ns()}.csv", {})
        hub.start()
    probe = LoopLagProbe(0.01)
    probe.start()
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)  # spawned and warm
    env.stats.reset_all()
    probe.read_ms()
    started = time.perf_counter()
    gevent.sleep(seconds)
    elapsed = time.perf_counter() - started
    requests = env.stats.total.num_requests
    lag = probe.read_ms()
    runner.quit()
    probe.stop()
    if hub is not None:
        hub.stop()
    return requests / elapsed, lag


def sample_cost(repeats: int = 60) -> tuple[float, float, int]:
    """Milliseconds per sample set and per row, timing only the collection (50 ms apart, so CPU
    utilization has a time delta to report, as it does at any real interval)."""
    sampling = LocalSampling("bench@local")
    sampling.collect()  # GPU setup happens on the first call
    rows = 0
    spent = 0.0
    for _ in range(repeats):
        time.sleep(0.05)
        started = time.perf_counter()
        rows += len(sampling.collect())
        spent += time.perf_counter() - started
    per_set = spent / repeats
    return per_set * 1000, per_set * 1000 / (rows / repeats), rows // repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-s", type=float, default=5.0)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()

    per_set_ms, per_row_ms, rows = sample_cost()
    print(f"sample set: {per_set_ms:.3f} ms for {rows} rows = {per_row_ms * 1000:.1f} us per row")

    modes = ["off", "1 Hz", "10 Hz"]
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp, tempfile.NamedTemporaryFile("w", suffix=".yaml") as settings:
        yaml.safe_dump(TARGET, settings)
        settings.flush()
        with ReferenceTarget(Path(settings.name)) as target:
            for cycle in range(args.cycles):
                order = modes[cycle % 3 :] + modes[: cycle % 3]
                for mode in order:
                    rps, lag = one_round(target.url, mode, args.users, args.round_s, Path(tmp))
                    results[mode].append((rps, lag))
                    print(f"  cycle {cycle + 1} {mode:>5}: {rps:8.1f} req/s, loop lag max {lag:6.2f} ms")

    base = statistics.median(r for r, _ in results["off"])
    print(f"\n{'mode':>6} {'median req/s':>13} {'vs off':>8} {'lag max (median) ms':>20}")
    for mode in modes:
        rps = statistics.median(r for r, _ in results[mode])
        lag = statistics.median(lag for _, lag in results[mode])
        print(f"{mode:>6} {rps:13.1f} {100 * (rps / base - 1):+7.2f}% {lag:20.2f}")
    spread = (max(r for r, _ in results["off"]) - min(r for r, _ in results["off"])) / base
    print(f"round-to-round spread with telemetry off: {100 * spread:.1f}% (the noise floor of this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
