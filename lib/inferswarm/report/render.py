"""Write a report: results.json, summary.md, report.html (self-contained, works offline) and a PNG per
figure when a Chrome/Chromium is there for kaleido to drive."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from inferswarm.checks.model import preflight_markdown
from inferswarm.load.search import bracket_text
from inferswarm.report.analysis import analyse
from inferswarm.report.figures import all_figures
from inferswarm.report.load import RunData, load_run
from inferswarm.report.requests import open_loop
from inferswarm.report.results import (
    CapabilitySummary,
    Distribution,
    EdgeFigures,
    EdgeSection,
    GoodputSection,
    PipelineFigures,
    Results,
    SearchSection,
    StepRow,
    TensorSection,
    format_level,
)
from inferswarm.report.workers import worker_lines


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _capability_rows(summary: Mapping[str, CapabilitySummary]) -> list[list[str]]:
    rows = []
    for name in [*sorted(k for k in summary if k != "total"), "total"]:
        if name in summary:
            s = summary[name]
            rows.append(
                [name, _fmt(s.requests), _fmt(s.failures), _pct(s.failure_ratio), _fmt(s.rps, 2)]
                + [_fmt(value, 0) for value in (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms)]
                + [_fmt(s.all_p95_ms, 0)]
            )
    return rows


LATENCY_NOTE = (
    "Latency columns: successful requests only (failures, such as fast 503s under overload, would "
    "make latency look better); `p95 ms, all requests` includes failures."
)


def _latency_of_all(names: list[str]) -> str:
    return (
        f"Latency of all requests for {', '.join(names)}: the run did not record successful requests' "
        "latency alone, and some requests failed."
    )


def _step_rows(steps: list[StepRow]) -> list[list[str]]:
    rows = []
    for s in steps:
        approx = "" if s.exact else " ~"  # windowed history percentiles, not exact per step
        rows.append(
            [
                s.name,
                format_level(s.level),
                _fmt(s.rps, 2),
                _fmt(s.success_rps, 2),
                _pct(s.failure_ratio),
            ]
            + [_fmt(value, 0) + approx for value in (s.p50_ms, s.p95_ms, s.p99_ms, s.all_p95_ms)]
            + [_fmt(s.gpu_util_mean_pct), "" if s.judged else f"not judged: {s.not_judged_why}"]
        )
    return rows


LATENCY_SOURCES = {
    "request_log": "Latency is exact: computed from every request in the request log.",
    "locust_histograms": (
        "Latency from Locust's statistics (response times rounded to about 2 significant digits): the "
        "run wrote no request log."
    ),
}
INTENDED_NOTE = (
    "From the intended start = how late the request was sent after its scheduled time + its response "
    "time: what a client on the schedule waited. Service = the response time alone. Late: sent more than "
    "{late} ms after its intended start."
)
INTENDED_CELLS = ["service p50 ms", "service p99 ms", "from intended p50 ms", "from intended p95 ms"]
INTENDED_CELLS += ["from intended p99 ms", "from intended max ms", "late", "lag p50 ms", "lag p99 ms"]
INTENDED_CELLS += ["lag max ms"]


def _intended_cells(s: CapabilitySummary | StepRow) -> list[str]:
    service = (s.p50_ms, s.p99_ms)
    intended = (s.from_intended_p50_ms, s.from_intended_p95_ms, s.from_intended_p99_ms)
    whole = (*service, *intended, s.from_intended_max_ms)
    lag = (s.schedule_lag_p50_ms, s.schedule_lag_p99_ms, s.schedule_lag_max_ms)
    return [*(_fmt(v, 0) for v in whole), _fmt(s.late_requests), *(_fmt(v, 1) for v in lag)]


LATE_WARNING_SHARE = 0.01
"""Above this share of late requests the report warns that the schedule was not kept."""


def intended_markdown(results: Results) -> list[str]:
    """Service latency and latency from the intended start side by side: open-loop runs only (for
    closed-loop users the two are the same numbers)."""
    summary = results.summary
    if not open_loop([*summary.values(), *results.steps]):
        return []
    lines = ["", "## Latency from the intended start", ""]
    names = [*sorted(k for k in summary if k != "total"), "total"]
    rows = [[name, *_intended_cells(summary[name])] for name in names if name in summary]
    lines += _table(["capability", *INTENDED_CELLS], rows)
    if results.steps:
        lines.append("")
        unit = results.step_axis.label
        rows = [[s.name, format_level(s.level), *_intended_cells(s)] for s in results.steps]
        lines += _table(["step", unit, *INTENDED_CELLS], rows)
    late = results.report.late_ms
    lines += ["", INTENDED_NOTE.format(late=_fmt(late, 0) if late is not None else "?")]
    total = summary.get("total")
    if total is not None and total.late_requests and total.requests:
        share = total.late_requests / total.requests
        if share > LATE_WARNING_SHARE:
            lines += [
                "",
                f"**Warning:** {total.late_requests} requests ({_pct(share)}) went out late: the generator "
                "did not keep the schedule (every user of the ceiling busy, or its CPU saturated). Their "
                "latency from the intended start holds that wait; the offered rate was not what the "
                "service saw at that moment. Raise `max_concurrency`, or add workers if the generator's "
                "CPU is the limit.",
            ]
    return lines


def _slo_text(goodput: GoodputSection) -> str:
    parts = []
    if goodput.latency_ms is not None:
        parts.append(f"latency from the intended start <= {_fmt(goodput.latency_ms, 0)} ms")
    if goodput.ttft_ms is not None:
        parts.append(f"TTFT <= {_fmt(goodput.ttft_ms, 0)} ms")
    if goodput.itl_ms is not None:
        parts.append(f"ITL <= {_fmt(goodput.itl_ms, 0)} ms")
    return ", ".join(parts)


def _goodput_cells(s: CapabilitySummary | StepRow) -> list[str]:
    return [_fmt(s.goodput_rps, 2), _pct(s.goodput_ratio), _fmt(s.goodput_requests)]


def goodput_markdown(results: Results) -> list[str]:
    """Goodput per capability and per step, or why it was not measured (only when configured)."""
    goodput = results.goodput
    if goodput is None:
        return []
    lines = ["", "## Goodput", ""]
    if not goodput.measured:
        return [*lines, f"Not measured: {goodput.why}."]
    lines.append(f"Requests that succeeded with {_slo_text(goodput)} (TTFT and ITL: streamed requests).")
    lines.append("")
    header = ["capability", "goodput req/s", "goodput ratio", "goodput requests", "successful/s"]
    summary = results.summary
    names = [*sorted(k for k in summary if k != "total"), "total"]
    rows = [[n, *_goodput_cells(summary[n]), _fmt(summary[n].success_rps, 2)] for n in names if n in summary]
    lines += _table(header, rows)
    if results.steps:
        lines.append("")
        header = ["step", results.step_axis.label, "goodput req/s", "goodput ratio", "successful/s"]
        rows = [
            [s.name, format_level(s.level), *_goodput_cells(s)[:2], _fmt(s.success_rps, 2)]
            for s in results.steps
        ]
        lines += _table(header, rows)
    return lines


def _pipeline_lines(pipelines: Mapping[str, PipelineFigures]) -> list[str]:
    lines = []
    for name, p in pipelines.items():
        parts = [f"**{name}**" + (f" ({p.pipeline})" if p.pipeline else "")]
        if p.outputs_per_s is not None:
            unit = p.output_unit or "image"
            parts.append(f"{_fmt(p.outputs_per_s, 2)} {unit}s/s, {_fmt(p.s_per_output, 3)} s per {unit}")
        if p.real_time_factor is not None:
            parts.append(f"real-time factor {_fmt(p.real_time_factor, 1)}x ({_fmt(p.audio_s, 2)} s audio)")
        if p.ttft_ms is not None:
            parts.append(f"TTFT p50/p95 {_fmt(p.ttft_ms.p50)}/{_fmt(p.ttft_ms.p95)} ms")
        if p.itl_ms is not None:
            parts.append(f"ITL avg {_fmt(p.itl_ms.avg, 1)} ms")
        if p.tokens_per_s is not None:
            rate = _fmt(p.tokens_per_s.avg, 1)
            parts.append(f"{rate} tokens/s per request (counted from {p.token_source})")
        if len(parts) > 1:
            lines.append(": ".join([parts[0], "; ".join(parts[1:])]))
    return lines


def _p(distribution: Distribution | None, key: str) -> str:
    return _fmt(getattr(distribution, key) if distribution is not None else None, 0)


def _edge_cells(f: EdgeFigures) -> list[str]:
    return [
        _fmt(f.answers),
        _fmt(f.edge),
        _fmt(f.cloud),
        _pct(f.edge_share),
        _p(f.edge_ms, "p50"),
        _p(f.edge_ms, "p95"),
        _p(f.cloud_ms, "p50"),
        _p(f.cloud_ms, "p95"),
        _p(f.confidence_pct, "p50"),
        _p(f.confidence_pct, "avg"),
    ]


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


EDGE_HEADER = ["answers", "edge", "cloud", "edge share", "edge p50 ms", "edge p95 ms", "cloud p50 ms"]
EDGE_HEADER += ["cloud p95 ms", "confidence p50 %", "confidence avg %"]


def edge_markdown(edge: EdgeSection, unit: str) -> list[str]:
    """The edge section: FPS, edge vs cloud per capability and per step, readiness."""
    lines = ["", "## Edge vs cloud", ""]
    if edge.fps is not None:
        lines += [f"Frames per second end to end (one client, back to back): **{_fmt(edge.fps, 2)}**.", ""]
    if edge.capabilities:
        header = ["capability", *EDGE_HEADER, "not ready (503)", "answers by source"]
        rows = [
            [name, *_edge_cells(f), _fmt(f.not_ready), _counts(f.by_source)]
            for name, f in edge.capabilities.items()
        ]
        lines += _table(header, rows)
        lines += [
            "",
            "Edge and cloud latency are apart on purpose: an endpoint that escalates under load looks fast "
            "on average and slow where it matters.",
        ]
    if edge.steps:
        lines += ["", "## Edge vs cloud per step", ""]
        header = ["step", unit, "capability", *EDGE_HEADER]
        rows = [
            [step.name, format_level(step.level), name, *_edge_cells(f)]
            for step in edge.steps
            for name, f in step.capabilities.items()
        ]
        lines += _table(header, rows)
    ready = edge.readiness
    if ready is not None:
        lines += ["", "## Readiness", ""]
        if ready.outcome == "ready":
            lines.append(
                f"All {len(ready.detectors)} detectors answered from the edge in iteration "
                f"{ready.ready_iteration}: **{_fmt(ready.time_to_all_ready_s, 1)} s** after the first "
                f"successful connection (one query each every {_fmt(ready.interval_s, 3)} s)."
            )
        else:
            lines.append(
                f"**Not all detectors ready** ({ready.outcome}): {ready.why or 'no reason recorded'}; "
                f"{ready.iterations} iterations."
            )
        if ready.route_polls:
            health = (
                f"{_fmt(ready.health_ready_s, 1)} s after the first connection"
                if ready.health_ready_s is not None
                else "never"
            )
            lines.append(
                f"The endpoint's own readiness routes, polled {ready.route_polls} times: "
                f"`/health/ready` first answered 200 {health}."
            )
        lines.append("")
        header = ["detector", "first edge answer: iteration", "seconds after connection"]
        rows = [
            [name, _fmt(d.first_edge_iteration), _fmt(d.first_edge_s, 1)]
            for name, d in ready.detectors.items()
        ]
        if ready.route_polls:
            header.append("endpoint says ready (/edge-detector-readiness): s after connection")
            for row, d in zip(rows, ready.detectors.values(), strict=True):
                row.append(_fmt(d.endpoint_ready_s, 1))
        lines += _table(header, rows)
        if ready.timeline:
            lines += ["", "Answers per iteration (only where they changed):", ""]
            rows = [[str(i.iteration), _fmt(i.t_s, 1), _counts(i.answers)] for i in ready.timeline]
            lines += _table(["iteration", "s after connection", "answers"], rows)
    return lines


def capacity_text(search: SearchSection) -> str:
    """The capacity a search found, as a bracket, in words."""
    return bracket_text(search.highest_passing, search.lowest_failing, search.unit)


def search_markdown(search: SearchSection) -> list[str]:
    unfinished = "" if search.done else " The run ended before the search did."
    lines = ["", "## Capacity search", ""]
    lines.append(
        f"Capacity **{capacity_text(search)}**, within a resolution of {format_level(search.resolution)}; "
        f"trials judged on the SLO gates as each ended ({search.judged_on}).{unfinished}"
    )
    lines.append("")
    rows = [
        [
            str(index + 1),
            format_level(t.level),
            "pass" if t.passed else "fail",
            str(t.requests),
            "; ".join(t.why),
        ]
        for index, t in enumerate(search.trials)
    ]
    lines += _table(["trial", search.unit, "verdict", "requests", "why"], rows)
    return lines


def tensor_markdown(tensor: TensorSection) -> list[str]:
    """Per tensor size: transfer, latency, the server's time, the overhead, the local CPU baseline."""
    lines = ["", "## Tensor sizes: server time, network overhead, CPU baseline", ""]
    header = ["size", "dtype", "bytes/request", "ok / requests", "client p50 ms", "client p95 ms"]
    header += ["server p50 ms", "overhead p50 ms", "overhead % of compute", "up MB/s", "down MB/s"]
    header += ["CPU baseline ms", "remote wins"]
    rows = [
        [
            s.size,
            s.datatype,
            _fmt(s.bytes_sent, 0),
            f"{s.successes} / {s.requests}",
            _fmt(s.client_p50_ms, 2),
            _fmt(s.client_p95_ms, 2),
            _fmt(s.server_p50_ms, 2),
            _fmt(s.overhead_p50_ms, 2),
            _fmt(s.overhead_pct_of_compute, 0),
            _fmt(s.upload_mb_s, 2),
            _fmt(s.download_mb_s, 2),
            _fmt(s.cpu_baseline_ms, 3),
            "-" if s.remote_wins is None else ("yes" if s.remote_wins else "no"),
        ]
        for s in tensor.sizes
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "Overhead = client time - the server's own time, per successful request (median): network, "
        "(de)serialisation and queueing in front of the server. MB = 10^6 bytes, over each size's span. "
        f"CPU baseline: the same operation with numpy on {tensor.baseline_host} (median of a few runs), "
        "not on the server.",
    ]
    if tensor.break_even:
        lines += ["", f"Break-even: **{tensor.break_even}**."]
    lines += [f"- {note}" for note in tensor.notes]
    return lines


