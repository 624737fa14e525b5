"""The report with a request log: exact percentiles (overall, per capability, per step), latency from the
intended start beside the service latency, schedule lag, goodput and its gates; a killed run's stream;
and what the report says when there is no log."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from inferswarm.config import GoodputConfig
from inferswarm.load.arrivals import LATE_MS
from inferswarm.report.analysis import analyse
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from inferswarm.report.requests import Requests, figures, good
from inferswarm.requests_file import SCHEMA, StreamWriter, batch_of
from tests.unit.report.synthetic import START, step, write_run

PER_STEP = 20
FAILED = {0, 3, 6, 9, 12, 15, 18}
"""In the last step, these requests fail (503)."""
# Four 10 s steps (2, 4, 6, 8 users); the log holds each step's 20 requests, Locust's CSVs the same counts.
STEPS = [
    step(2, 10, 20, 0, {100: 10, 150: 10}),
    step(4, 10, 20, 0, {200: 10, 250: 10}),
    step(6, 10, 20, 0, {300: 10, 350: 10}),
    step(8, 10, 13, 7, {400: 10, 450: 10}),
]


def log_rows(lag: bool = True) -> list[tuple[Any, ...]]:
    """Step i, request j: response 100 (i + 1) + 5 j ms, sent j ms after its intended start (0 without
    `lag`: closed loop), inside the step's window."""
    rows = []
    for i in range(4):
        for j in range(PER_STEP):
            intended = START + 10 * i + 0.1 + 0.4 * j
            send = intended + (j / 1000.0 if lag else 0.0)
            ok = not (i == 3 and j in FAILED)
            status = 200 if ok else 503
            category = "" if ok else "capacity"
            rows.append(("cap", intended, send, 1.0, 100.0 * (i + 1) + 5 * j, status, ok, category, 10))
    return [(*row, None, None, None, 0, None) for row in rows]


def columns(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True))


def with_config(run: Path, **sections: Any) -> Path:
    record = json.loads((run / "run.json").read_text())
    record["config"].update(sections)
    (run / "run.json").write_text(json.dumps(record))
    return run


def write_log(run: Path, rows: list[tuple[Any, ...]]) -> None:
    pq.write_table(
        pa.Table.from_batches([batch_of("local", columns(rows))], SCHEMA), run / "locust_requests.parquet"
    )


def q(values: list[float], percent: int) -> float:
    """Linear-interpolated percentile, by the standard library (not the code under test)."""
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def test_percentiles_come_exactly_from_the_log(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS)
    write_log(run, log_rows())
    results = analyse(load_run(run))
    assert results.latency_source == "request_log"
    assert not [n for n in results.notes if "request log" in n]  # its count is Locust's

    rows = log_rows()
    ok_ms = [r[4] for r in rows if r[6]]
    all_ms = [r[4] for r in rows]
    total = results.summary["total"]
    assert (total.requests, total.failures) == (80, 7)  # counts stay Locust's
    assert total.p50_ms == round(q(ok_ms, 50), 4) and total.p99_ms == round(q(ok_ms, 99), 4)
    assert total.p90_ms == round(q(ok_ms, 90), 4) and total.max_ms == max(ok_ms)
    assert total.avg_ms == round(statistics.fmean(ok_ms), 4)
    assert total.all_p95_ms == round(q(all_ms, 95), 4) and total.latency_of == "successful"
    assert results.summary["cap"].p50_ms == total.p50_ms

    for i, s in enumerate(results.steps):
        in_step = [r for r in rows if START + 10 * i <= r[2] < START + 10 * (i + 1)]
        ok_step = [r[4] for r in in_step if r[6]]
        assert s.p50_ms == round(q(ok_step, 50), 4) and s.p99_ms == round(q(ok_step, 99), 4)
        assert s.max_ms == max(ok_step) and s.all_max_ms == max(r[4] for r in in_step)
        assert s.capabilities["cap"].p95_ms == round(q(ok_step, 95), 4)

    # without the log the same run falls back to Locust's histograms: their buckets, not these numbers
    (run / "locust_requests.parquet").unlink()
    histograms = analyse(load_run(run))
    assert histograms.latency_source == "locust_histograms"
    assert [s.p50_ms for s in histograms.steps] == [150, 250, 350, 450]  # Locust's rule on its buckets
    assert [s.p50_ms for s in results.steps] == [147.5, 247.5, 347.5, 450.0]


