"""The orchestrator-matrix report on synthetic run directories written exactly as the contract says
(`rundir.ORCH_*`): the matrix, its heat maps, down and cold marks, errors, the previous run and the
comparison, a malformed file's one-line error and `inferswarm report` end to end."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli.parser import main
from inferswarm.report import matrix_render as mr
from inferswarm.report.orchestrators import (
    Matrix,
    MatrixFileError,
    compare_matrix,
    load_matrix,
    mann_whitney,
    previous_run,
    write_matrix_report,
)
from inferswarm.rundir import (
    ORCH_DISCOVERY,
    ORCH_JOB_COLUMNS,
    ORCH_JOBS_CSV,
    ORCH_KIND,
    ORCH_STAT_COLUMNS,
    ORCH_STATS_CSV,
    RUN_JSON,
)

NOT_AVAILABLE = "HTTP 503: no orchestrators available"
A, B, C = "0xaaaa000000000000000000000000000000000001", "0xbbbb0000000000000000000000000000000002", "0xcccc03"


@dataclass
class Spec:
    """A cell as the run would record it: its successful jobs' round trips and its failures."""

    orchestrator: str
    pipeline: str
    model: str
    ok_s: tuple[float, ...] = (1.0,)
    failures: tuple[tuple[str, str, float], ...] = ()
    """(error_code, message, round trip s)"""
    warm: bool = True
    post: str = "posted"


def _stat_row(spec: Spec) -> dict[str, Any]:
    jobs = len(spec.ok_s) + len(spec.failures)
    timed = spec.ok_s or tuple(f[2] for f in spec.failures)
    errors: dict[tuple[str, str], int] = {}
    for code, message, _ in spec.failures:
        errors[(code, message)] = errors.get((code, message), 0) + 1
    return {
        "region": "FRA",
        "orchestrator": spec.orchestrator,
        "service_uri": f"https://{spec.orchestrator[-4:]}.example:8935",
        "pipeline": spec.pipeline,
        "model": spec.model,
        "model_is_warm": str(spec.warm),
        "jobs": jobs,
        "successes": len(spec.ok_s),
        "success_rate": len(spec.ok_s) / jobs if jobs else 0,
        "round_trip_time": sum(timed) / len(timed) if timed else "",
        "rtt_of": ("successes" if spec.ok_s else "failures") if jobs else "",
        "errors": json.dumps([{"error_code": c, "message": m, "count": n} for (c, m), n in errors.items()]),
        "timestamp": 1700000000,
        "post_status": spec.post,
        "post_http_status": 200 if spec.post == "posted" else "",
        "post_attempts": 1,
        "post_error": "",
    }


def _job_rows(spec: Spec) -> list[dict[str, Any]]:
    rows = []
    base = {"orchestrator": spec.orchestrator, "service_uri": "", "pipeline": spec.pipeline}
    for i, rtt in enumerate(spec.ok_s):
        rows.append(base | {"model": spec.model, "job": i, "round_trip_s": rtt, "status": 200, "ok": "True"})
    for i, (code, message, rtt) in enumerate(spec.failures, start=len(spec.ok_s)):
        status = int(code) if code.isdigit() else 0
        rows.append(
            base
            | {"model": spec.model, "job": i, "round_trip_s": rtt, "status": status, "ok": "False"}
            | {"category": "http_error", "error_code": code, "message": message}
        )
    return rows


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row.get(c, "") for c in columns] for row in rows])


def write_run(
    base: Path, dirname: str, specs: list[Spec], name: str = "matrix", start: float = 1000.0, **extra: Any
) -> Path:
    run_dir = base / dirname
    run_dir.mkdir(parents=True)
    _write_csv(run_dir / ORCH_STATS_CSV, ORCH_STAT_COLUMNS, [_stat_row(s) for s in specs])
    _write_csv(run_dir / ORCH_JOBS_CSV, ORCH_JOB_COLUMNS, [r for s in specs for r in _job_rows(s)])
    discovery = {
        "source": "getOrchestratorAICapabilities",
        "orchestrators": [],
        "notices": ["skipped capability 'Live video to video': no pipeline configured"],
        "cells": [
            {"orchestrator": s.orchestrator, "pipeline": s.pipeline, "model": s.model, "warm": s.warm}
            for s in specs
        ],
        "filtered_out": [],
    }
    (run_dir / ORCH_DISCOVERY).write_text(json.dumps(discovery), encoding="utf-8")
    run = {
        "schema": 1,
        "kind": ORCH_KIND,
        "name": name,
        "status": "complete",
        "started_at": "2024-01-01T00:00:00Z",
        "start_epoch_s": start,
        "region": "FRA",
        "gateway": {"url": "http://gw:8935", "cli_url": "http://gw:7935"},
        "summary": {"dry_run": False},
    } | extra
    (run_dir / RUN_JSON).write_text(json.dumps(run), encoding="utf-8")
    return run_dir


