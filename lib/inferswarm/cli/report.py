"""`inferswarm report`: analyse a run directory; exit 4 when there is no valid measurement (the target was
unreachable, or no request was recorded), else 3 when an SLO gate failed."""

from __future__ import annotations

import argparse
from pathlib import Path

from inferswarm.cli.common import EXIT_GATE_FAILED, EXIT_NO_MEASUREMENT, error
from inferswarm.rundir import RUN_JSON


def cmd_report(args: argparse.Namespace) -> int:
    from inferswarm.report.render import capacity_text, write_report
    from inferswarm.report.results import format_level

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return error(f"{run_dir}: not a run directory")
    if not any(
        (run_dir / name).is_file() for name in (RUN_JSON, "locust_stats.csv", "locust_stats_history.csv")
    ):
        # never write a report into a directory that holds something else (configs/, a home directory)
        return error(
            f"{run_dir}: not a run directory (no {RUN_JSON} or locust_stats.csv): "
            "give the directory `inferswarm run` printed"
        )
    results, messages = write_report(run_dir, png=not args.no_png)
    for note in results.notes:
        print(f"report: {note}")
    for message in messages:
        print(f"report: {message}")
    unit = results.step_axis.label
    for step in results.steps:
        if not step.judged:
            level = format_level(step.level)
            print(f"report: {step.name} ({level} {unit}) not judged: {step.not_judged_why}")
    measurement = results.measurement
    if measurement is not None and not measurement.valid:
        print(f"report: no valid measurement: {measurement.why}")
    sat = results.saturation
    if sat is not None:
        print(f"report: saturation at {format_level(sat.level)} {unit} ({sat.reason})")
    if results.search is not None:
        print(f"report: capacity {capacity_text(results.search)}")
    for gate in results.slo.gates:
        value = "no data" if gate.value is None else f"{gate.value:g}"
        print(f"report: SLO {'PASS' if gate.passed else 'FAIL'} {gate.gate} ({gate.scope}: {value})")
    print(f"report: {run_dir / 'report.html'}", flush=True)
    if measurement is not None and not measurement.valid:
        return EXIT_NO_MEASUREMENT
    return 0 if results.slo.passed else EXIT_GATE_FAILED
