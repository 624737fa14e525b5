"""`inferswarm report`: analyse a run directory; exit 4 when there is no valid measurement (the target was
unreachable, or no request was recorded), else 3 when an SLO gate failed."""

from __future__ import annotations

import argparse
from pathlib import Path

from inferswarm.cli.common import EXIT_GATE_FAILED, EXIT_NO_MEASUREMENT, error
from inferswarm.rundir import ORCH_KIND, RUN_JSON, read_run_json


def _orchestrators_report(run_dir: Path, png: bool) -> int:
    """An orchestrator-matrix run: its own report (heat maps, per orchestrator and pipeline, the
    comparison with the previous run); exit 0 once written, 2 when the run directory cannot be read."""
    from inferswarm.report.orchestrators import MatrixFileError, write_matrix_report

    try:
        report = write_matrix_report(run_dir, png=png)
    except MatrixFileError as exc:
        return error(str(exc))
    for message in report.messages:
        print(f"report: {message}")
    rate = f"{100 * report.successes / report.jobs:.1f}%" if report.jobs else "-"
    print(
        f"report: {report.orchestrators} orchestrator(s), {report.cells} cell(s), {report.jobs} job(s), "
        f"{report.successes} successful ({rate})"
    )
    if report.down:
        print(f"report: down (not answering): {', '.join(report.down)}")
    if report.dry_run:
        print("report: DRY RUN: no stat was posted to the leaderboard")
    elif report.not_posted:
        print(f"report: {report.not_posted} stat(s) NOT posted to the leaderboard")
    comparison = report.comparison
    if comparison is not None:
        print(
            f"report: against {report.previous}: {len(comparison.stopped_answering)} stopped answering, "
            f"{len(comparison.started_answering)} started, {len(comparison.slower)} cell(s) slower, "
            f"{len(comparison.faster)} faster"
        )
    print(f"report: {report.html}", flush=True)
    return 0


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
    run = read_run_json(run_dir)
    if run is not None and run.get("kind") == ORCH_KIND:
        return _orchestrators_report(run_dir, png=not args.no_png)
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
