"""`inferswarm compare` on synthetic runs: noise between two runs of one config compares clean, a real
regression is caught, and every verdict says its test and p-value."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferswarm.cli import main
from inferswarm.report.compare import CompareRow, compare, results_of
from inferswarm.report.results import Metadata, Results
from inferswarm.rundir import LATENCY_COLUMNS, STEPS_COLUMNS
from tests.unit.report.synthetic import RAMP, step, write_run
from tests.unit.report.test_significance import drawn

LEVELS = (2, 4, 6, 8)
FAST_FAILURE_MS = 4


def drawn_run(
    run_dir: Path,
    seed: int,
    scale: float = 1.0,
    failures: tuple[int, ...] = (0, 0, 0, 0),
    report: dict[str, Any] | None = None,
) -> Path:
    """Four steps of 10 s at 2..8 users, ~50 successful requests/s per user (Poisson counts), success
    latency lognormal around 100 ms x `scale`, failures answered in 4 ms. The exact files a run leaves,
    including the successful requests' own `cap:ok` entries."""
    rng = np.random.default_rng(seed)
    steps, ok_histograms = [], []
    for users, failed in zip(LEVELS, failures, strict=True):
        ok = drawn(rng, int(rng.poisson(50 * users * 10)), 100 * scale)
        ok_histograms.append(ok)
        latency = {int(ms): n for ms, n in ok.items()}
        latency[FAST_FAILURE_MS] = latency.get(FAST_FAILURE_MS, 0) + failed
        steps.append(step(users, 10, sum(ok.values()), failed, {k: v for k, v in latency.items() if v}))
    write_run(run_dir, steps, report=report)
    with (run_dir / "locust_steps.csv").open(newline="") as handle:
        windows = {row["stage"]: row for row in csv.DictReader(handle) if row["name"] == "cap"}
    with (run_dir / "locust_steps.csv").open("a", newline="") as handle:
        writer = csv.DictWriter(handle, STEPS_COLUMNS)
        for index, ok in enumerate(ok_histograms):
            writer.writerow(
                {**windows[str(index)], "name": "cap:ok", "requests": sum(ok.values()), "failures": 0}
            )
    with (run_dir / "locust_step_latency.csv").open("a", newline="") as handle:
        rows = [
            [index, "cap:ok", int(ms), n] for index, ok in enumerate(ok_histograms) for ms, n in ok.items()
        ]
        csv.writer(handle).writerows(rows)
    assert LATENCY_COLUMNS == ["stage", "name", "response_time_ms", "count"]
    return run_dir