def test_latency_from_the_intended_start_and_the_schedule_lag(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS)
    write_log(run, log_rows())
    results = analyse(load_run(run))
    rows = log_rows()
    lag_ms = [(r[2] - r[1]) * 1000 for r in rows]
    from_intended = [lag + r[4] for lag, r in zip(lag_ms, rows, strict=True) if r[6]]
    total = results.summary["total"]
    assert total.from_intended_p50_ms == round(q(from_intended, 50), 4)
    assert total.from_intended_p99_ms == round(q(from_intended, 99), 4)
    assert total.from_intended_p50_ms > total.p50_ms  # each was sent up to 19 ms late
    assert total.late_requests == sum(lag > LATE_MS for lag in lag_ms) == 4 * 9  # j = 11 ... 19
    assert abs(total.schedule_lag_max_ms - 19.0) < 1e-3 and abs(total.schedule_lag_p50_ms - 9.5) < 1e-3
    assert [s.late_requests for s in results.steps] == [9, 9, 9, 9]
    assert results.report.late_ms == LATE_MS
    summary = summary_markdown(results)
    assert "## Latency from the intended start" in summary and "from intended p99 ms" in summary
    # 36 of 80 late is far beyond a kept schedule: the report says so
    assert (
        "**Warning:** 36 requests (45.0%) went out late: the generator did not keep the schedule" in summary
    )


def test_a_kept_schedule_gets_no_lateness_warning(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS)
    rows = [(*r[:2], r[1] + 0.001, *r[3:]) for r in log_rows()]  # every send 1 ms behind: on time
    write_log(run, rows)
    summary = summary_markdown(analyse(load_run(run)))
    assert "## Latency from the intended start" in summary and "**Warning:**" not in summary


def test_a_closed_loop_run_shows_no_second_latency(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS)
    write_log(run, log_rows(lag=False))
    results = analyse(load_run(run))
    total = results.summary["total"]
    assert total.from_intended_p99_ms == total.p99_ms and total.late_requests == 0
    assert total.schedule_lag_max_ms == 0
    summary = summary_markdown(results)
    assert "intended start" not in summary and "Latency is exact" in summary


GOODPUT = {"latency_ms": 250}
"""From the intended start: 100 (i + 1) + 6 j <= 250 holds for all of step 0, j <= 8 of step 1."""


def test_goodput_per_step_and_total_and_its_gates(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS, slo=["goodput_rps >= 0.7", "goodput_ratio > 0.5"])
    write_log(run, log_rows())
    results = analyse(load_run(with_config(run, goodput=GOODPUT)))
    assert [s.goodput_requests for s in results.steps] == [20, 9, 0, 0]
    assert [s.goodput_rps for s in results.steps] == [2.0, 0.9, 0.0, 0.0]
    assert [s.goodput_ratio for s in results.steps] == [1.0, 0.45, 0.0, 0.0]
    total = results.summary["total"]
    assert total.goodput_requests == 29 and total.goodput_ratio == round(29 / 80, 4)
    assert total.rps == 2.0 and total.goodput_rps == round(2.0 * 29 / 80, 4)  # like success_rps
    assert results.goodput is not None and results.goodput.measured and results.goodput.latency_ms == 250
    [rps, ratio] = results.slo.gates
    assert (rps.passed, rps.value) == (True, round(2.0 * 29 / 80, 4))
    assert (ratio.passed, ratio.value) == (False, round(29 / 80, 4))
    assert not results.slo.passed
    best = results.slo.highest_passing_step
    assert best is not None and best.users == 2  # step 1 (4 users) meets the rate, not the ratio
    summary = summary_markdown(results)
    assert "## Goodput" in summary and "latency from the intended start <= 250 ms" in summary


def test_without_the_log_goodput_is_absent_and_the_report_says_why(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS, slo=["goodput_rps >= 0.7"])
    results = analyse(load_run(with_config(run, goodput=GOODPUT, output={"request_log": False})))
    assert results.latency_source == "locust_histograms"
    assert results.summary["total"].goodput_rps is None and results.steps[0].goodput_rps is None
    assert results.summary["total"].from_intended_p50_ms is None
    assert results.goodput is not None and not results.goodput.measured
    assert results.goodput.why == "the request log is off (output.request_log: false)"
    [gate] = results.slo.gates
    assert (gate.passed, gate.why) == (False, "no data")  # a check that cannot be made does not pass
    assert any(n.startswith("goodput: not measured") for n in results.notes)
    summary = summary_markdown(results)
    assert "Not measured: the request log is off" in summary and "run wrote no request log" in summary
    assert "goodput_requests" not in json.dumps(results.model_dump(mode="json"))


