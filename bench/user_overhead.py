"""What inferswarm's capability user costs in throughput, compared with a bare Locust FastHttpUser.

Three variants, each one real headless Locust process (16 users, so at most one core) posting the same
small JSON body with the same headers to a static nginx on loopback (`apt-get install nginx-light`; the
script starts and stops its own, one worker process):

- `bare`: bench/bare_fasthttp_locustfile.py, one FastHttpUser task, no wait, no response checks;
- `telemetry on` and `telemetry off`: locustfiles/capabilities.py with one `kind: json` capability (which
  also checks the status and that the body is JSON), telemetry enabled or not. The config's one stage
  (--duration seconds, 16 users) is the shape that ends the run; `bare` runs for `-t` --duration seconds.

Both capability variants run with the request log on (the default). `--request-log` measures the log
instead: two variants, `log on` and `log off` (telemetry off in both, so only the log differs), the ratio
of their medians printed.

Every round runs its variants in turn (the order rotating from round to round), so drift hits all alike;
the median round per variant is compared, and so is the median of each round's own ratio ("paired"),
which a machine whose load changes between rounds moves less.
Requests/s: completed requests per whole wall-clock second from Locust's final statistics (--json-file),
leaving out the partial first second, the next one (spawning, connections) and the partial last one.
(Plain Locust does not rewrite `_stats.csv` at shutdown, so the bare run's CSV misses its last second.)
Locust's CPU share and CPU time per request are taken over the same seconds: near 100 % of a core means
the load generator, not nginx, sets the throughput, which is what makes the ratio mean something.

    .venv/bin/python bench/user_overhead.py --rounds 3 --duration 8
    .venv/bin/python bench/user_overhead.py --request-log --rounds 5 --duration 8
    .venv/bin/python bench/user_overhead.py --compare /tmp/patched --rounds 4 --duration 8

`--compare DIR` measures a change before it is made: every capability variant runs a second time from
another checkout (DIR's lib/ and locustfiles/, e.g. a copy with a patch applied), as `VARIANT @NAME`,
in the same rounds, so the two versions are compared under the same drift.

Goals: the capability user with telemetry on keeps at least 95 % of the bare user's throughput; the
request log costs under 3 % of throughput (log on / log off >= 0.97).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from scale_workers import Nginx  # noqa: E402

from inferswarm.derived import is_derived  # noqa: E402

USERS = 16
PATH = "/infer"
PARAMS = {"prompt": "a lighthouse on a cliff at dusk", "width": 512, "height": 512}
BODY = json.dumps(PARAMS, separators=(",", ":"))  # what the json protocol sends for PARAMS
VARIANTS = ("bare", "telemetry on", "telemetry off")
LOG_VARIANTS = ("log on", "log off")
CONFIGS = {  # capability variant -> (telemetry, request log)
    "telemetry on": (True, True),
    "telemetry off": (False, True),
    "log on": (False, True),
    "log off": (False, False),
}
SKIP_START_S = 2  # leading per-second buckets left out: the partial first second and the spawn
RUN_GRACE_S = 60  # start-up and shut-down allowance on top of --duration before a run is killed
GOAL = 0.95
LOG_GOAL = 0.97
STARVED_CPU_PCT = 90  # a Locust process below this share of a core was held back by something else


@dataclass(frozen=True)
class RunResult:
    rps: float
    steady_s: int
    requests: int
    failures: int
    cpu_pct: float
    """Locust's CPU over the steady seconds; 100 is one core."""
    cpu_us_per_request: float