def rows_of(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scope"], r["metric"]): r for r in json.loads(path.read_text())["rows"]}


def test_two_runs_of_one_config_compare_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = drawn_run(tmp_path / "a", seed=1)
    b = drawn_run(tmp_path / "b", seed=2)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["scope", "metric", "A", "B", "change", "test:", "p-value", "/", "CI", "verdict"]
    assert out[-1] == f"compare: 0 regression(s); {b / 'compare.html'}"
    rows = rows_of(b / "compare.json")
    assert not [key for key, row in rows.items() if row["regression"]]
    p95 = rows[("cap", "p95_ms")]
    # success latency of the 4 matched steps, tested by bootstrap; its change is noise
    assert p95["basis"] == "success" and p95["test"] == "bootstrap (4 steps)" and p95["gated"]
    assert abs(p95["change"]) < 0.05 and p95["p_value"] > 0.01 and p95["verdict"] == "ok"
    assert p95["ci"][0] <= 0 <= p95["ci"][1]
    assert rows[("total", "failure_ratio")]["test"] == "fisher exact"
    assert rows[("total", "success_rps")]["test"] == "poisson rates"
    assert rows[("total @ 8 users", "success_rps")]["gated"] is False
    assert (b / "compare.md").read_text().startswith("# b compared with a\n\nNo regressions.")


def test_a_20_percent_latency_regression_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = drawn_run(tmp_path / "a", seed=1)
    b = drawn_run(tmp_path / "b", seed=2, scale=1.2)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 3
    rows = rows_of(tmp_path / "cmp" / "compare.json")
    flagged = {key for key, row in rows.items() if row["regression"]}
    # every percentile, for the capability and the run; throughput and failures did not move
    assert flagged == {
        (scope, m) for scope in ("total", "cap") for m in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")
    }
    p50 = rows[("cap", "p50_ms")]
    assert p50["a"] == 100 and p50["b"] == 120 and p50["change"] == pytest.approx(0.2)
    assert p50["p_value"] < 0.01 and p50["ci"][0] > 0.1 and p50["verdict"] == "regression"
    out = capsys.readouterr().out
    assert "REGRESSION" in out and out.endswith(
        f"compare: 8 regression(s); {tmp_path / 'cmp' / 'compare.html'}\n"
    )
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "<pre>" not in page and page.count("<table>") == 2 and "<th>verdict</th>" in page
    assert "<tr class='regression'><td>cap</td><td>p50_ms (success)</td>" in page
    assert "How to read the verdicts" in page and "Per step, both runs" in page and "plotly" in page


def test_fast_failures_under_overload_do_not_count_as_faster(tmp_path: Path) -> None:
    """B fails a fifth to a third of its requests in 4 ms at 6 and 8 users: its all-request p50 would
    fall; success latency is what is compared, and the failures are their own regression."""
    a = drawn_run(tmp_path / "a", seed=1)
    b = drawn_run(tmp_path / "b", seed=2, failures=(0, 0, 800, 2000))
    assert main(["compare", str(a), str(b)]) == 3
    rows = rows_of(b / "compare.json")
    assert {key for key, row in rows.items() if row["regression"]} == {
        ("total", "failure_ratio"),
        ("cap", "failure_ratio"),
        ("total", "saturation_users"),
    }
    assert rows[("cap", "p50_ms")]["verdict"] == "ok"
    failures = rows[("cap", "failure_ratio")]
    assert failures["test"] == "fisher exact" and failures["p_value"] < 1e-6
    # saturation: none in A (past the tested 8 users), at 6 in B: two steps, with significantly worse
    # steps between
    saturation = rows[("total", "saturation_users")]
    assert (saturation["a"], saturation["b"]) == (None, 6)
    assert saturation["test"] == "step resolution (2 users)" and saturation["p_value"] < 0.001
    assert saturation["note"].startswith("total @ ") and "failure_ratio +" in saturation["note"]


def test_all_request_latency_when_a_run_did_not_log_successes(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", RAMP)
    b = write_run(tmp_path / "b", RAMP)
    assert main(["compare", str(a), str(b)]) == 0
    row = rows_of(b / "compare.json")[("cap", "p95_ms")]
    assert row["basis"] == "all" and row["change"] == 0 and row["p_value"] == 1.0
    assert "latency of all requests" in (b / "compare.md").read_text()


def test_saturation_one_step_earlier_is_within_resolution(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", RAMP)  # saturates at 6 users
    # B: 8 % failures at 4 users: saturated one step earlier, on a handful of failures
    b_steps = [RAMP[0], step(4, 10, 184, 16, {100: 100, 200: 90, 900: 10}), *RAMP[2:]]
    b = write_run(tmp_path / "b", b_steps)
    assert main(["compare", str(a), str(b)]) == 0
    saturation = rows_of(b / "compare.json")[("total", "saturation_users")]
    assert (saturation["a"], saturation["b"]) == (6, 4)
    assert saturation["verdict"] == "within one step" and not saturation["regression"]


def test_saturation_two_steps_earlier_with_evidence_is_a_regression(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", RAMP)
    b_steps = [step(2, 10, 50, 50, {100: 50, 4: 50}), step(4, 10, 100, 100, {100: 100, 4: 100}), *RAMP[2:]]
    b = write_run(tmp_path / "b", b_steps)
    assert main(["compare", str(a), str(b)]) == 3
    rows = rows_of(b / "compare.json")
    saturation = rows[("total", "saturation_users")]
    assert (saturation["a"], saturation["b"], saturation["verdict"]) == (6, 2, "regression")
    assert saturation["p_value"] < 0.01 and "failure_ratio" in saturation["note"]
    assert rows[("total @ 2 users", "failure_ratio")]["verdict"] == "worse"


def test_tolerances_from_the_command_line_and_the_config(tmp_path: Path) -> None:
    a = drawn_run(tmp_path / "a", seed=1)
    b = drawn_run(tmp_path / "b", seed=2, scale=1.07)  # +7 %: significant, inside the default 10 %
    assert main(["compare", str(a), str(b)]) == 0
    row = rows_of(b / "compare.json")[("cap", "p50_ms")]
    assert row["p_value"] < 0.01 and row["verdict"] == "ok"
    assert main(["compare", str(a), str(b), "--tolerance", "p50_ms=0.05"]) == 3
    strict = drawn_run(
        tmp_path / "strict", seed=2, scale=1.07, report={"warmup_s": 0, "tolerances": {"p50_ms": 0.05}}
    )
    assert main(["compare", str(a), str(strict)]) == 3
    assert rows_of(strict / "compare.json")[("cap", "p50_ms")]["verdict"] == "regression"


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


def by_metric(rows: list[CompareRow]) -> dict[str, CompareRow]:
    return {r.metric: r for r in rows}


def test_run_totals_without_steps_are_tested_on_their_counts() -> None:
    """A failure ratio of 0 -> 2 % on 100 requests is noise; on 10,000 it is not. Latency without
    histograms is shown, never judged."""
    base = only_total(requests=100, rps=10.0, failure_ratio=0.0, p95_ms=50)
    worse = only_total(requests=100, failures=2, rps=8.0, failure_ratio=0.02, p95_ms=80)
    rows = by_metric(compare(base, worse))
    assert rows["failure_ratio"].test == "fisher exact" and rows["failure_ratio"].verdict == "not significant"
    assert rows["rps"].verdict == "not significant"  # 100 vs 100 requests over 10 vs 12.5 s
    assert rows["p95_ms"].verdict == "no test" and not rows["p95_ms"].gated
    big_base = only_total(requests=10_000, rps=100.0, failure_ratio=0.0)
    big_worse = only_total(requests=10_000, failures=200, rps=80.0, failure_ratio=0.02)
    rows = by_metric(compare(big_base, big_worse))
    assert rows["failure_ratio"].regression and rows["failure_ratio"].p_value is not None
    assert rows["rps"].regression and rows["rps"].change == pytest.approx(-0.2)


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