def summary_markdown(results: Results) -> str:
    meta = results.metadata
    unit = results.step_axis.label
    lines = [f"# {meta.name or 'run'}: load test summary", ""]
    span = f"{meta.started_at or '?'} to {meta.ended_at or '?'}"
    lines.append(
        f"{span} ({_fmt(meta.duration_s)} s), status **{meta.status or 'unknown'}**, mode {meta.mode or '?'}"
    )
    measurement = results.measurement
    if measurement is not None and not measurement.valid:
        lines += ["", f"**No valid measurement:** {measurement.why}."]
    lines += ["", "## Per capability", ""]
    header = ["capability", "requests", "failures", "failure ratio", "req/s", "p50 ms", "p90 ms", "p95 ms"]
    header += ["p99 ms", "max ms", "p95 ms, all requests"]
    lines += _table(header, _capability_rows(results.summary))
    lines += ["", LATENCY_NOTE + " " + LATENCY_SOURCES[results.latency_source]]
    approximate = sorted(k for k, v in results.summary.items() if v.latency_of == "all")
    if approximate:
        lines += ["", _latency_of_all(approximate)]
    total = results.summary.get("total")
    if total is not None and total.failures_by_category:
        by = total.failures_by_category
        lines += ["", "Failures by category: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))]
    if total is not None and total.status_codes:
        codes = total.status_codes
        lines += ["", "Status codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))]
    pipeline_lines = _pipeline_lines(results.pipelines)
    if pipeline_lines:
        lines += ["", "## Per pipeline", ""]
        lines += [f"- {line}" for line in pipeline_lines]
    if results.steps:
        lines += ["", "## Per step", ""]
        header = ["step", unit, "req/s", "successful/s", "failure ratio", "p50 ms", "p95 ms", "p99 ms"]
        header += ["p95 ms, all requests", "GPU util %", "note"]
        lines += _table(header, _step_rows(results.steps))
        unjudged = [s for s in results.steps if not s.judged]
        if unjudged:
            settings = results.report
            lines += [
                "",
                f"{len(unjudged)} step(s) not judged (they decide neither the saturation point nor the "
                f"highest passing step): a step must complete, and its measured window must hold at least "
                f"{settings.min_step_requests} requests and last at least "
                f"{_fmt(settings.min_step_window_s)} s.",
            ]
    lines += intended_markdown(results)
    lines += goodput_markdown(results)
    if results.edge is not None:
        lines += edge_markdown(results.edge, unit)
    if results.search is not None:
        lines += search_markdown(results.search)
    if results.tensor is not None:
        lines += tensor_markdown(results.tensor)
    sat = results.saturation
    lines += ["", "## Saturation", ""]
    if measurement is not None and not measurement.valid:
        lines.append(f"No capacity verdict: {measurement.why}.")
    elif sat is not None:
        knee = ""
        if sat.knee_level is not None:
            knee = (
                f"; the highest load it sustained was {format_level(sat.knee_level)} {unit} at "
                f"{_fmt(sat.knee_success_rps, 2)} successful req/s"
            )
        lines.append(f"Saturated at **{format_level(sat.level)} {unit}** ({sat.reason}){knee}.")
    else:
        lines.append("No saturation point within the tested load.")
    slo = results.slo
    if slo.gates:
        lines += ["", "## SLO gates", ""]
        for gate in slo.gates:
            why = f" ({gate.why})" if gate.why else ""
            mark = "PASS" if gate.passed else "FAIL"
            lines.append(f"- **{mark}** `{gate.gate}` ({gate.scope}): {_fmt(gate.value, 3)}{why}")
        best = slo.highest_passing_step
        lines.append("")
        if results.search is not None:
            lines += ["Judged on the capacity the search found (its highest passing trial).", ""]
        if measurement is not None and not measurement.valid:
            lines.append("No step judged: there is no valid measurement.")
        elif best is not None:
            level, rate = format_level(best.level), _fmt(best.success_rps, 2)
            lines.append(f"Highest step meeting every SLO: {level} {unit} ({rate} successful req/s).")
        else:
            lines.append("No step met every SLO.")
    gpu = results.gpu
    if gpu.measured:
        peak_gib = (gpu.gpu_mem_peak_bytes or 0) / 2**30
        energy = gpu.energy_per_request_j
        lines += ["", "## GPU", ""]
        lines.append(
            f"Mean utilization {_fmt(gpu.gpu_util_mean_pct)}%, peak memory "
            f"{_fmt(peak_gib, 2)} GiB ({_fmt(gpu.gpu_mem_peak_pct)}%)"
            + (f", {_fmt(energy, 3)} J per request" if energy is not None else "")
            + "."
        )
    generator = results.generator_saturation
    if generator is not None and generator.behind_schedule:
        behind = ", ".join(
            f"{node} (worst {_fmt(b.peak_lag_ms, 1)} ms)"
            for node, b in sorted(generator.behind_schedule.items())
        )
        lines += [
            "",
            f"**Warning:** load generators fell more than {_fmt(generator.lag_threshold_ms, 0)} ms behind "
            f"their send schedule ({behind}): see `schedule_lag_ms` in the telemetry.",
        ]
    if generator is not None and generator.saturated:
        nodes = ", ".join(generator.nodes)
        lines += [
            "",
            f"**Warning:** load generators above {generator.threshold_cpu_pct}% CPU ({nodes}): "
            "their numbers understate the target.",
        ]
    if results.workers is not None:
        lines += ["", "## Workers", ""] + [f"- {line}" for line in worker_lines(results.workers)]
    if results.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results.notes]
    return "\n".join(lines) + "\n"


def _markdown_tables_to_html(markdown: str) -> str:
    """The summary, as simple HTML (tables and paragraphs), for the top of report.html."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
            out.append("</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush()
        text = html.escape(line).replace("**", "")
        if line.startswith("# "):
            out.append(f"<h1>{text[2:]}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{text[3:]}</h2>")
        elif line.startswith("- "):
            out.append(f"<p>• {text[2:]}</p>")
        elif line.strip():
            out.append(f"<p>{text}</p>")
    flush()
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


def report_html(summary_md: str, figures: dict[str, go.Figure]) -> str:
    parts = []
    for index, fig in enumerate(figures.values()):
        # plotly.js is embedded once, in the first figure: the file works offline
        parts.append(fig.to_html(full_html=False, include_plotlyjs=index == 0))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>inferswarm report</title>"
        f"<style>{STYLE}</style></head><body>\n{_markdown_tables_to_html(summary_md)}\n"
        + "\n".join(f"<div class='figure'>{p}</div>" for p in parts)
        + "\n</body></html>\n"
    )


def write_pngs(figures: dict[str, go.Figure], run_dir: Path) -> tuple[list[Path], str | None]:
    """PNG per figure through kaleido; returns the files, or a one-line reason there are none."""
    if not figures:
        return [], None
    if os.environ.get("INFERSWARM_NO_PNG"):
        return [], "PNG export off (INFERSWARM_NO_PNG)"
    paths = [run_dir / f"{name}.png" for name in figures]
    try:
        figs = list(figures.values())
        heights = [int(fig.layout.height or 500) for fig in figs]
        pio.write_images(figs, paths, width=1400, height=heights, scale=1)
    except (
        Exception
    ) as exc:  # kaleido raises its own types for "no Chrome"; any failure must not lose the HTML
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [], f"no PNGs: {first[:200]} (install chromium for PNG export; report.html is complete)"
    return paths, None


def write_report(run_dir: Path, png: bool = True) -> tuple[Results, list[str]]:
    """Analyse `run_dir` and write results.json, summary.md, report.html and PNGs into it."""
    data: RunData = load_run(run_dir)
    results = analyse(data)
    figures = all_figures(data, results)
    messages: list[str] = []
    if png:
        _, notice = write_pngs(figures, run_dir)
        if notice:
            messages.append(notice)
    results = results.model_copy(update={"figures": sorted(figures)})
    text = json.dumps(results.model_dump(mode="json"), indent=2) + "\n"
    (run_dir / "results.json").write_text(text, encoding="utf-8")
    summary = summary_markdown(results) + preflight_markdown(run_dir)
    (run_dir / "summary.md").write_text(summary, encoding="utf-8")
    (run_dir / "report.html").write_text(report_html(summary, figures), encoding="utf-8")
    return results, messages