def nginx_binary() -> str | None:
    """The nginx that scale_workers.Nginx starts, if installed."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def write_config(
    path: Path, url: str, duration_s: float, telemetry: bool, request_log: bool, out: Path
) -> None:
    config = {
        "name": "user-overhead",
        "target": {"base_url": url},
        "assets_dir": str(REPO / "test-assets"),
        "capabilities": [
            {"name": "infer", "kind": "json", "path": PATH, "params": PARAMS, "success": {"body": "json"}}
        ],
        "load": {
            "shape": "stages",
            "stages": [{"duration_s": float(duration_s), "users": USERS, "spawn_rate": float(USERS)}],
        },
        "telemetry": {"enabled": telemetry},
        "output": {"dir": str(out), "request_log": request_log},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def split_variant(variant: str) -> tuple[str, str | None]:
    """`telemetry on @patched` -> ("telemetry on", "patched"); a plain variant runs this checkout."""
    name, _, tree = variant.partition(" @")
    return name, tree or None


def locust_command(
    variant: str, url: str, config_dir: Path, prefix: Path, duration_s: int, repo: Path = REPO
) -> list[str]:
    common = ["--headless", "--only-summary", "--csv", str(prefix), "--json-file", str(prefix)]
    if variant == "bare":
        locustfile = BENCH / "bare_fasthttp_locustfile.py"
        load = ["-u", str(USERS), "-r", str(USERS), "-t", f"{duration_s}s", "--host", url]
        return [sys.executable, "-m", "locust", "-f", str(locustfile), *load, *common]
    # The shape owns users, spawn rate and run time; Locust ignores (and warns about) -u, -r and -t.
    config = config_dir / f"{variant.replace(' ', '-')}.yaml"
    locustfile = repo / "locustfiles" / "capabilities.py"
    inferswarm = ["--inferswarm-config", str(config)]
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *inferswarm, *common]


def child_env(lib: Path | None = None) -> dict[str, str]:
    """The environment without INFERSWARM_* settings (a stray config or load override would change the
    run), plus the bare locustfile's path and body; with `lib`, that lib/ first on the Python path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERSWARM_")}
    env.update(BENCH_PATH=PATH, BENCH_BODY=BODY)
    if lib is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(lib), env.get("PYTHONPATH", "")) if p)
    return env


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End a child started in its own session, and anything it started, while its leader still runs."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_locust(
    cmd: list[str], log: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int, list[tuple[float, float]]]:
    """Run one Locust process to its end: its exit code and (epoch s, CPU s) samples, every 0.25 s and at
    its exit (from the reaped child's resource usage)."""
    samples: list[tuple[float, float]] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=child_env() if env is None else env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Locust still running after {timeout_s:.0f} s: {' '.join(cmd)}")
                try:
                    times = psutil.Process(proc.pid).cpu_times()
                    samples.append((time.time(), times.user + times.system))
                except psutil.NoSuchProcess:
                    pass
                time.sleep(0.25)
        finally:
            stop_group(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    samples.append((time.time(), cpu_s))
    return proc.returncode, samples


def cpu_at(samples: list[tuple[float, float]], when: float) -> float:
    """CPU seconds at an epoch time, interpolated between the samples around it."""
    before = [s for s in samples if s[0] <= when]
    after = [s for s in samples if s[0] >= when]
    if not before or not after:
        raise RuntimeError("too few CPU samples around the measured window; use a longer --duration")
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def read_result(prefix: Path, samples: list[tuple[float, float]]) -> RunResult:
    # Requests only: derived entries (`infer:ok`, the successes' latency) are not requests of their own.
    entries = [e for e in json.loads(Path(f"{prefix}.json").read_text()) if not is_derived(e["name"])]
    per_second: Counter[int] = Counter()
    for entry in entries:
        per_second.update({int(second): count for second, count in entry["num_reqs_per_sec"].items()})
    if not per_second:
        raise RuntimeError(f"no requests completed; see {prefix.parent}")
    first, last = min(per_second), max(per_second)
    steady = range(first + SKIP_START_S, last)  # whole seconds only: `last` is cut short by the stop
    if len(steady) < 1:
        raise RuntimeError("the run is too short for a steady second; use a longer --duration")
    requests = sum(per_second[s] for s in steady)
    cpu_s = cpu_at(samples, steady.stop) - cpu_at(samples, steady.start)
    return RunResult(
        rps=requests / len(steady),
        steady_s=len(steady),
        requests=sum(e["num_requests"] for e in entries),
        failures=sum(e["num_failures"] for e in entries),
        cpu_pct=100 * cpu_s / len(steady),
        cpu_us_per_request=1e6 * cpu_s / requests if requests else float("nan"),
    )


def one_run(
    variant: str, url: str, tmp: Path, run_dir: Path, duration_s: int, trees: dict[str, Path] | None = None
) -> RunResult:
    run_dir.mkdir(parents=True)
    prefix = run_dir / "locust"
    name, tree = split_variant(variant)
    repo = REPO if tree is None else (trees or {})[tree]
    cmd = locust_command(name, url, tmp, prefix, duration_s, repo)
    log = run_dir / "locust.log"
    env = child_env(None if tree is None else repo / "lib")
    code, samples = run_locust(cmd, log, duration_s + RUN_GRACE_S, env)
    # Locust exits 1 when any request failed; the run still counts (its failures are reported).
    if code not in (0, 1) or not Path(f"{prefix}.json").is_file():
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{variant}: Locust exited with code {code}:\n{tail}")
    return read_result(prefix, samples)


def failures_note(failures: int) -> str:
    return f"{failures} FAILURES" if failures else "0 failures"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="each round runs bare, telemetry on, off")
    parser.add_argument("--duration", type=int, default=8, help="seconds per Locust run")
    parser.add_argument(
        "--request-log", action="store_true", help="compare the request log on and off instead"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also run every capability variant from this checkout (its lib/ and locustfiles/)",
    )
    args = parser.parse_args()
    variants: tuple[str, ...] = LOG_VARIANTS if args.request_log else VARIANTS
    trees: dict[str, Path] = {}
    if args.compare is not None:
        tree = args.compare.resolve()
        if not (tree / "lib" / "inferswarm").is_dir() or not (tree / "locustfiles").is_dir():
            parser.error(f"--compare {args.compare}: not a checkout (no lib/inferswarm or locustfiles/)")
        trees[tree.name] = tree
        variants += tuple(f"{v} @{tree.name}" for v in variants if v != "bare")
    if args.rounds < 1 or args.duration < SKIP_START_S + 2:
        parser.error(f"--rounds must be >= 1 and --duration >= {SKIP_START_S + 2}")
    nginx = nginx_binary()
    if nginx is None:
        print("user_overhead: nginx is not installed (apt-get install nginx-light); nothing measured")
        return 2
    # A SIGTERM unwinds like Ctrl+C, so the finally blocks stop nginx and the running Locust process.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    load_before = os.getloadavg()[0]
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    results: dict[str, list[RunResult]] = {v: [] for v in variants}
    try:
        with tempfile.TemporaryDirectory(prefix="user-overhead-") as tmp_name, ExitStack() as stack:
            tmp = Path(tmp_name)
            server = Nginx(tmp)
            stack.callback(server.__exit__, None, None, None)  # also when it fails to start
            server.__enter__()
            for variant, (telemetry, request_log) in CONFIGS.items():
                path = tmp / f"{variant.replace(' ', '-')}.yaml"
                write_config(path, server.url, args.duration, telemetry, request_log, tmp / "results")
            cores = len(os.sched_getaffinity(0))
            print(f"target: {version} at {server.url}{PATH} (1 worker process), POST {BODY}")
            print(
                f"machine: {os.cpu_count()} CPUs ({cores} usable); each variant is one Locust process, "
                f"which uses at most one core; {USERS} users, {args.duration} s per run"
            )
            print(
                f"req/s: completed requests per whole second from Locust's final stats (--json-file), "
                f"leaving out the first {SKIP_START_S} s (spawn, connections) and the partial last second"
            )
            width = max(len(v) for v in variants)
            for round_no in range(1, args.rounds + 1):
                turn = (round_no - 1) % len(variants)
                for variant in variants[turn:] + variants[:turn]:
                    run_dir = tmp / "runs" / f"{round_no}-{variant.replace(' ', '-').replace('@', '')}"
                    result = one_run(variant, server.url, tmp, run_dir, args.duration, trees)
                    results[variant].append(result)
                    starved = ""
                    if result.cpu_pct < STARVED_CPU_PCT:
                        starved = f" (under {STARVED_CPU_PCT}%: CPU contention?)"
                    print(
                        f"  round {round_no} {variant:<{width}} {result.rps:8.0f} req/s "
                        f"over {result.steady_s} s, "
                        f"{result.requests} requests, {failures_note(result.failures)}, "
                        f"{result.cpu_us_per_request:4.0f} us CPU/request, Locust CPU {result.cpu_pct:3.0f}%"
                        f"{starved}",
                        flush=True,
                    )
    except KeyboardInterrupt:
        print("user_overhead: interrupted; nginx and Locust stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"user_overhead: {exc}", file=sys.stderr)
        return 1

    medians = {v: statistics.median(r.rps for r in results[v]) for v in variants}
    failures = {v: sum(r.failures for r in results[v]) for v in variants}
    per_request = {v: statistics.median(r.cpu_us_per_request for r in results[v]) for v in variants}
    base = "log off" if args.request_log else "bare"
    width = max(14, *(len(v) for v in variants))
    paired = {
        v: statistics.median(r.rps / b.rps for r, b in zip(results[v], results[base], strict=True))
        for v in variants
    }
    vs = "vs " + base
    header = f"{'variant':<{width}} {'median req/s':>12} {vs:>8} {'paired':>7} {'us CPU/req':>10} {vs:>8}"
    print(f"\n{header} {'Locust CPU':>10}  failures")
    for variant in variants:
        cpu = statistics.median(r.cpu_pct for r in results[variant])
        print(
            f"{variant:<{width}} {medians[variant]:12.0f} {medians[variant] / medians[base]:8.3f} "
            f"{paired[variant]:7.3f} "
            f"{per_request[variant]:10.0f} {per_request[variant] / per_request[base]:8.3f} "
            f"{cpu:9.0f}%  {failures_note(failures[variant])}"
        )
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before the first run, {load_after:.2f} after the last")
    for suffix in ("", *(f" @{name}" for name in trees)):
        if args.request_log:
            on, off = "log on" + suffix, "log off" + suffix
            ratio = medians[on] / medians[off]
            cpu_ratio = per_request[on] / per_request[off]
            pair = statistics.median(a.rps / b.rps for a, b in zip(results[on], results[off], strict=True))
            total = failures[on] + failures[off]
            note = f"; {total} FAILURES in these runs" if total else ""
            print(
                f"ratio request-log-on/off{suffix}: {ratio:.3f} req/s (paired {pair:.3f}; "
                f"goal >= {LOG_GOAL}), {cpu_ratio:.3f} CPU per request{note}"
            )
            continue
        for variant, label in (
            ("telemetry off", "telemetry-off/bare"),
            ("telemetry on", "telemetry-on/bare"),
        ):
            variant += suffix
            ratio = medians[variant] / medians["bare"]
            total = failures[variant] + failures["bare"]
            note = f"; {total} FAILURES in these runs" if total else ""
            goal = f" (goal >= {GOAL})" if variant.startswith("telemetry on") else ""
            print(f"ratio {label}{suffix}: {ratio:.2f} (paired {paired[variant]:.2f}){goal}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
