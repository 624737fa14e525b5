"""Trustworthy numbers under faults (issue 13): latency of successful requests is the headline (fast
failures must not make overload look fast), an unreachable target gets no capacity verdict, steps cut
short decide nothing, and history written after a test stopped is not traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from inferswarm.cli import main
from inferswarm.cli.common import EXIT_NO_MEASUREMENT
from inferswarm.report.analysis import MIN_STEP_REQUESTS, analyse, merged_percentiles, series_frame
from inferswarm.report.figures import all_figures, latency_over_time, per_step, throughput_over_time
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from tests.unit.report.synthetic import START, locust_percentile, step, write_run

# Successful requests get slower at 6 users while 40 % of requests fail in 1 ms (fast 503s): all
# requests' p95 falls from 900 to 400 ms, successful requests' p95 doubles to 1800 ms.
FAST = {100: 50, 200: 45, 900: 5}
OVERLOAD = [
    step(2, 10, 100, 0, FAST, ok_latency=FAST),
    step(4, 10, 200, 0, {100: 100, 200: 90, 900: 10}, ok_latency={100: 100, 200: 90, 900: 10}),
    step(
        6,
        10,
        210,
        140,
        {1: 140, 200: 105, 400: 94, 1800: 11},
        ok_latency={200: 105, 400: 94, 1800: 11},
    ),
]
# failures alone must not decide: let up to half fail
LENIENT = {"warmup_s": 0, "saturation": {"max_failure_ratio": 0.5}}


def test_headline_latency_is_of_successful_requests(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", OVERLOAD, report=LENIENT)))
    overload = results.steps[2]
    assert (overload.p50_ms, overload.p95_ms, overload.p99_ms) == (400, 1800, 1800)
    assert (overload.all_p50_ms, overload.all_p95_ms, overload.all_p99_ms) == (200, 400, 1800)
    assert overload.latency_of == "successful" and overload.failure_ratio == 0.4
    assert overload.capabilities["cap"].p95_ms == 1800 and overload.capabilities["cap"].all_p95_ms == 400
    # the saturation rule sees successful requests' latency climb (all requests' fell)
    sat = results.saturation
    assert sat is not None and sat.level == 6
    assert sat.reason == "+2 users added +1.00 req/s (< 50% of 10.00) while p95 rose 900 → 1800 ms"
    # the run totals: successful requests from the `cap:ok` entry, all requests beside them
    cap = results.summary["cap"]
    ok = {100: 150, 200: 240, 400: 94, 900: 15, 1800: 11}
    assert cap.latency_of == "successful"
    assert (cap.p50_ms, cap.p95_ms) == (locust_percentile(ok, 0.5), locust_percentile(ok, 0.95)) == (200, 900)
    assert (cap.all_p50_ms, cap.all_p95_ms) == (100, 300)  # the synthetic stats row's all-requests columns
    # one capability: the total's successful latency is that capability's
    assert results.summary["total"].p95_ms == 900 and results.summary["total"].latency_of == "successful"


def test_latency_figures_show_successful_requests_and_all_beside(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", OVERLOAD, report=LENIENT))
    results = analyse(data)
    fig = per_step(results)
    assert fig is not None
    lines = {trace.name: trace for trace in fig.data}
    assert list(lines["p95"].y) == [900, 900, 1800]
    assert list(lines["p95 (all requests)"].y) == [900, 900, 400]
    assert lines["p95 (all requests)"].line.dash == "dot"
    over_time = latency_over_time(data, results)
    assert over_time is not None
    assert over_time.layout.annotations[0].text == "cap: successful requests"
    named = {trace.name: trace for trace in over_time.data}
    # the `cap:ok` history: its p95 is the successful requests' p95 of each step
    assert set(named["p95"].y) == {900, 1800}
    assert "p95 (all requests)" in named


def test_saturation_is_marked_on_the_over_time_figures(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", OVERLOAD, report=LENIENT))
    results = analyse(data)
    saturated_at = START + 20  # the third step's start
    for name in ("throughput_over_time", "latency_over_time"):
        fig = all_figures(data, results)[name]
        lines = [shape for shape in fig.layout.shapes if shape.line.color == "#c00"]
        assert lines, name
        assert {pd.Timestamp(shape.x0) for shape in lines} == {pd.Timestamp(saturated_at, unit="s", tz="UTC")}
        assert "saturation at 6 users" in [a.text for a in fig.layout.annotations]


def test_total_of_several_capabilities_merges_their_percentiles() -> None:
    one = {"50%": 100, "66%": 100, "75%": 100, "80%": 100, "90%": 200, "95%": 200, "98%": 200}
    one |= {"99%": 200, "99.9%": 200, "99.99%": 200, "100%": 200}
    other = {column: value * 10 for column, value in one.items()}
    # equal counts: half the requests are the fast one's (all <= 200 ms): the median is 200; 90 % are
    # the fast one's and 80 % of the slow one's (<= 1000 ms); above that, the slow one's 2000
    merged = merged_percentiles([(100, one), (100, other)])
    assert merged == {"p50_ms": 200, "p90_ms": 1000, "p95_ms": 2000, "p99_ms": 2000}
    # one entry: its own percentiles exactly
    assert merged_percentiles([(7, one)]) == {"p50_ms": 100, "p90_ms": 200, "p95_ms": 200, "p99_ms": 200}


REFUSED = "connection_error: ConnectionRefusedError(111, 'Connection refused')"


def test_unreachable_target_gets_no_verdict_and_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = [step(2, 10, 0, 100, {1: 100}), step(4, 10, 0, 200, {1: 200})]
    run = write_run(tmp_path / "run", dead, error=REFUSED, slo=["failure_ratio < 0.5"])
    assert main(["report", str(run), "--no-png"]) == EXIT_NO_MEASUREMENT == 4
    out = capsys.readouterr().out
    assert "report: no valid measurement: target unreachable: 100.0% of 300 requests failed" in out
    assert "saturation at" not in out
    results = json.loads((run / "results.json").read_text())
    assert results["measurement"]["valid"] is False and results["measurement"]["target_unreachable"] is True
    assert results["saturation"] is None and results["slo"]["highest_passing_step"] is None
    summary = (run / "summary.md").read_text()
    assert "No capacity verdict: target unreachable" in summary and "Saturated at" not in summary
    assert "No capacity verdict: target unreachable" in (run / "report.html").read_text()


def test_a_503_storm_is_a_measurement(tmp_path: Path) -> None:
    storm = [step(2, 10, 100, 0, FAST), step(4, 10, 20, 180, {1: 180, 100: 20})]
    results = analyse(load_run(write_run(tmp_path / "run", storm)))
    assert results.measurement is not None and results.measurement.valid
    assert results.saturation is not None and results.saturation.level == 4


def test_steps_cut_short_decide_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [
        step(2, 10, 100, 0, FAST),
        step(4, 10, 200, 0, {100: 100, 200: 90, 900: 10}),
        # Ctrl+C: the stage did not complete, and what it measured fails half its requests
        step(6, 10, 100, 100, {1: 100, 200: 100}, completed=False),
    ]
    run = write_run(tmp_path / "run", steps, slo=["rps >= 1"])
    results = analyse(load_run(run))
    assert [s.judged for s in results.steps] == [True, True, False]
    assert results.steps[2].not_judged_why == "did not complete"
    assert results.saturation is None
    best = results.slo.highest_passing_step
    assert best is not None and best.level == 4
    assert main(["report", str(run), "--no-png"]) == 0
    assert "report: step 3 (6 users) not judged: did not complete" in capsys.readouterr().out
    summary = (run / "summary.md").read_text()
    assert "| step 3 | 6 |" in summary and "not judged: did not complete |" in summary
    assert f"at least {MIN_STEP_REQUESTS} requests" in summary
    assert "not judged: did not complete" in (run / "report.html").read_text()
    saved = json.loads((run / "results.json").read_text())
    assert saved["steps"][2]["judged"] is False and saved["report"]["min_step_requests"] == MIN_STEP_REQUESTS


def test_a_window_too_short_to_judge(tmp_path: Path) -> None:
    steps = [
        step(2, 10, 100, 0, FAST),
        step(4, 1, 4, 4, {1: 4, 100: 4}),  # one second, 8 requests, half failed
        step(6, 10, 5, 0, {100: 5}),  # a long window with too few requests
    ]
    results = analyse(load_run(write_run(tmp_path / "run", steps)))
    assert [s.judged for s in results.steps] == [True, False, False]
    assert results.steps[1].not_judged_why == "measured window 1.0 s < 2 s"
    assert results.steps[2].not_judged_why == f"5 requests < {MIN_STEP_REQUESTS} in the measured window"
    assert results.saturation is None


def test_history_after_the_test_stopped_is_not_traffic(tmp_path: Path) -> None:
    steps = [step(2, 10, 100, 0, FAST), step(4, 10, 200, 0, {100: 100, 200: 90, 900: 10})]
    run = write_run(tmp_path / "run", steps, after_stop_s=30)
    data = load_run(run)
    end = START + 20
    frame = series_frame(data)
    assert frame is not None and frame["Timestamp"].max() <= end
    assert "locust_stats_history.csv: 30 s of history written while no test ran left out" in data.notes[0]
    fig = throughput_over_time(data, None)
    assert fig is not None
    rates = next(trace for trace in fig.data if trace.name == "requests/s")
    assert pd.Timestamp(max(rates.x)).timestamp() <= end and len(rates.x) == 20
    # from the history alone (no step files), the last step's rate is still what was sent
    (run / "locust_steps.csv").unlink()
    assert [s.rps for s in analyse(load_run(run)).steps] == [10.0, 20.0]
    # without stages: the rows with 0 users after the last row with users are left out
    (run / "locust_stages.csv").unlink()
    frame = series_frame(load_run(run))
    assert frame is not None and frame["Timestamp"].max() == int(end)


def test_summary_marks_latency_of_all_requests_where_success_was_not_recorded(tmp_path: Path) -> None:
    # a run from before `:ok` entries, with failures: its latency is all requests', and says so
    results = analyse(load_run(write_run(tmp_path / "run", [step(2, 10, 80, 20, {1: 20, 100: 80})])))
    assert results.summary["cap"].latency_of == "all" and results.steps[0].latency_of == "all"
    assert "Latency of all requests for cap, total" in summary_markdown(results)


def test_ok_entries_are_neither_requests_nor_pipeline_metrics(tmp_path: Path) -> None:
    results = analyse(load_run(write_run(tmp_path / "run", OVERLOAD, report=LENIENT)))
    assert set(results.summary) == {"cap", "total"}
    assert results.summary["total"].requests == 100 + 200 + 350  # the `cap:ok` entry is not counted again
    assert results.pipelines == {}  # successful requests' latency is no LLM (or other pipeline) figure
    assert set(results.steps[2].capabilities) == {"cap"}