T2I, SDXL = "text-to-image", "ByteDance/SDXL-Lightning"
LLM, LLAMA = "llm", "meta-llama/Llama-3.1-8B"


def baseline_specs() -> list[Spec]:
    """A answers everything (one cold model); B is not reached by the gateway; C fails with 500s."""
    return [
        Spec(A, T2I, SDXL, ok_s=(2.0,)),
        Spec(A, LLM, LLAMA, ok_s=(0.5, 0.7), failures=(("500", "HTTP 500: boom", 0.1),), warm=False),
        Spec(B, T2I, SDXL, ok_s=(), failures=((("503", NOT_AVAILABLE, 0.02),) * 2), post="failed"),
        Spec(B, LLM, LLAMA, ok_s=(), failures=(("CONNECTION_ERROR", "connection refused", 0.01),)),
        Spec(C, T2I, SDXL, ok_s=(), failures=(("500", "HTTP 500: boom", 0.3),)),
    ]


@pytest.fixture
def matrix(tmp_path: Path) -> Matrix:
    return load_matrix(write_run(tmp_path, "run", baseline_specs()))


def test_the_matrix_holds_exactly_the_cells_given(matrix: Matrix) -> None:
    keys = [c.key for c in matrix.cells]
    assert keys == [(s.orchestrator, s.pipeline, s.model) for s in baseline_specs()]
    llm = matrix.cells[1]
    assert (llm.jobs, llm.successes, llm.warm, llm.rtt_of) == (3, 2, False, "successes")
    assert llm.success_rate == pytest.approx(2 / 3)
    assert llm.round_trips_s == (0.5, 0.7)
    assert matrix.orchestrators == sorted([A, B, C])


def test_success_heat_map_z_is_the_success_rates_and_rtt_says_what_it_is_of(matrix: Matrix) -> None:
    heat = mr.success_heatmap(matrix)
    figure = mr.matrix_figures(matrix)["success_rate"]
    assert [list(row) for row in figure.data[0].z] == heat.z
    columns = [(p, m) for p, m in sorted({(c.pipeline, c.model) for c in matrix.cells})]
    expected = [
        [next((c.success_rate for c in matrix.cells if c.key == (o, *col)), None) for col in columns]
        for o in matrix.orchestrators
    ]
    assert heat.z == expected
    assert heat.z[[*matrix.orchestrators].index(A)] == [pytest.approx(2 / 3), 1.0]  # llm, then t2i
    rtt = mr.rtt_heatmap(matrix)
    row_c = matrix.orchestrators.index(C)
    assert rtt.z[row_c] == [None, None]  # C's only cell failed: its round trip is off the colour scale
    assert "of failures" in rtt.text[row_c][1]
    assert "(n=1)" in rtt.text[matrix.orchestrators.index(A)][1]
    assert mr.rtt_text(0.3, 1, "failures") == "0.300 s of failures (n=1)"
    assert mr.rtt_text(0.6, 2, "successes") == "0.600 s"


def test_the_orchestrator_the_gateway_could_not_reach_is_down_and_marked(matrix: Matrix) -> None:
    assert {o: matrix.status_of(o) for o in matrix.orchestrators} == {A: "failing", B: "down", C: "failing"}
    rows = mr.success_heatmap(matrix).rows
    assert [r for r in rows if mr.DOWN in r] == [f"{mr.short(B)} {mr.DOWN}"]


def test_cold_models_are_marked_in_both_heat_maps(matrix: Matrix) -> None:
    for heat in (mr.success_heatmap(matrix), mr.rtt_heatmap(matrix)):
        marked = [
            (o, col)
            for o, row in zip(matrix.orchestrators, heat.text, strict=True)
            for col, text in zip(heat.columns, row, strict=True)
            if text.startswith(mr.COLD)
        ]
        assert marked == [(A, f"{LLM}<br>{LLAMA}")]
    assert mr.COLD in mr.LEGEND


