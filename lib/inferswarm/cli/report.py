"""`inferswarm report`: analyse a run directory; exit 3 when an SLO gate failed."""

from __future__ import annotations

import argparse
from pathlib import Path

from inferswarm.cli.common import EXIT_GATE_FAILED, error


def cmd_report(args: argparse.Namespace) -> int:
    from inferswarm.report.render import write_report
    from inferswarm.report.results import format_level

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return error(f"{run_dir}: not a run directory")
    results, messages = write_report(run_dir, png=not args.no_png)
    for note in results.notes:
        print(f"report: {note}")
    for message in messages:
        print(f"report: {message}")
    sat = results.saturation
    if sat is not None:
        level = format_level(sat.level)
        print(f"report: saturation at {level} {results.step_axis.label} ({sat.reason})")
    for gate in results.slo.gates:
        value = "no data" if gate.value is None else f"{gate.value:g}"
        print(f"report: SLO {'PASS' if gate.passed else 'FAIL'} {gate.gate} ({gate.scope}: {value})")
    print(f"report: {run_dir / 'report.html'}", flush=True)
    return 0 if results.slo.passed else EXIT_GATE_FAILED
