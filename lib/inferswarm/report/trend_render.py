"""trend.md, trend.json and trend.html of `inferswarm trend` (the judging is in `report.trend`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inferswarm.report.render import STYLE, _markdown_tables_to_html
from inferswarm.report.trend import (
    DEFAULT_K,
    DEFAULT_WINDOW,
    MAD_SCALE,
    METRICS,
    MIN_HISTORY,
    Cell,
    ConfigTrend,
    Flag,
    RunPoint,
    analyse,
    format_value,
)
from inferswarm.rundir import write_atomic, write_json_atomic

TREND_MD = "trend.md"
TREND_JSON = "trend.json"
TREND_HTML = "trend.html"
COLOURS = {"regression": "#d62728", "improvement": "#2ca02c", "invalid": "#7f7f7f"}


@dataclass
class TrendReport:
    """What `write_trend` judged and wrote."""

    configs: list[ConfigTrend]
    notes: list[str]
    k: float
    window: int
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    @property
    def flags(self) -> list[Flag]:
        return [flag for config in self.configs for flag in config.flags]

    @property
    def newest_regressions(self) -> list[Flag]:
        """Regressions of the newest run of a config: what fails a CI gate."""
        return [flag for config in self.configs for flag in config.newest_regressions]


def method_lines(k: float, window: int) -> list[str]:
    return [
        f"Each run is judged against the median of the last {window} earlier runs of its config "
        f"(at least {MIN_HISTORY}; fewer: not enough history). Noise: {MAD_SCALE} x MAD of those runs, "
        "never below the metric's floor (2 % of the median; 1 ms of latency, 0.2 point of failure ratio, "
        "1 point of GPU utilization, a quarter of a failed check). A run is flagged when it is more than "
        f"{k:g} x noise from the median: a regression in the bad direction, an improvement in the good one. "
        "A capacity moving by one step is never flagged.",
        "A regression is left out of the baselines after it (a slower release does not become the new "
        "normal); an improvement joins them. A run without a valid measurement (target unreachable) is "
        "shown, flagged invalid, and never part of a baseline.",
    ]


def _header(metric: str, point: RunPoint | None) -> str:
    """The metric's name; the capacity's with its unit (users or requests/s offered, per config)."""
    if metric != "capacity":
        return metric
    unit = point.unit(metric) if point is not None else ""
    return f"{metric} ({unit})" if unit else metric


def cell_text(cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return "-"
    text = format_value(cell.metric, cell.value)
    if cell.flagged:
        arrow = "▲" if (cell.deviation or 0.0) > 0 else "▼"
        word = "REGRESSION" if cell.status == "regression" else "improvement"
        return f"{text} {arrow} {word}"
    return text


def _row_note(config: ConfigTrend, index: int) -> str:
    point = config.points[index]
    if not point.valid:
        return f"invalid: {point.why_invalid or 'target unreachable'}"
    cells = config.cells[index].values()
    if cells and all(c.status in ("not enough history", "missing") for c in cells):
        return "not enough history"
    return ""


def _started(point: RunPoint) -> str:
    return point.started[:19].replace("T", " ") if point.started else "-"


def trend_markdown(report: TrendReport) -> str:
    runs = sum(len(c.points) for c in report.configs)
    lines = [f"# Trend: {runs} run(s) of {len(report.configs)} config(s)", ""]
    flags = report.flags
    regressions = [f for f in flags if f.kind == "regression"]
    newest = report.newest_regressions
    headline = (
        f"{len(regressions)} regression(s), {sum(f.kind == 'improvement' for f in flags)} improvement(s)"
    )
    headline += f", {sum(f.kind == 'invalid' for f in flags)} invalid run(s)."
    if newest:
        headline += f" **The newest run regressed** ({len(newest)} figure(s))."
    lines += [headline, ""]
    for line in method_lines(report.k, report.window):
        lines += [line, ""]
    for config in report.configs:
        first = config.points[0] if config.points else None
        lines += [f"## {config.name}", ""]
        if len(config.points) <= MIN_HISTORY:
            lines += [
                f"{len(config.points)} run(s): not enough history to judge any "
                f"(a run needs {MIN_HISTORY} earlier runs).",
                "",
            ]
        header = ["run", "started", "status", *(_header(m, first) for m in config.metrics), "note"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for index, point in enumerate(config.points):
            cells = [cell_text(config.cells[index].get(m)) for m in config.metrics]
            row = [point.run_dir.name, _started(point), point.status or "-", *cells, _row_note(config, index)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        lines.append("")
        if config.flags:
            lines += ["### Flagged runs", ""] + [f"- {flag.text}" for flag in config.flags] + [""]
        else:
            lines += ["No run flagged.", ""]
    if report.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    return "\n".join(lines)


def trend_document(report: TrendReport) -> dict[str, Any]:
    return {
        "k": report.k,
        "window": report.window,
        "min_history": MIN_HISTORY,
        "mad_scale": MAD_SCALE,
        "metrics": {
            m.name: {
                "better": m.better,
                "unit": m.unit,
                "relative_floor": m.relative_floor,
                "absolute_floor": m.absolute_floor,
                "stepped": m.stepped,
                "what": m.what,
            }
            for m in METRICS.values()
        },
        "regressions": sum(f.kind == "regression" for f in report.flags),
        "newest_regressions": len(report.newest_regressions),
        "notes": report.notes,
        "configs": [
            {
                "name": config.name,
                "metrics": config.metrics,
                "runs": [
                    {**point.to_json(), "cells": {m: c.to_json() for m, c in config.cells[i].items()}}
                    for i, point in enumerate(config.points)
                ],
                "flags": [flag.to_json() for flag in config.flags],
            }
            for config in report.configs
        ],
        "flags": [flag.to_json() for flag in report.flags],
    }


def _x(points: Sequence[RunPoint]) -> list[str]:
    if all(p.started for p in points):
        return [str(p.started) for p in points]
    return [p.run_dir.name for p in points]


def config_figure(config: ConfigTrend) -> go.Figure:
    """One small chart per metric over time: values, the baseline median and its ± threshold band, flagged
    runs marked."""
    metrics = config.metrics or ["throughput_rps"]
    cols = 2
    rows = max(1, math.ceil(len(metrics) / cols))
    first = config.points[0] if config.points else None
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_header(m, first) for m in metrics])
    x = _x(config.points)
    in_legend: set[str] = set()
    for n, metric in enumerate(metrics):
        row, col = n // cols + 1, n % cols + 1
        cells = [config.cells[i].get(metric) for i in range(len(config.points))]
        baselines = [c.baseline if c is not None else None for c in cells]
        lower = [b.median - b.threshold if b is not None else None for b in baselines]
        upper = [b.median + b.threshold if b is not None else None for b in baselines]
        legend = n == 0
        fig.add_trace(
            go.Scatter(
                x=x,
                y=lower,
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
                legendgroup="band",
            ),
            row=row,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=upper,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(31,119,180,0.15)",
                name="baseline ± k x noise",
                legendgroup="band",
                showlegend=legend,
                hoverinfo="skip",
            ),
            row=row,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[b.median if b is not None else None for b in baselines],
                mode="lines",
                line={"dash": "dot", "color": "#1f77b4"},
                name="baseline median",
                legendgroup="median",
                showlegend=legend,
            ),
            row=row,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                # an invalid run is a gap in the line (its marker is drawn below)
                y=[c.value if c is not None and c.status != "invalid" else None for c in cells],
                mode="lines+markers",
                line={"color": "#333"},
                name="value",
                legendgroup="value",
                showlegend=legend,
                text=[p.run_dir.name for p in config.points],
            ),
            row=row,
            col=col,
        )
        for status, symbol in (("regression", "x"), ("improvement", "star"), ("invalid", "circle-open")):
            marked = [(i, c.value) for i, c in enumerate(cells) if c is not None and c.status == status]
            if not marked:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[x[i] for i, _ in marked],
                    y=[value for _, value in marked],
                    mode="markers",
                    marker={"symbol": symbol, "size": 13, "color": COLOURS[status]},
                    name=status,
                    legendgroup=status,
                    showlegend=status not in in_legend,
                    text=[config.points[i].run_dir.name for i, _ in marked],
                ),
                row=row,
                col=col,
            )
            in_legend.add(status)
    fig.update_layout(title=f"{config.name}: key figures over time", height=260 * rows + 120)
    return fig


def trend_html(report: TrendReport, markdown: str) -> str:
    parts = []
    for index, config in enumerate(report.configs):
        fig = config_figure(config)
        # plotly.js is embedded once, in the first figure: the file works offline
        parts.append(fig.to_html(full_html=False, include_plotlyjs=index == 0))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>inferswarm trend</title>"
        f"<style>{STYLE}</style></head><body>\n{_markdown_tables_to_html(markdown)}\n"
        + "\n".join(f"<div class='figure'>{p}</div>" for p in parts)
        + "\n</body></html>\n"
    )


def write_trend(
    points: Sequence[RunPoint],
    out_dir: Path,
    k: float = DEFAULT_K,
    window: int = DEFAULT_WINDOW,
    metrics: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> TrendReport:
    """Judge `points` (as `collect` returns them) and write trend.md, trend.json and trend.html into
    `out_dir`. Raises ValueError for a bad k, window or metric name."""
    report = TrendReport(analyse(points, k, window, metrics), list(notes), k, window, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = trend_markdown(report)
    write_atomic(out_dir / TREND_MD, markdown)
    write_json_atomic(out_dir / TREND_JSON, trend_document(report))
    write_atomic(out_dir / TREND_HTML, trend_html(report, markdown))
    report.files = [out_dir / TREND_MD, out_dir / TREND_JSON, out_dir / TREND_HTML]
    return report


def console_lines(report: TrendReport) -> list[str]:
    """A short summary per config, then its flagged runs."""
    lines = []
    for config in report.configs:
        points = config.points
        span = f"{_started(points[0])} to {_started(points[-1])}" if points else "-"
        regressions = sum(f.kind == "regression" for f in config.flags)
        improvements = sum(f.kind == "improvement" for f in config.flags)
        invalid = sum(f.kind == "invalid" for f in config.flags)
        line = f"{config.name}: {len(points)} run(s), {span}: {regressions} regression(s), "
        line += f"{improvements} improvement(s), {invalid} invalid"
        if config.newest_regressions:
            line += f"; NEWEST RUN REGRESSED ({points[-1].run_dir.name})"
        lines.append(line)
        if len(points) <= MIN_HISTORY:
            lines.append(f"  not enough history: a run needs {MIN_HISTORY} earlier runs to be judged")
        lines += [f"  {flag.text}" for flag in config.flags]
    return lines
