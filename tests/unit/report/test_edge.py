"""The report's edge section from a synthetic run directory: edge vs cloud per capability and step,
answers by source, confidence, not-ready, latency split, FPS, and the readiness result and timeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from inferswarm.report.analysis import analyse
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from inferswarm.report.results import Distribution, Results
from inferswarm.rundir import READINESS_COLUMNS
from tests.unit.report.synthetic import PCT_LEVELS, START, locust_percentile, step, write_run

CAP = "det"
# Per step: the histogram of each edge entry (value -> count), as the client logs them.
STEP_ENTRIES: list[dict[str, dict[int, int]]] = [
    {"edge_ms": {20: 90, 30: 10}, "confidence_pct": {95: 80, 99: 20}, "source_algorithm": {20: 90, 30: 10}},
    {
        "edge_ms": {25: 40},
        "cloud_ms": {400: 30, 900: 10},
        "confidence_pct": {60: 40, 97: 40},
        "source_algorithm": {25: 40},
        "source_cloud": {400: 30, 900: 10},
    },
]


def _append(path: Path, rows: list[list[Any]]) -> None:
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerows(rows)


def add_edge_entries(run_dir: Path) -> None:
    steps, latency, stats = [], [], []
    totals: dict[str, dict[int, int]] = {}
    for index, entries in enumerate(STEP_ENTRIES):
        start, stop = START + 10 * index, START + 10 * (index + 1)
        for metric, histogram in entries.items():
            name = f"{CAP}:{metric}"
            steps.append([index, name, sum(histogram.values()), 0, start, stop, 0])
            latency += [[index, name, ms, n] for ms, n in sorted(histogram.items())]
            for ms, n in histogram.items():
                totals.setdefault(metric, {})[ms] = totals.get(metric, {}).get(ms, 0) + n
    for metric, histogram in totals.items():
        count = sum(histogram.values())
        mean = sum(ms * n for ms, n in histogram.items()) / count
        pcts = [locust_percentile(histogram, q) for q in PCT_LEVELS]
        low, high = min(histogram), max(histogram)
        stats.append(
            ["observed", f"{CAP}:{metric}", count, 0, pcts[0], mean, low, high, 0, count / 20, 0.0, *pcts]
        )
    _append(run_dir / "locust_steps.csv", steps)
    _append(run_dir / "locust_step_latency.csv", latency)
    _append(run_dir / "locust_stats.csv", stats)


def edge_run(tmp_path: Path, load: dict[str, Any] | None = None) -> Results:
    run_dir = write_run(
        tmp_path / "run",
        [
            step(1, 10, ok=100, fail=0, latency={20: 90, 30: 10}, ok_latency={20: 90, 30: 10}),
            step(
                2,
                10,
                ok=80,
                fail=20,
                latency={5: 20, 25: 40, 400: 30, 900: 10},
                ok_latency={25: 40, 400: 30, 900: 10},
            ),
        ],
        cap=CAP,
        error="not_ready: HTTP 503 (detector not ready)",
        load=load,
    )
    add_edge_entries(run_dir)
    return analyse(load_run(run_dir))


def test_edge_vs_cloud_over_the_run(tmp_path: Path) -> None:
    results = edge_run(tmp_path)
    assert results.edge is not None
    assert list(results.summary) == [CAP, "total"]  # edge entries are not capabilities
    figures = results.edge.capabilities[CAP]
    assert (figures.answers, figures.edge, figures.cloud) == (180, 140, 40)
    assert figures.edge_share == round(140 / 180, 4)
    assert figures.by_source == {"algorithm": 140, "cloud": 40}
    assert figures.not_ready == 20
    assert figures.edge_ms == Distribution(
        avg=round((20 * 90 + 30 * 10 + 25 * 40) / 140, 4), p50=20, p90=25, p95=30, p99=30
    )
    assert figures.cloud_ms is not None and (figures.cloud_ms.p50, figures.cloud_ms.p95) == (400, 900)
    assert figures.confidence_pct is not None and figures.confidence_pct.p50 == 95


def test_edge_vs_cloud_per_step(tmp_path: Path) -> None:
    results = edge_run(tmp_path)
    assert results.edge is not None
    first, second = results.edge.steps
    assert (first.stage, first.name, first.level) == (0, "step 1", 1)
    one = first.capabilities[CAP]
    assert (one.answers, one.edge, one.cloud, one.edge_share) == (100, 100, 0, 1.0)
    assert one.cloud_ms is None and one.not_ready is None
    assert one.edge_ms == Distribution(avg=21.0, p50=20, p90=30, p95=30, p99=30)
    two = second.capabilities[CAP]
    assert (two.answers, two.edge, two.cloud, two.edge_share) == (80, 40, 40, 0.5)
    assert two.by_source == {"algorithm": 40, "cloud": 40}
    assert two.cloud_ms == Distribution(avg=525.0, p50=400, p90=900, p95=900, p99=900)
    assert two.confidence_pct is not None and (two.confidence_pct.p50, two.confidence_pct.avg) == (97, 78.5)


def test_the_summary_shows_edge_tables(tmp_path: Path) -> None:
    text = summary_markdown(edge_run(tmp_path))
    assert "## Edge vs cloud" in text and "## Edge vs cloud per step" in text
    assert (
        "| det | 180 | 140 | 40 | 77.8% | 20 | 30 | 400 | 900 | 95 | 88 | 20 | algorithm 140, cloud 40 |"
        in text
    )
    assert "| step 2 | 2 | det | 80 | 40 | 40 | 50.0% | 25 | 25 | 400 | 900 | 97 | 78 |" in text
    assert "Frames per second" not in text


def test_a_run_without_edge_entries_has_no_edge_section(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "plain", [step(1, 10, ok=50, fail=0, latency={10: 50})])
    results = analyse(load_run(run_dir))
    assert results.edge is None
    assert "edge" not in results.model_dump(mode="json")
    assert "Edge vs cloud" not in summary_markdown(results)


def test_fps_is_the_successful_requests_per_second_of_its_step(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "fps",
        [step(1, 10, ok=250, fail=0, latency={40: 250}, ok_latency={40: 250})],
        cap=CAP,
        load={"shape": "fps", "duration_s": 10},
    )
    results = analyse(load_run(run_dir))
    assert results.edge is not None and results.edge.fps == 25.0
    assert "Frames per second end to end (one client, back to back): **25.00**." in summary_markdown(results)


def write_readiness(run_dir: Path, answers: list[dict[str, str]], section: dict[str, Any]) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data["readiness"] = section
    (run_dir / "run.json").write_text(json.dumps(data))
    with (run_dir / "locust_readiness.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(READINESS_COLUMNS)
        for index, iteration in enumerate(answers):
            for name, answer in iteration.items():
                t = START + index
                writer.writerow([index + 1, name, index, t, t + 0.05, 200, answer, 50.0])


def test_readiness_result_and_timeline(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "ready", [step(2, 10, ok=20, fail=0, latency={50: 20})], load={"shape": "readiness"}
    )
    answers = [
        {"a": "refused", "b": "refused"},
        {"a": "refused", "b": "refused"},
        {"a": "not_ready", "b": "cloud"},
        {"a": "not_ready", "b": "cloud"},
        {"a": "edge", "b": "cloud"},
        {"a": "edge", "b": "edge"},
    ]
    section = {
        "outcome": "ready",
        "why": None,
        "interval_s": 1.0,
        "timeout_s": 120.0,
        "first_connection_epoch_s": START + 2.05,
        "iterations": 6,
        "ready_iteration": 6,
        "time_to_all_ready_s": 3.0,
        "detectors": {
            "a": {"first_edge_iteration": 5, "first_edge_epoch_s": START + 4.05, "first_edge_s": 2.0},
            "b": {"first_edge_iteration": 6, "first_edge_epoch_s": START + 5.05, "first_edge_s": 3.0},
        },
    }
    write_readiness(run_dir, answers, section)
    results = analyse(load_run(run_dir))
    assert results.edge is not None
    ready = results.edge.readiness
    assert ready is not None
    assert (ready.outcome, ready.time_to_all_ready_s, ready.ready_iteration) == ("ready", 3.0, 6)
    assert ready.detectors["a"].first_edge_s == 2.0 and ready.detectors["b"].first_edge_iteration == 6
    assert [(i.iteration, i.t_s, i.answers) for i in ready.timeline] == [
        (1, -2.05, {"refused": 2}),
        (3, -0.05, {"cloud": 1, "not_ready": 1}),
        (5, 1.95, {"cloud": 1, "edge": 1}),
        (6, 2.95, {"edge": 2}),
    ]
    text = summary_markdown(results)
    assert "All 2 detectors answered from the edge in iteration 6: **3.0 s** after the first" in text
    assert "| a | 5 | 2.0 |" in text and "| 3 | -0.1 | cloud 1, not_ready 1 |" in text


def test_readiness_that_timed_out_says_why(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "late", [step(1, 10, ok=10, fail=0, latency={50: 10})])
    section = {
        "outcome": "timed_out",
        "why": "not all ready within timeout_s (5 s after the first connection): 1 never answered",
        "interval_s": 1.0,
        "timeout_s": 5.0,
        "iterations": 5,
        "ready_iteration": None,
        "time_to_all_ready_s": None,
        "detectors": {"a": {"first_edge_iteration": None, "first_edge_s": None}},
    }
    write_readiness(run_dir, [{"a": "not_ready"}] * 5, section)
    results = analyse(load_run(run_dir))
    assert results.edge is not None and results.edge.readiness is not None
    assert results.edge.readiness.timeline[-1].iteration == 5  # the last iteration is always kept
    assert "**Not all detectors ready** (timed_out): not all ready within timeout_s" in summary_markdown(
        results
    )
