from __future__ import annotations

import pytest

from inferswarm.slo import parse_gate
from inferswarm.trials import judge, unsupported, window_metrics

WINDOW = {
    "a": (40, 4, {10: 30, 20: 6, 900: 4}),
    "a:ok": (36, 0, {10: 30, 20: 6}),
    "b": (10, 0, {100: 10}),
    "b:ok": (10, 0, {100: 10}),
    "Aggregated": (50, 4, {}),
}


def test_window_metrics_per_capability_and_total() -> None:
    scopes = window_metrics(WINDOW, 2.0, ("a", "b"))
    assert scopes["a"]["requests"] == 40 and scopes["a"]["rps"] == 20 and scopes["a"]["success_rps"] == 18
    assert scopes["a"]["failure_ratio"] == pytest.approx(0.1)
    assert (scopes["a"]["p50_ms"], scopes["a"]["p95_ms"], scopes["a"]["max_ms"]) == (
        10,
        20,
        20,
    )  # successes only
    assert scopes["total"]["requests"] == 50 and scopes["total"]["failure_ratio"] == pytest.approx(0.08)
    assert scopes["total"]["p90_ms"] == 100 and scopes["total"]["avg_ms"] == pytest.approx(
        (300 + 120 + 1000) / 46
    )


def test_judge_fails_on_any_gate_and_on_missing_data() -> None:
    scopes = window_metrics(WINDOW, 2.0, ("a", "b"))
    passing = judge([parse_gate("p95_ms < 150"), parse_gate("a: failure_ratio <= 0.1")], scopes)
    assert passing.passed and passing.reasons == ()
    failing = judge([parse_gate("failure_ratio < 0.05"), parse_gate("c: p50_ms < 1")], scopes)
    assert not failing.passed
    assert failing.reasons == ("failure_ratio < 0.05: 0.08", "c: p50_ms < 1: no data")
    too_few = judge([], window_metrics({"a": (5, 0, {}), "a:ok": (5, 0, {10: 5})}, 1.0, ("a",)))
    assert not too_few.passed and too_few.reasons == ("fewer than 10 requests",)


def test_unsupported_gates_are_the_report_only_ones() -> None:
    assert unsupported(["p95_ms < 1", "gpu_mem_peak_pct < 90", "rps > 3"]) == ["gpu_mem_peak_pct < 90"]