def test_errors_are_counted_by_code_and_message(matrix: Matrix) -> None:
    rows = [(e.error_code, e.message, e.count, e.orchestrators) for e in mr.error_rows(matrix)]
    assert rows == [
        ("500", "HTTP 500: boom", 2, sorted([A, C])),
        ("503", NOT_AVAILABLE, 2, [B]),
        ("CONNECTION_ERROR", "connection refused", 1, [B]),
    ]


def test_previous_run_is_the_latest_earlier_run_of_the_same_config(tmp_path: Path) -> None:
    specs = baseline_specs()
    current = write_run(tmp_path, "now", specs, start=5000)
    write_run(tmp_path, "oldest", specs, start=1000)
    wanted = write_run(tmp_path, "previous", specs, start=4000)
    write_run(tmp_path, "other-config", specs, name="other", start=4500)
    write_run(tmp_path, "later", specs, start=6000)
    write_run(tmp_path, "a-load-run", specs, start=4800, kind="load")
    no_stats = write_run(tmp_path, "no-stats", specs, start=4900)
    (no_stats / ORCH_STATS_CSV).unlink()
    assert previous_run(current) == wanted
    assert previous_run(tmp_path / "oldest") is None


def test_the_comparison_flags_what_stopped_answering_and_what_got_slower(tmp_path: Path) -> None:
    before = [*baseline_specs(), Spec(C, LLM, LLAMA, ok_s=(0.1,))]
    after = [
        Spec(A, T2I, SDXL, ok_s=(2.4,)),  # +20%: within the 25% threshold
        Spec(A, LLM, LLAMA, ok_s=(0.9, 1.1), warm=False),  # 0.6 -> 1.0 s: slower beyond it
        Spec(B, T2I, SDXL, ok_s=(0.3,)),  # B answers again
        Spec(C, T2I, SDXL, ok_s=(), failures=(("503", NOT_AVAILABLE, 0.02),)),
        Spec(C, LLM, LLAMA, ok_s=(), failures=(("TIMEOUT", "no answer in 60 s", 60.0),)),
    ]
    old = load_matrix(write_run(tmp_path, "old", before, start=1))
    new = load_matrix(write_run(tmp_path, "new", after, start=2))
    diff = compare_matrix(old, new)
    assert diff.stopped_answering == [C]
    assert diff.started_answering == [B]
    assert diff.cells_stopped == [(C, LLM, LLAMA)]
    assert diff.gone_cells == [(B, LLM, LLAMA)]
    assert diff.new_cells == [] and diff.new_orchestrators == [] and diff.gone_orchestrators == []
    assert [(r.orchestrator, r.pipeline) for r in diff.slower] == [(A, LLM)]
    assert diff.faster == []
    same = next(r for r in diff.rtt if r.pipeline == T2I)
    assert same.verdict == "same" and same.change == pytest.approx(0.2)
    assert {r.method for r in diff.rtt} == {"threshold"}
    # moves under the absolute floor (here 0.5 s) are not news, whatever their share
    tiny = compare_matrix(old, new, rel_threshold=0.1, abs_floor_s=0.5)
    assert [r.pipeline for r in tiny.slower] == []


def test_with_five_jobs_a_cell_is_judged_by_the_rank_test(tmp_path: Path) -> None:
    fast, slow, noisy = (1.0, 1.1, 0.9, 1.05, 0.95), (2.0, 2.1, 1.9, 2.05, 1.95), (0.5, 3.0, 0.6, 2.9, 1.5)
    old = load_matrix(
        write_run(tmp_path, "old", [Spec(A, T2I, SDXL, ok_s=fast), Spec(A, LLM, LLAMA, ok_s=fast)])
    )
    new = load_matrix(
        write_run(tmp_path, "new", [Spec(A, T2I, SDXL, ok_s=slow), Spec(A, LLM, LLAMA, ok_s=noisy)])
    )
    diff = compare_matrix(old, new)
    by_pipeline = {r.pipeline: r for r in diff.rtt}
    assert by_pipeline[T2I].verdict == "slower" and by_pipeline[T2I].method == "Mann-Whitney U"
    assert by_pipeline[T2I].p_value == pytest.approx(2 / 252)
    # the noisy cell's mean moved by 69% but the ranks do not tell it from noise
    assert by_pipeline[LLM].change > 0.25 and by_pipeline[LLM].verdict == "same"


