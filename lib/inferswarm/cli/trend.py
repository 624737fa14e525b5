"""`inferswarm trend RUN_DIR...`: key figures of many runs of one config over time; exit 3 when the newest
run of a config regressed beyond its run-to-run noise, 2 on bad input, 0 otherwise.

Output goes to --out, by default the first argument when it is a folder of runs (not itself a run
directory), else the current directory: a run directory is never written into."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inferswarm.cli.common import EXIT_GATE_FAILED, error


def add_trend_parser(sub: Any) -> None:
    from inferswarm.report.trend import DEFAULT_K, DEFAULT_WINDOW, METRICS

    trend = sub.add_parser(
        "trend",
        help="key figures of many runs of a config over time; flag runs beyond run-to-run noise; "
        "exit 3 when the newest run regressed",
    )
    trend.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or folders of run directories"
    )
    trend.add_argument(
        "--out",
        help="where trend.html/.md/.json go (default: the first RUN_DIR when it is a folder of runs, "
        "else the current directory)",
    )
    trend.add_argument(
        "--k", type=float, default=DEFAULT_K, help=f"flag beyond k x noise (default {DEFAULT_K:g})"
    )
    trend.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"earlier runs in a baseline (default {DEFAULT_WINDOW})",
    )
    trend.add_argument(
        "--metric",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help=f"only these metrics (default all): {', '.join(METRICS)}",
    )
    trend.set_defaults(func=cmd_trend)


def default_out(paths: list[Path]) -> Path:
    from inferswarm.report.trend import is_run_dir

    first = paths[0]
    return first if first.is_dir() and not is_run_dir(first) else Path.cwd()


def cmd_trend(args: argparse.Namespace) -> int:
    from inferswarm.report.trend import TrendInputError, collect
    from inferswarm.report.trend_render import console_lines, write_trend

    paths = [Path(p) for p in args.run_dirs]
    notes: list[str] = []
    try:
        points = collect(paths, notes)
    except TrendInputError as exc:
        return error(str(exc))
    if not points:
        skipped = f" ({len(notes)} skipped: {notes[0]})" if notes else ""
        return error(f"no load run with a results.json under {', '.join(map(str, paths))}{skipped}")
    out = Path(args.out) if args.out else default_out(paths)
    try:
        report = write_trend(points, out, k=args.k, window=args.window, metrics=args.metric, notes=notes)
    except ValueError as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"{out}: cannot write the trend ({exc.strerror or exc})")
    for note in notes:
        print(f"trend: {note}")
    for line in console_lines(report):
        print(f"trend: {line}")
    newest = report.newest_regressions
    print(f"trend: {len(newest)} regression(s) in the newest run(s); {out / 'trend.html'}", flush=True)
    return EXIT_GATE_FAILED if newest else 0
