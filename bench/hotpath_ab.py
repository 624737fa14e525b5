"""Per-request cost of the capability user against a bare FastHttpUser, measured in one process.

bench/user_overhead.py runs one Locust process per variant, so the machine's drift between runs (other
work on a small machine) is part of every ratio. Here every variant lives in the same process and the
variants take turns in short blocks (`--block` seconds, after a short warm-up that opens connections),
so drift hits them all alike; besides each variant's median block, the median of its blocks' ratios to
the first variant's block of the same turn ("paired") is reported. Each block runs 16 real Locust users
(`User.start`, their task loop and wait) against the same static nginx as user_overhead.py. Figures per
block: requests/s (wall) and the process's CPU microseconds per request (all threads, the telemetry
sampling thread included). What a whole inferswarm process adds beyond these (its plugin's other
listeners and writers, a larger heap) is not here: user_overhead.py measures that.

Variants (`--variants`, default `bare,off,on`; the first is the one the others are compared with):
- `bare`: bench/bare_fasthttp_locustfile.py's user;
- `off`: the capability user (one `kind: json` capability checking the body is JSON), with the status
  code counter listening to the request events as in a real run;
- `on`: `off` plus the owner's telemetry (`TelemetryHub`: the loop-lag probe, the sampling thread, the
  CSV, the live view, saturation), started for the block;
- `alt-off`, `alt-on`: the same with the client class taken from `--alt-client PATH` (a changed copy of
  lib/inferswarm/locust/client.py), to measure a change to the client before it is made.

`--request-log` gives the capability variants the request log, as a run has it by default (its Arrow
stream written every second; the Parquet file at the end is left out); a variant named with `+log`
(`off+log`) has it whatever the flag says.

    .venv/bin/python bench/hotpath_ab.py --blocks 20 --block 1 --variants bare,on+log,alt-on+log \
        --alt-client /tmp/client.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401  (gevent monkey-patching first, as in a real Locust process)
from gevent.pool import Group
from locust.env import Environment

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from scale_workers import Nginx  # noqa: E402
from user_overhead import (  # noqa: E402
    BODY,
    PARAMS,
    PATH,
    USERS,
)

from inferswarm.config import parse_config  # noqa: E402
from inferswarm.locust.listeners.request_log import RequestLog  # noqa: E402
from inferswarm.locust.listeners.status_codes import StatusCodes  # noqa: E402
from inferswarm.locust.listeners.telemetry import TelemetryHub  # noqa: E402
from inferswarm.locust.user import CapabilityUser, build_user_classes  # noqa: E402

WARMUP_S = 0.5


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def config_for(url: str) -> Any:
    return parse_config(
        {
            "name": "hotpath-ab",
            "target": {"base_url": url},
            "assets_dir": str(REPO / "test-assets"),
            "capabilities": [
                {"name": "infer", "kind": "json", "path": PATH, "params": PARAMS, "success": {"body": "json"}}
            ],
            "load": {"shape": "stages", "stages": [{"duration_s": 10.0, "users": USERS}]},
        }
    )


def bare_class() -> type:
    os.environ.update(BENCH_PATH=PATH, BENCH_BODY=BODY)
    spec = importlib.util.spec_from_file_location("bare_locustfile", BENCH / "bare_fasthttp_locustfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BareFastHttpUser  # type: ignore[no-any-return]


def alt_user_class(base: type[CapabilityUser], client_path: Path) -> type[CapabilityUser]:
    """`base` with its client built from another copy of client.py."""
    spec = importlib.util.spec_from_file_location(f"alt_client_{client_path.stem}", client_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alt_cls = module.CapabilityClient

    def __init__(self: CapabilityUser, environment: Environment) -> None:
        base.__init__(self, environment)
        old = self.capability_client
        self.capability_client = alt_cls(
            self.client,
            environment,
            self.capability,
            self.protocol,
            self.prepared,
            self.request_timeout_s,
            self.client.base_url or "",
            max_body_bytes=self.max_response_bytes,
            secrets=self.secret_values,
        )
        del old

    return type(base.__name__, (base,), {"__init__": __init__, "abstract": False})


class Variant:
    def __init__(
        self, name: str, user_class: type, telemetry: bool, config: Any, tmp: Path, request_log: bool
    ) -> None:
        self.name = name
        self.env = Environment(user_classes=[user_class], host=config.target.base_url)
        self.env.create_local_runner()
        self.counter = StatusCodes(self.env) if name != "bare" else None
        self.log: RequestLog | None = None
        if request_log and name != "bare":  # written as the owner writes it, Parquet left out
            self.log = RequestLog(self.env, tmp / f"{name}-requests.arrows")
            self.log.start()
        self.user_class = user_class
        self.telemetry = telemetry
        self.config = config
        self.tmp = tmp
        self.users = [user_class(self.env) for _ in range(USERS)]
        self.rows: list[tuple[float, float]] = []

    def block(self, seconds: float) -> tuple[float, float]:
        hub = None
        if self.telemetry:
            hub = TelemetryHub(self.env, self.config, self.tmp / f"t{time.monotonic_ns()}.csv", {})
            hub.start()
        group = Group()
        for user in self.users:
            user.start(group)
        gevent.sleep(WARMUP_S)
        stats = self.env.stats.total
        n0, c0, t0 = stats.num_requests, cpu_s(), time.perf_counter()
        gevent.sleep(seconds)
        n1, c1, t1 = stats.num_requests, cpu_s(), time.perf_counter()
        group.kill(block=True)
        if hub is not None:
            hub.stop()
        if self.log is not None:
            self.log.flush()
        n = n1 - n0
        row = (n / (t1 - t0), 1e6 * (c1 - c0) / n if n else float("nan"))
        self.rows.append(row)
        return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=8, help="blocks per variant")
    parser.add_argument("--block", type=float, default=3.0, help="seconds measured per block")
    parser.add_argument("--variants", default="bare,off,on", help="comma-separated, in turn")
    parser.add_argument("--alt-client", type=Path, help="a changed client.py for the alt-* variants")
    parser.add_argument(
        "--request-log",
        action="store_true",
        help="the capability variants keep the request log (a run's default)",
    )
    args = parser.parse_args()
    names = args.variants.split(",")
    if any(n.startswith("alt") for n in names) and args.alt_client is None:
        parser.error("alt-* variants need --alt-client")
    with tempfile.TemporaryDirectory(prefix="hotpath-ab-") as tmp_name, Nginx(Path(tmp_name)) as server:
        tmp = Path(tmp_name)
        config = config_for(server.url)
        (cap_class,) = build_user_classes(config, {})
        bare = bare_class()
        bare.host = server.url
        classes: dict[str, tuple[type, bool]] = {
            "bare": (bare, False),
            "off": (cap_class, False),
            "on": (cap_class, True),
        }
        if args.alt_client is not None:
            alt = alt_user_class(cap_class, args.alt_client)
            classes.update({"alt-off": (alt, False), "alt-on": (alt, True)})
        variants = [
            Variant(n, *classes[n.removesuffix("+log")], config, tmp, args.request_log or n.endswith("+log"))
            for n in names
        ]
        log_note = "with" if args.request_log else "without"
        print(
            f"{USERS} users, {args.block:g} s blocks after {WARMUP_S:g} s warm-up, request log {log_note}, "
            f"variants in turn: {names}"
        )
        for number in range(1, args.blocks + 1):
            order = variants[number % len(variants) :] + variants[: number % len(variants)]
            line = []
            for variant in order:
                rps, us = variant.block(args.block)
                line.append(f"{variant.name} {rps:6.0f}/s {us:5.1f}us")
            print(f"  block {number}: " + " | ".join(line), flush=True)
    base = variants[0]
    base_rps = statistics.median(r for r, _ in base.rows)
    base_us = statistics.median(u for _, u in base.rows)
    print(
        f"\n{'variant':<8} {'req/s':>8} {'vs ' + base.name:>9} {'us CPU/req':>11} {'vs ' + base.name:>9}"
        f" {'paired req/s':>13} {'paired us':>10}"
    )
    for variant in variants:
        rps = statistics.median(r for r, _ in variant.rows)
        us = statistics.median(u for _, u in variant.rows)
        # the median of each block's ratio to the base's block of the same turn: slow drift cancels
        paired_rps = statistics.median(v[0] / b[0] for v, b in zip(variant.rows, base.rows, strict=True))
        paired_us = statistics.median(v[1] / b[1] for v, b in zip(variant.rows, base.rows, strict=True))
        print(
            f"{variant.name:<8} {rps:8.0f} {rps / base_rps:9.3f} {us:11.1f} {us / base_us:9.3f}"
            f" {paired_rps:13.3f} {paired_us:10.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
