"""`inferswarm compare`: judge run B against run A; exit 3 on a regression."""

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
    from inferswarm.report.compare import write_compare
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
    for row in rows:
        change = "-" if row.change is None else f"{100 * row.change:+.1f}%"
        flag = "  REGRESSION" if row.regression else ""
        print(f"{row.scope:>20} {row.metric:>20} {row.a:>12.3f} {row.b:>12.3f} {change:>8}{flag}")
    regressions = sum(r.regression for r in rows)
    print(f"compare: {regressions} regression(s); {out / 'compare.html'}")
    return EXIT_GATE_FAILED if regressions else 0
