"""`inferswarm compare` on two synthetic runs, one with a planted regression."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli import main
from inferswarm.report.compare import compare, results_of
from inferswarm.report.results import Metadata, Results
from tests.unit.report.synthetic import RAMP, step, write_run

# B: the same ramp, but every latency is 30 % higher (a planted regression) and throughput equal
SLOWER = [{**s, "latency": {int(ms * 1.3): n for ms, n in s["latency"].items()}} for s in RAMP]


def test_planted_latency_regression_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", RAMP)
    b = write_run(tmp_path / "b", SLOWER)
    stats = b / "locust_stats.csv"  # run totals: p95 300 -> 390 ms (+30 %)
    stats.write_text(stats.read_text().replace(",200,300,400,", ",260,390,520,"))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 3
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"]
    flagged = {(r["scope"], r["metric"]) for r in rows if r["regression"]}
    # p90 and p95 moved 30 % for the capability and in total; throughput and saturation did not move
    assert flagged == {("total", "p90_ms"), ("total", "p95_ms"), ("cap", "p90_ms"), ("cap", "p95_ms")}
    p95 = next(r for r in rows if (r["scope"], r["metric"]) == ("total", "p95_ms"))
    assert (p95["a"], p95["b"], p95["change"]) == (300, 390, pytest.approx(0.3))
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "REGRESSION" in html and "Per step, both runs" in html
    assert (
        "2 regression(s)" in capsys.readouterr().out
        or "regression(s)" in (tmp_path / "cmp" / "compare.md").read_text()
    )


def test_within_tolerance_passes(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", RAMP)
    b = write_run(tmp_path / "b", RAMP)
    stats = b / "locust_stats.csv"  # p95 300 -> 320 ms: +6.7 %, inside the default 10 %
    stats.write_text(stats.read_text().replace(",200,300,400,", ",200,320,400,"))
    assert main(["compare", str(a), str(b)]) == 0
    assert (b / "compare.md").read_text().startswith("# b compared with a\n\nNo regressions.")
    # ...but not inside a tolerance of 5 %, given on the command line or in B's config
    assert main(["compare", str(a), str(b), "--tolerance", "p95_ms=0.05"]) == 3
    strict = write_run(tmp_path / "strict", RAMP, report={"warmup_s": 0, "tolerances": {"p95_ms": 0.05}})
    (strict / "locust_stats.csv").write_text(stats.read_text())
    assert main(["compare", str(a), str(strict)]) == 3


def only_total(**figures: Any) -> Results:
    """Results with nothing but these run totals: every other number is missing."""
    total = {
        "requests": 100,
        "failures": 0,
        **dict.fromkeys(["rps", "success_rps", "avg_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms"]),
        "failures_by_category": {},
        "status_codes": {},
        **figures,
    }
    rule = {"min_gain": 0.5, "latency_rise": 0.2, "max_failure_ratio": 0.05}
    return Results.model_validate(
        {
            "schema": 1,
            "run_dir": "run",
            "inputs": {"config": {}, "config_file": None},
            "metadata": dict.fromkeys(Metadata.model_fields),
            "summary": {"total": total},
            "steps": [],
            "saturation": None,
            "slo": {"gates": [], "passed": True, "highest_passing_step": None},
            "pipelines": {},
            "gpu": {},
            "generator_saturation": None,
            "workers": None,
            "report": {"warmup_s": 0.0, "saturation_rule": rule},
            "notes": [],
        }
    )


def test_throughput_and_failures_regressions() -> None:
    base = only_total(rps=100.0, success_rps=100.0, failure_ratio=0.0, p95_ms=50)
    worse = only_total(rps=85.0, success_rps=80.0, failure_ratio=0.02, p95_ms=40)
    rows = {r.metric: r for r in compare(base, worse)}
    assert rows["rps"].regression and rows["success_rps"].regression  # -15 %, -20 %
    assert rows["failure_ratio"].regression and rows["failure_ratio"].change is None  # +0.02 absolute
    assert not rows["p95_ms"].regression  # faster is never a regression


def test_bad_tolerance_and_missing_run_exit_2(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", RAMP)
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    assert main(["compare", str(a), str(a), "--tolerance", "latency=0.1"]) == 2
    assert main(["compare", str(a), str(a), "--tolerance", "p95_ms=lots"]) == 2
    assert main(["compare", str(a), str(a), "--tolerance", "p95_ms=-0.1"]) == 2  # same rule as the config


def test_results_json_is_reused_when_present(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", [step(2, 10, 100, 0, {100: 100})])
    fresh = results_of(run)
    assert not (run / "results.json").exists() and fresh.summary["total"].requests == 100
    planted = fresh.summary["total"].model_copy(update={"rps": 1.0})
    (run / "results.json").write_text(
        fresh.model_copy(update={"summary": {"total": planted}}).model_dump_json()
    )
    assert results_of(run).summary["total"] == planted


def test_results_json_of_another_schema_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path / "a", RAMP)
    b = write_run(tmp_path / "b", RAMP)
    assert main(["report", str(a), "--no-png"]) == 0
    document = json.loads((a / "results.json").read_text())
    (a / "results.json").write_text(json.dumps({**document, "schema": 2}))
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err == f"inferswarm: {a / 'results.json'}: results.json schema 2, this inferswarm reads 1\n"
    assert not (b / "compare.json").exists()
