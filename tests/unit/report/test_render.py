"""`inferswarm report` end to end on synthetic runs: files, figures in the HTML, PNGs when Chromium is
there, summary.md, exit codes, and that the report process never imports Locust."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest

from inferswarm.cli import main
from inferswarm.load import StepAxis
from inferswarm.report.analysis import analyse
from inferswarm.report.compare import overlay_figure
from inferswarm.report.figures import all_figures, per_step
from inferswarm.report.load import load_run
from inferswarm.report.render import summary_markdown
from tests.conftest import REPO
from tests.unit.report.synthetic import RAMP, write_run

FIGURES = ["latency_over_time", "per_capability", "per_step", "throughput_over_time"]


def plotly_divs(html: str) -> list[str]:
    return re.findall(r'Plotly\.newPlot\(\s*"([^"]+)"', html)


def test_report_files_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", RAMP, slo=["p95_ms < 1000"])
    assert main(["report", str(run), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert "report: saturation at 6 users" in out and "report: SLO PASS p95_ms < 1000 (total: 300)" in out
    results = json.loads((run / "results.json").read_text())
    assert results["figures"] == FIGURES
    html = (run / "report.html").read_text()
    assert len(plotly_divs(html)) == 4
    # plotly.js embedded once, nothing loaded from elsewhere: the file works offline
    assert html.count("plotly.js v") == 1 and not re.search(r"<script[^>]+src=", html)
    for title in (
        "Throughput and utilization over time",
        "Latency over time",
        "Per step (latency: successful requests)",
        "Per capability",
        "GPU utilization (%)",
    ):
        assert title in html
    summary = (run / "summary.md").read_text()
    assert "| step 3 | 6 | 21.00 | 21.00 | 0.0% | 400 | 1,800 | 1,800 | 1,800 | 90.0 |  |" in summary
    assert "Saturated at **6 users**" in summary and "4 users at 20.00 successful req/s" in summary
    assert "- **PASS** `p95_ms < 1000` (total): 300.000" in summary
    assert "<table>" in html and "Saturated at 6 users" in html


def test_figures_put_steps_on_the_runs_axis(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", RAMP))
    results = analyse(data, axis=StepAxis(column="users", label="clients"))
    fig = per_step(results)
    assert fig is not None
    assert fig.layout.xaxis3.title.text == "clients"
    assert [a.text for a in fig.layout.annotations if a.text.startswith("saturation")] == [
        "saturation at 6 clients"
    ]
    assert list(fig.data[0].x) == [2, 4, 6, 8]
    users = analyse(load_run(tmp_path / "run"))
    assert overlay_figure(users, results, ("a", "b")).layout.xaxis.title.text == "users / clients"
    assert overlay_figure(users, users, ("a", "b")).layout.xaxis.title.text == "users"


def test_failed_gate_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", RAMP, slo=["p95_ms < 1000", "cap: failure_ratio < 0.01"])
    assert main(["report", str(run), "--no-png"]) == 3
    assert "report: SLO FAIL cap: failure_ratio < 0.01 (cap: 0.1235)" in capsys.readouterr().out


def test_not_a_run_dir_exits_2(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2


def report_process(run: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The report in its own process, as `inferswarm run` starts it. (Never in this test process:
    kaleido's pipe-reading threads block a gevent-patched interpreter, which is why the report is
    always a process of its own.)"""
    return subprocess.run(
        [sys.executable, "-m", "inferswarm.cli", "report", str(run)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="PNG export needs Chromium (.ci/run installs it)"
)
def test_pngs_with_chromium(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    proc = report_process(run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no PNGs" not in proc.stdout
    for name in FIGURES:
        png = (run / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_without_chromium_one_notice_and_html_complete(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    no_browser = {"PATH": "/nonexistent", "BROWSER_PATH": "/nonexistent/chrome", "HOME": str(tmp_path)}
    proc = report_process(run, no_browser)
    assert proc.returncode == 0, proc.stderr[-2000:]
    notices = [line for line in proc.stdout.splitlines() if "no PNGs" in line]
    assert len(notices) == 1, proc.stdout
    assert not list(run.glob("*.png"))
    assert len(plotly_divs((run / "report.html").read_text())) == 4


def test_report_never_imports_locust(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP)
    code = (
        "import sys; from inferswarm.cli import main; "
        f"rc = main(['report', {str(run)!r}, '--no-png']); "
        "assert 'locust' not in sys.modules and 'gevent' not in sys.modules, 'locust imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _colours(fig: go.Figure) -> dict[str, str]:
    """Each named series' colour (a line's, or a bar's)."""
    out = {}
    for trace in fig.data:
        colour = trace.line.color if isinstance(trace, go.Scatter) else trace.marker.color
        if trace.name and colour:
            out[trace.name] = colour
    return out


def test_a_series_has_one_colour_in_every_figure(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", RAMP))
    figures = all_figures(data, analyse(data))
    seen: dict[str, set[str]] = {}
    for fig in figures.values():
        for name, colour in _colours(fig).items():
            seen.setdefault(name, set()).add(colour)
    assert all(len(colours) == 1 for colours in seen.values()), seen
    # p95 over time, per step and per capability; users over time in both figures
    for name, figs in {"p95 (all requests)": 3, "p95": 2, "users": 2, "requests/s": 3}.items():
        assert sum(name in _colours(fig) for fig in figures.values()) == figs, name
    # an all-requests series is its successful requests' colour, dotted
    assert seen["p95 (all requests)"] == seen["p95"]
    # different series, different colours (within a figure)
    for fig in figures.values():
        colours = list(_colours(fig).items())
        distinct = {c for n, c in colours if not n.endswith(" (all requests)")}
        assert len(distinct) == len([n for n, _ in colours if not n.endswith(" (all requests)")])


def test_user_axes_have_integer_ticks(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", RAMP))
    results = analyse(data)
    figures = all_figures(data, results)
    step_axis = figures["per_step"].layout.xaxis3
    assert step_axis.tickformat == "d" and float(step_axis.dtick).is_integer()
    for name in ("throughput_over_time", "latency_over_time"):
        users = figures[name].layout.yaxis2  # the first panel's secondary axis: users
        assert users.title.text == "users"
        assert users.tickformat == "d" and float(users.dtick).is_integer() and users.dtick >= 1


def test_gpu_panels_collapse_to_one_line_without_gpu_samples(tmp_path: Path) -> None:
    with_gpu = load_run(write_run(tmp_path / "gpu", RAMP))
    fig = all_figures(with_gpu, analyse(with_gpu))["throughput_over_time"]
    titles = [a.text for a in fig.layout.annotations]
    assert "GPU utilization (%)" in titles and "GPU memory used (GiB)" in titles
    none = load_run(write_run(tmp_path / "none", RAMP, telemetry=False))
    fig = all_figures(none, analyse(none))["throughput_over_time"]
    titles = [a.text for a in fig.layout.annotations]
    assert not any(title.startswith("GPU") for title in titles)
    assert fig.layout.title.text.endswith("<sup>GPU: no GPU samples in this run</sup>")
    # the host panel says it has no data
    assert "no host telemetry in this run" in titles


def test_panels_without_data_say_so(tmp_path: Path) -> None:
    data = load_run(write_run(tmp_path / "run", RAMP[:2]))  # nothing failed
    fig = all_figures(data, analyse(data))["per_capability"]
    assert "no failures" in [a.text for a in fig.layout.annotations]


def test_no_empty_headings_and_no_notes_for_files_empty_because_nothing_failed(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", RAMP[:2])
    record = json.loads((run / "run.json").read_text())
    record["capabilities_info"] = {"cap": {"kind": "json"}}  # a pipeline with nothing to say
    (run / "run.json").write_text(json.dumps(record))
    results = analyse(load_run(run))
    assert "cap" in results.pipelines
    summary = summary_markdown(results)
    assert "## Per pipeline" not in summary
    assert not any("locust_failures.csv" in note for note in results.notes), results.notes