def test_a_killed_runs_stream_is_read_to_its_last_whole_batch(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", STEPS)
    rows = log_rows()
    stream = run / "locust_requests.arrows"
    writer = StreamWriter(stream)
    writer.write(batch_of("local", columns(rows[:60])))
    whole = stream.stat().st_size
    writer.write(batch_of("local", columns(rows[60:])))
    writer.close()
    stream.write_bytes(stream.read_bytes()[: whole + 40])  # killed inside the second batch
    data = load_run(run)
    assert data.requests is not None and len(data.requests) == 60
    results = analyse(data)
    assert results.latency_source == "request_log"
    assert results.steps[0].p50_ms == round(q([r[4] for r in rows[:20]], 50), 4)
    assert results.steps[3].p50_ms is None  # its batch was lost: no successful request to time
    notes = " ".join(results.notes)
    assert "did not end cleanly, 60 rows read; its last batch was cut short" in notes
    assert "request log: 60 requests, Locust counted 80" in notes


def test_goodput_judges_stream_timings_only_where_a_request_has_them() -> None:
    table = pa.table(
        {
            "capability": ["llm", "llm", "llm", "img", "llm"],
            "intended_epoch_s": [10.0, 10.0, 10.0, 10.0, 10.0],
            "send_epoch_s": [10.0, 10.0, 10.0, 10.0, 10.0],
            "response_ms": [900.0, 900.0, 900.0, 900.0, 900.0],
            "ok": [True, True, True, True, False],
            "ttft_ms": [400.0, 600.0, 100.0, None, 100.0],
            "itl_ms": [20.0, 20.0, 80.0, None, 20.0],
        }
    )
    requests = Requests.from_table(table)
    every = requests.select()
    # 1st meets both; 2nd misses TTFT; 3rd misses ITL; 4th has no stream: judged on nothing else; 5th failed
    assert good(requests, every, GoodputConfig(ttft_ms=500, itl_ms=50)) == 2
    assert good(requests, every, GoodputConfig(ttft_ms=500, itl_ms=50, latency_ms=800)) == 0
    assert good(requests, requests.select(capability="img"), GoodputConfig(ttft_ms=1)) == 1
    assert len(requests.select(capability="none")) == 0
    out = figures(requests, every, GoodputConfig(ttft_ms=500), seconds=2.0)
    assert (out["goodput_requests"], out["goodput_rps"], out["goodput_ratio"]) == (3, 1.5, 0.6)


def test_windows_select_by_when_a_request_ended() -> None:
    send = np.array([0.0, 0.5, 0.9, 1.2])
    table = pa.table(
        {
            "capability": ["a", "b", "a", "a"],
            "intended_epoch_s": send,
            "send_epoch_s": send,
            "response_ms": [100.0, 600.0, 50.0, 100.0],  # ends 0.1, 1.1, 0.95, 1.3
            "ok": [True] * 4,
        }
    )
    requests = Requests.from_table(table)
    assert requests.end_s.tolist() == sorted(requests.end_s.tolist())
    assert sorted(requests.response_ms[requests.select((0.0, 1.0))].tolist()) == [50.0, 100.0]
    assert requests.response_ms[requests.select((1.0, 2.0), "b")].tolist() == [600.0]
    assert figures(requests, requests.select((5.0, 6.0)))["p50_ms"] is None


def test_the_from_intended_entry_is_no_capability_and_no_request(tmp_path: Path) -> None:
    """An open-loop run's `<capability>:from_intended` rows in Locust's CSVs (stats, steps, step
    histograms) are derived entries: no capability of their own, never counted as requests."""
    run = write_run(tmp_path / "run", STEPS)
    name = "cap:from_intended"
    with (run / "locust_stats.csv").open("a") as handle:
        handle.write(f"success,{name},73,0,200,210,100,600,0,1.8,0,{','.join(['300'] * 11)}\n")
    with (run / "locust_steps.csv").open("a") as handle:
        handle.write(f"0,{name},20,0,{START},{START + 10},0\n")
    with (run / "locust_step_latency.csv").open("a") as handle:
        handle.write(f"0,{name},300,20\n")
    results = analyse(load_run(run))
    assert set(results.summary) == {"cap", "total"} and results.summary["total"].requests == 80
    assert all(set(s.capabilities) == {"cap"} for s in results.steps)
    assert results.steps[0].requests == 20 and results.steps[0].p50_ms == 150  # Locust's rule, not 300