def test_mann_whitney_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b = [1.0, 2.5, 3.1, 4.7, 5.2, 6.0], [2.0, 3.9, 7.1, 8.4, 9.3]
    assert mann_whitney(a, b) == pytest.approx(stats.mannwhitneyu(a, b, method="exact").pvalue)
    tied_a, tied_b = [1.0, 1.0, 2.0, 3.0, 3.0, 4.0], [3.0, 4.0, 4.0, 5.0, 6.0, 6.0]
    expected = stats.mannwhitneyu(tied_a, tied_b, method="asymptotic", use_continuity=True).pvalue
    assert mann_whitney(tied_a, tied_b) == pytest.approx(expected)


def test_a_malformed_stats_csv_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_run(tmp_path, "run", baseline_specs())
    stats = run_dir / ORCH_STATS_CSV
    lines = stats.read_text(encoding="utf-8").splitlines()
    stats.write_text("\n".join([*lines, "FRA,0xdead,truncated"]) + "\n", encoding="utf-8")
    with pytest.raises(MatrixFileError) as caught:
        load_matrix(run_dir)
    message = str(caught.value)
    assert message.startswith(str(stats)) and "\n" not in message and "line 7" in message
    assert main(["report", str(run_dir), "--no-png"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"inferswarm: {message}"]
    assert not (run_dir / "report.html").exists()
    stats.write_text("region,orchestrator\nFRA,0x1\n", encoding="utf-8")
    with pytest.raises(MatrixFileError, match="missing columns service_uri"):
        load_matrix(run_dir)
    (run_dir / ORCH_DISCOVERY).unlink()
    with pytest.raises(MatrixFileError, match=f"{ORCH_DISCOVERY}: missing"):
        load_matrix(run_dir)


def test_inferswarm_report_writes_the_matrix_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_run(tmp_path, "old", [*baseline_specs(), Spec(C, LLM, LLAMA, ok_s=(0.1,))], start=1)
    run_dir = write_run(tmp_path, "new", baseline_specs(), start=2)
    assert main(["report", str(run_dir), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert f"down (not answering): {B}" in out and "1 stat(s) NOT posted" in out
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    summary = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert html.count("<script") >= 2 and "Success rate per cell" in html
    assert "<p class='alert'>1 of 5 stat(s) NOT posted" in html
    assert f"<p class='alert'>Down (not answering): {B}.</p>" in html
    assert "1 of 5 stat(s) NOT posted" in summary and f"Previous run: `{old}`" in summary
    assert "a threshold, not a significance test" in summary
    assert f"Orchestrators that stopped answering (a success before, none now): {C}" in summary
    document = json.loads((run_dir / "matrix.json").read_text(encoding="utf-8"))
    assert len(document["cells"]) == 5
    assert {o["address"]: o["status"] for o in document["orchestrators"]}[B] == "down"
    assert document["comparison"]["stopped_answering"] == [C]
    assert document["posts"] == {"posted": 4, "dry_run": 0, "failed": 1, "not_posted": 0}


def test_a_dry_run_says_loudly_that_nothing_was_posted(tmp_path: Path) -> None:
    specs = [Spec(A, T2I, SDXL, post="dry_run")]
    report = write_matrix_report(write_run(tmp_path, "run", specs, summary={"dry_run": True}))
    assert report.dry_run and report.previous is None and report.down == []
    assert "**DRY RUN: no stat was posted to the leaderboard**" in report.summary_md.read_text(
        encoding="utf-8"
    )


def test_a_failure_message_spanning_lines_reads_as_one_field(tmp_path: Path) -> None:
    body = 'HTTP 500: {"error":\n  "out of memory"}'
    run_dir = write_run(tmp_path, "run", [Spec(A, T2I, SDXL, ok_s=(1.0,), failures=(("500", body, 0.2),))])
    matrix = load_matrix(run_dir)
    assert [(e.message, e.count) for e in matrix.cells[0].errors] == [(body, 1)]
    assert matrix.cells[0].round_trips_s == (1.0,)
    assert mr.error_rows(matrix)[0].message == body


def test_without_the_jobs_csv_the_matrix_reads_and_says_so(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "run", baseline_specs())
    (run_dir / ORCH_JOBS_CSV).unlink()
    matrix = load_matrix(run_dir)
    assert len(matrix.cells) == 5 and not matrix.jobs_csv
    assert all(c.round_trips_s == () for c in matrix.cells)
    assert [n for n in matrix.notes if n.startswith(f"{ORCH_JOBS_CSV}: missing")]
