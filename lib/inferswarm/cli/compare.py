"""`inferswarm compare`: judge run B against run A; exit 3 on a regression (significant and beyond
tolerance), 2 on bad input, 0 otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from inferswarm.cli.common import EXIT_GATE_FAILED, error


def _tolerances(items: list[str]) -> dict[str, float]:
    from inferswarm.slo import check_tolerance

    out: dict[str, float] = {}
    for item in items:
        metric, _, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--tolerance {item}: {text!r} is not a number") from None
        try:
            check_tolerance(metric, value)
        except ValueError as exc:
            raise ValueError(f"--tolerance {item}: {exc}") from None
        out[metric] = value
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from inferswarm.report.compare import console_table, write_compare
    from inferswarm.report.results import ResultsFileError

    a_dir, b_dir = Path(args.run_a), Path(args.run_b)
    for run_dir in (a_dir, b_dir):
        if not run_dir.is_dir():
            return error(f"{run_dir}: not a run directory")
    try:
        tolerances = _tolerances(args.tolerance)
    except ValueError as exc:
        return error(str(exc))
    out = Path(args.out) if args.out else b_dir
    try:
        rows = write_compare(a_dir, b_dir, out, tolerances)
    except ResultsFileError as exc:  # another schema version, or not a results.json at all
        return error(str(exc))
    # the run's rows, and the per-step rows that say something (all of them are in compare.md/.html)
    shown = [r for r in rows if r.level is None or r.verdict in ("worse", "better")]
    print(console_table(shown))
    regressions = sum(r.regression for r in rows)
    print(f"compare: {regressions} regression(s); {out / 'compare.html'}")
    return EXIT_GATE_FAILED if regressions else 0
