"""What a killed, empty or partial run leaves still gets a report: one line per missing thing."""

from __future__ import annotations

from pathlib import Path

from inferswarm.cli import main
from inferswarm.report.analysis import analyse
from inferswarm.report.load import load_run
from tests.unit.report.synthetic import RAMP, write_run


def truncate_last_line(path: Path, keep: float = 0.5) -> None:
    text = path.read_text()
    last = text.rstrip("\n").rfind("\n")
    cut = last + 1 + int((len(text) - last - 1) * keep)
    path.write_text(text[:cut])  # a write interrupted mid-row, no final newline


def test_killed_run_with_truncated_csvs(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    for name in ("stats_history", "telemetry", "step_latency", "steps"):
        truncate_last_line(run / f"locust_{name}.csv")
    assert main(["report", str(run), "--no-png"]) == 0
    results = analyse(load_run(run))
    assert [s.users for s in results.steps] == [2, 4, 6, 8]
    # the cut row is reported, the rest is used
    assert any("locust_stats_history.csv" in n and "incomplete row" in n for n in results.notes)
    assert (run / "report.html").stat().st_size > 100_000


def test_empty_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"name": "empty", "status": "killed", "config": {"slo": ["rps >= 1"]}}')
    for name, header in (
        ("stats", "Type,Name,Request Count,Failure Count"),
        ("stats_history", "Timestamp,User Count,Type,Name,Total Request Count"),
        ("stages", ""),
    ):
        (run / f"locust_{name}.csv").write_text(header + "\n" if header else "")
    code = main(["report", str(run), "--no-png"])
    assert code == 4  # no request recorded: no valid measurement (before the failed gate's 3)
    results = analyse(load_run(run))
    assert results.steps == [] and results.saturation is None
    assert results.measurement is not None and not results.measurement.valid
    assert results.slo.passed is False  # the gate cannot be judged without data, so it fails
    notes = results.notes
    assert "locust_stages.csv: empty file" in notes
    assert "locust_stats.csv: no rows" in notes
    assert "locust_telemetry.csv: missing (no telemetry: utilization figures are left out)" in notes
    assert "no requests were recorded: nothing to summarise" in notes
    assert (run / "summary.md").read_text().startswith("# empty: load test summary")
    assert "<html" in (run / "report.html").read_text()


def test_no_telemetry_and_na_cells(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP, telemetry=False)
    stats = run / "locust_stats.csv"
    stats.write_text(stats.read_text().replace(",100,100,100,100,200,300,", ",N/A,N/A,N/A,N/A,N/A,N/A,"))
    results = analyse(load_run(run))
    assert results.gpu.model_dump() == {}
    assert results.summary["total"].p95_ms is None and results.summary["total"].requests == 810
    assert all("gpu_util_mean_pct" not in s.model_dump() for s in results.steps)
    assert main(["report", str(run), "--no-png"]) == 0
    html = (run / "report.html").read_text()
    assert "no GPU samples in this run" in html


def test_single_step(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP[:1])
    results = analyse(load_run(run))
    assert len(results.steps) == 1 and results.saturation is None
    assert results.steps[0].rps == 10.0
    assert main(["report", str(run), "--no-png"]) == 0


def test_missing_run_json_and_files(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    (run / "run.json").unlink()
    (run / "locust_failures.csv").unlink()
    results = analyse(load_run(run))
    assert "run.json: missing (config, versions and SLOs unknown)" in results.notes
    assert "locust_failures.csv: missing" in results.notes
    assert results.summary["total"].requests == 810
