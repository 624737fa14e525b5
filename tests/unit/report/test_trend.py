"""`inferswarm trend`: many runs of one config over time; only a run beyond its run-to-run noise is flagged,
in the right direction, and the newest run's regression fails the CLI (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli.parser import main
from inferswarm.report.analysis import analyse as analyse_run
from inferswarm.report.load import load_run
from inferswarm.report.trend import METRICS, RunPoint, analyse, collect, read_point
from inferswarm.report.trend_render import write_trend
from tests.unit.report.synthetic import RAMP, write_run

DAY = 86_400.0
T0 = 1_750_000_000.0
# five stable runs: small jitter around 100 req/s and 300 ms p95
STABLE = [(100.0, 300.0), (101.5, 296.0), (99.0, 304.0), (100.5, 299.0), (99.5, 302.0)]


def write_run_dir(
    run_dir: Path,
    index: int,
    rps: float,
    p95: float,
    name: str = "nightly",
    valid: bool = True,
    failure_ratio: float = 0.0,
    extra_results: dict[str, Any] | None = None,
    extra_run: dict[str, Any] | None = None,
) -> Path:
    """A reported load run: run.json and the results.json fields trend reads (schema 1)."""
    run_dir.mkdir(parents=True)
    start = T0 + index * DAY
    run = {"schema": 1, "name": name, "status": "completed", "start_epoch_s": start, "config": {"name": name}}
    results: dict[str, Any] = {
        "schema": 1,
        "run_dir": str(run_dir),
        "metadata": {"name": name, "started_at": None, "status": "completed"},
        "summary": {
            "total": {
                "requests": 1000,
                "failures": 0,
                "failure_ratio": failure_ratio,
                "rps": rps,
                "success_rps": rps,
                "p50_ms": p95 / 2,
                "p95_ms": p95,
                "p99_ms": p95 * 1.2,
            }
        },
        "step_axis": {"column": "users", "label": "users"},
        "steps": [{"level": level} for level in (2, 4, 6, 8)],
        "saturation": {
            "stage": 3,
            "users": 8,
            "level": 8,
            "reason": "r",
            "knee_level": 6,
            "knee_success_rps": rps,
        },
        "slo": {"gates": [], "passed": True, "highest_passing_step": {"stage": 2, "users": 6, "level": 6}},
        "gpu": {"gpu_util_mean_pct": 70.0},
        "measurement": {
            "valid": valid,
            "target_unreachable": not valid,
            **({} if valid else {"why": "refused"}),
        },
        **(extra_results or {}),
    }
    (run_dir / "run.json").write_text(json.dumps({**run, **(extra_run or {})}))
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def series(root: Path, values: list[tuple[float, float]], name: str = "nightly", **kwargs: Any) -> list[Path]:
    return [
        write_run_dir(root / f"{name}-{i:02d}", i, rps, p95, name=name, **kwargs)
        for i, (rps, p95) in enumerate(values)
    ]


def points_of(root: Path) -> list[RunPoint]:
    return collect([root])


def flags_of(root: Path, **kwargs: Any) -> list[tuple[str, str | None, str]]:
    (config,) = analyse(points_of(root), **kwargs)
    return [(f.run_dir.name, f.metric, f.kind) for f in config.flags]


def test_only_the_regressed_run_is_flagged_as_a_regression(tmp_path: Path) -> None:
    series(tmp_path, [*STABLE[:4], (70.0, 412.0), STABLE[4]])
    flags = flags_of(tmp_path)
    assert flags == [
        ("nightly-04", "throughput_rps", "regression"),
        ("nightly-04", "knee_rps", "regression"),
        ("nightly-04", "p95_ms", "regression"),
        ("nightly-04", "p99_ms", "regression"),
    ]
    (config,) = analyse(points_of(tmp_path))
    p95 = config.cells[4]["p95_ms"]
    assert p95.baseline is not None and p95.baseline.median == 299.5 and p95.baseline.runs == 4
    assert p95.deviation is not None and p95.deviation > 0
    # the regression is not the new normal: the run after it is judged against the runs before it
    after = config.cells[5]["p95_ms"].baseline
    assert after is not None and after.median == 299.5 and after.runs == 4
    assert config.cells[5]["p95_ms"].status == "ok"


def test_an_improvement_is_flagged_as_an_improvement(tmp_path: Path) -> None:
    series(tmp_path, [*STABLE, (130.0, 200.0)])
    flags = flags_of(tmp_path)
    assert ("nightly-05", "p95_ms", "improvement") in flags
    assert ("nightly-05", "throughput_rps", "improvement") in flags
    assert all(kind == "improvement" and run == "nightly-05" for run, _, kind in flags)


def test_identical_values_and_tiny_changes_are_not_flagged(tmp_path: Path) -> None:
    # MAD 0: the noise floor (2 % of the median, 1 ms) keeps a 1 % change from being "significant"
    series(tmp_path, [(100.0, 300.0)] * 5 + [(99.0, 303.0)])
    assert flags_of(tmp_path) == []


def test_fewer_than_three_earlier_runs_is_not_enough_history(tmp_path: Path) -> None:
    series(tmp_path, [(100.0, 300.0), (101.0, 301.0), (50.0, 900.0)])
    (config,) = analyse(points_of(tmp_path))
    assert config.flags == []
    assert {cell.status for cell in config.cells[2].values()} == {"not enough history"}
    report = write_trend(points_of(tmp_path), tmp_path / "out")
    assert "not enough history" in (tmp_path / "out" / "trend.md").read_text()
    assert report.newest_regressions == []


def test_an_invalid_run_is_flagged_and_never_a_baseline(tmp_path: Path) -> None:
    # three good runs, then one with the target unreachable (absurd figures), then a normal one
    series(tmp_path, STABLE[:3])
    write_run_dir(tmp_path / "nightly-03", 3, 0.1, 5.0, valid=False)
    write_run_dir(tmp_path / "nightly-04", 4, 99.0, 301.0)
    (config,) = analyse(points_of(tmp_path))
    assert [(f.run_dir.name, f.kind) for f in config.flags] == [("nightly-03", "invalid")]
    assert config.cells[3]["p95_ms"].status == "invalid"
    last = config.cells[4]["p95_ms"]
    assert last.status == "ok" and last.baseline is not None and last.baseline.runs == 3
    assert last.baseline.median == 300.0


def test_two_configs_in_one_folder_are_trended_apart(tmp_path: Path) -> None:
    series(tmp_path, [*STABLE[:4], (70.0, 412.0)], name="alpha")
    # beta's normal is alpha's regression: judged together, nothing of beta would be normal
    series(tmp_path, [(70.0, 410.0), (71.0, 414.0), (69.5, 409.0), (70.5, 412.0), (70.0, 411.0)], name="beta")
    configs = analyse(points_of(tmp_path))
    assert [c.name for c in configs] == ["alpha", "beta"]
    assert [len(c.points) for c in configs] == [5, 5]
    assert {f.run_dir.name for f in configs[0].flags} == {"alpha-04"}
    assert configs[1].flags == []


def test_orchestrator_matrix_and_unreported_runs_are_skipped_with_a_note(tmp_path: Path) -> None:
    series(tmp_path, STABLE)
    matrix = tmp_path / "matrix-run"
    matrix.mkdir()
    (matrix / "run.json").write_text(json.dumps({"kind": "orchestrators", "name": "nightly"}))
    (matrix / "results.json").write_text("{}")
    bare = tmp_path / "not-reported"
    bare.mkdir()
    (bare / "run.json").write_text(json.dumps({"name": "nightly", "start_epoch_s": T0}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    notes: list[str] = []
    points = collect([tmp_path], notes)
    assert len(points) == 5 and all(p.name == "nightly" for p in points)
    assert any("matrix-run" in n and "orchestrator-matrix" in n for n in notes)
    assert any("not-reported" in n and "no results.json" in n for n in notes)
    assert any("broken" in n and "unreadable" in n for n in notes)
    assert len(notes) == 3


def test_figures_read_from_results_and_run_json(tmp_path: Path) -> None:
    run = write_run_dir(
        tmp_path / "r",
        0,
        100.0,
        300.0,
        extra_results={
            "tensor": {"overhead_ms_p50": 12.5},
            "search": {"over": "rps", "resolution": 2, "highest_passing": 40, "lowest_failing": 42},
        },
        extra_run={"preflight": {"summary": {"failed": 2}}},
    )
    point = read_point(run)
    assert isinstance(point, RunPoint)
    assert set(point.figures) == set(METRICS)
    assert point.figures["overhead_ms"] == 12.5
    assert point.figures["check_failures"] == 2
    assert point.figures["capacity"] == 40 and point.unit("capacity") == "requests/s offered"
    assert point.resolution == 2
    assert point.figures["gpu_util_pct"] == 70.0 and point.figures["goodput_rps"] is None
    assert point.started is not None and point.started.startswith("2025-06-15")


def test_a_capacity_one_step_lower_is_not_flagged(tmp_path: Path) -> None:
    # 3 x noise (the 2 % floor) is 6 req/s: less than the search's step of 10, which is its resolution
    capacities = [100, 100, 100, 100, 90, 70]
    for i, capacity in enumerate(capacities):
        search = {
            "over": "rps",
            "resolution": 10,
            "highest_passing": capacity,
            "lowest_failing": capacity + 10,
        }
        write_run_dir(tmp_path / f"nightly-{i:02d}", i, 100.0, 300.0, extra_results={"search": search})
    (config,) = analyse(points_of(tmp_path), metrics=["capacity"])
    assert [c["capacity"].status for c in config.cells] == ["not enough history"] * 3 + [
        "ok",
        "ok",
        "regression",
    ]
    assert config.cells[4]["capacity"].baseline is not None
    assert config.cells[4]["capacity"].baseline.threshold > 10


def test_cli_exits_3_when_the_newest_run_regressed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series(tmp_path, [*STABLE, (70.0, 412.0)])
    assert main(["trend", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "NEWEST RUN REGRESSED" in out and "nightly-05: REGRESSION: p95_ms 412 vs baseline 300" in out
    for name in ("trend.md", "trend.json", "trend.html"):
        assert "nightly-05" in (tmp_path / name).read_text()
    document = json.loads((tmp_path / "trend.json").read_text())
    assert document["newest_regressions"] == 4
    assert {(f["metric"], f["kind"]) for f in document["flags"]} >= {("p95_ms", "regression")}
    markdown = (tmp_path / "trend.md").read_text()
    assert "412 ▲ REGRESSION" in markdown and "70 ▼ REGRESSION" in markdown
    page = (tmp_path / "trend.html").read_text()
    assert "plotly" in page.lower() and "baseline median" in page


def test_cli_exits_0_when_an_older_run_regressed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series(tmp_path, [*STABLE[:4], (70.0, 412.0), STABLE[4]])
    out = tmp_path / "out"
    assert main(["trend", *map(str, sorted(tmp_path.glob("nightly-*"))), "--out", str(out)]) == 0
    assert "nightly-04: REGRESSION" in capsys.readouterr().out
    assert (out / "trend.md").is_file()
    # --metric limits what is judged
    assert main(["trend", str(tmp_path), "--out", str(out), "--metric", "failure_ratio"]) == 0


def test_cli_exits_2_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["trend", str(empty)]) == 2
    assert capsys.readouterr().err.startswith("inferswarm: no load run with a results.json")
    assert main(["trend", str(tmp_path / "missing")]) == 2
    series(tmp_path / "runs", STABLE)
    assert main(["trend", str(tmp_path / "runs"), "--metric", "nope"]) == 2
    assert main(["trend", str(tmp_path / "runs"), "--window", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "unknown metric 'nope'" in err[1] and "window" in err[2]


def test_figures_of_a_real_report(tmp_path: Path) -> None:
    """The keys trend reads are where `inferswarm report` writes them (results.json of an analysed run)."""
    run_dir = write_run(tmp_path / "real", RAMP, slo=["p95_ms < 5000"])
    results = analyse_run(load_run(run_dir))
    (run_dir / "results.json").write_text(json.dumps(results.model_dump(mode="json")))
    point = read_point(run_dir)
    assert isinstance(point, RunPoint) and point.name == "synthetic" and point.valid
    total = results.summary["total"]
    assert results.saturation is not None and results.slo.highest_passing_step is not None
    assert point.figures["throughput_rps"] == total.success_rps
    assert point.figures["p95_ms"] == total.p95_ms and point.figures["p99_ms"] == total.p99_ms
    assert point.figures["failure_ratio"] == total.failure_ratio
    assert point.figures["knee_rps"] == results.saturation.knee_success_rps
    assert point.figures["capacity"] == results.slo.highest_passing_step.level
    assert results.gpu.gpu_util_mean_pct is not None
    assert point.figures["gpu_util_pct"] == results.gpu.gpu_util_mean_pct
    assert point.resolution == 2 and point.unit("capacity") == "users"
