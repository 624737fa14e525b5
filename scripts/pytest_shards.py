"""Run the test suite as N pytest processes side by side: `make test`.

Most of the suite's wall time is real Locust runs waiting on their stages' clocks, not CPU, so shards
overlap well even on two cores. Each shard is a whole pytest process of its own (Locust monkey-patches
the standard library with gevent at import, which pytest-xdist's worker threads do not survive), given
its share of the tests by pytest-split from the recorded durations in tests/durations.json (`make
durations` refreshes them; tests missing from it count as the average). Each shard's output is kept and
printed whole when it ends; the exit status is the first failing shard's.

    python scripts/pytest_shards.py --shards 3 [pytest arguments...]

Ctrl+C or SIGTERM stops every shard (SIGINT first, so each prints what failed so far, then SIGKILL).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parent.parent
DURATIONS = REPO / "tests" / "durations.json"
STOP_GRACE_S = 20.0


@dataclass
class Shard:
    group: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


def shard_command(shards: int, group: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",  # shards would race on .pytest_cache
        f"--splits={shards}",
        f"--group={group}",
        "--splitting-algorithm=least_duration",
        f"--durations-path={DURATIONS}",
        *extra,
    ]


def start(shards: int, extra: list[str], logs: Path) -> list[Shard]:
    started = []
    for group in range(1, shards + 1):
        log = (logs / f"shard-{group}.log").open("w+b")
        # A session of its own: a stop reaches the shard and every process its tests started.
        proc = subprocess.Popen(
            shard_command(shards, group, extra),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Shard(group, proc, log, time.monotonic()))
    return started


def stop(shards: list[Shard]) -> None:
    for shard in shards:
        if shard.proc.poll() is None:
            os.killpg(shard.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for shard in shards:
        try:
            shard.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(shard.proc.pid, signal.SIGKILL)
            shard.proc.wait()


def report(shard: Shard, total: int) -> None:
    shard.log.flush()
    shard.log.seek(0)
    elapsed = time.monotonic() - shard.started
    print(f"==== shard {shard.group}/{total}: exit {shard.proc.returncode}, {elapsed:.0f} s ====", flush=True)
    sys.stdout.buffer.write(shard.log.read())
    sys.stdout.flush()
    shard.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=3, help="pytest processes side by side (3)")
    args, extra = parser.parse_known_args(argv)
    if args.shards < 1:
        parser.error("--shards: give at least 1")
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    with tempfile.TemporaryDirectory(prefix="pytest-shards-") as tmp:
        shards = start(args.shards, extra, Path(tmp))
        pending = list(shards)
        codes: list[int] = []
        while pending and not stopping:
            for shard in [s for s in pending if s.proc.poll() is not None]:
                pending.remove(shard)
                report(shard, args.shards)
                codes.append(shard.proc.returncode)
            time.sleep(0.2)
        if stopping:
            print(f"pytest_shards: stopped by signal {stopping[0]}; stopping every shard", flush=True)
            stop(pending)
            for shard in pending:
                report(shard, args.shards)
            return 128 + stopping[0]
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
