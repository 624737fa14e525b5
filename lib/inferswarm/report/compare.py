"""`inferswarm compare RUN_A RUN_B`: B against A (the baseline), metric by metric, with regressions
flagged against tolerances, a side-by-side table and overlaid per-step plots.

Tolerances are relative changes in the bad direction (default 10 %), except `failure_ratio`, whose
tolerance is absolute (default 0.01: one more failure in a hundred requests).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from pydantic import BaseModel, ConfigDict

from inferswarm.report.analysis import analyse
from inferswarm.report.load import load_run
from inferswarm.report.results import CapabilitySummary, Number, Results, read_results
from inferswarm.slo import COMPARE_METRICS

METRICS = COMPARE_METRICS
DEFAULT_TOLERANCE = 0.10
DEFAULT_FAILURE_TOLERANCE = 0.01
# the compare metrics a capability's summary row has (the others are the run's: saturation, GPU)
_SUMMARY_METRICS = [metric for metric in METRICS if metric in CapabilitySummary.model_fields]


class CompareRow(BaseModel):
    """One metric of one scope in both runs (a row of compare.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str
    metric: str
    a: Number
    b: Number
    change: float | None
    """(b - a) / a; null when a is 0."""
    tolerance: Number
    regression: bool


def results_of(run_dir: Path) -> Results:
    """The run's results.json, or a fresh analysis when the run has not been reported yet. Raises
    ResultsFileError for a results.json of another schema version or with content this version cannot read."""
    path = run_dir / "results.json"
    if path.is_file():
        return read_results(path)
    return analyse(load_run(run_dir))


def _flat(results: Results) -> dict[str, dict[str, float | None]]:
    """scope -> metric -> value, for `total` and each capability."""
    out: dict[str, dict[str, float | None]] = {}
    for scope, entry in results.summary.items():
        out[scope] = {metric: getattr(entry, metric) for metric in _SUMMARY_METRICS}
    total = out.setdefault("total", {})
    sat = results.saturation
    total["saturation_users"] = sat.users if sat is not None else None
    total["knee_success_rps"] = sat.knee_success_rps if sat is not None else None
    total["gpu_util_mean_pct"] = results.gpu.gpu_util_mean_pct
    total["energy_per_request_j"] = results.gpu.energy_per_request_j
    return out


def compare(a: Results, b: Results, tolerances: dict[str, float] | None = None) -> list[CompareRow]:
    """One row per scope and metric present in both runs."""
    tolerances = tolerances or {}
    flat_a, flat_b = _flat(a), _flat(b)
    rows = []
    for scope in sorted(set(flat_a) & set(flat_b), key=lambda s: (s != "total", s)):
        for metric, better in METRICS.items():
            old, new = flat_a[scope].get(metric), flat_b[scope].get(metric)
            if old is None or new is None or not all(map(math.isfinite, (old, new))):
                continue
            change = (new - old) / old if old else None
            if metric == "failure_ratio":
                tolerance = tolerances.get(metric, DEFAULT_FAILURE_TOLERANCE)
                worse_by = new - old
            else:
                tolerance = tolerances.get(metric, DEFAULT_TOLERANCE)
                worse_by = (change if better == "lower" else -change) if change is not None else 0.0
            rows.append(
                CompareRow(
                    scope=scope,
                    metric=metric,
                    a=old,
                    b=new,
                    change=change,
                    tolerance=tolerance,
                    regression=worse_by > tolerance,
                )
            )
    return rows


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def compare_markdown(a_dir: Path, b_dir: Path, rows: list[CompareRow]) -> str:
    lines = [f"# {b_dir.name} compared with {a_dir.name}", ""]
    regressions = [r for r in rows if r.regression]
    lines.append(f"{len(regressions)} regression(s) beyond tolerance." if regressions else "No regressions.")
    lines += ["", "| scope | metric | A | B | change | tolerance | |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        change = "-" if r.change is None else f"{100 * r.change:+.1f}%"
        flag = "**REGRESSION**" if r.regression else ""
        lines.append(
            f"| {r.scope} | {r.metric} | {_cell(r.a)} | {_cell(r.b)} | {change} | {r.tolerance:g} | {flag} |"
        )
    return "\n".join(lines) + "\n"


def overlay_figure(a: Results, b: Results, names: tuple[str, str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Successful req/s per step", "p95 per step (ms)"))
    for results, name in zip((a, b), names, strict=True):
        steps = [s for s in results.steps if s.requests]
        levels = [s.level for s in steps]
        fig.add_trace(
            go.Scatter(x=levels, y=[s.success_rps for s in steps], name=f"{name} req/s"), row=1, col=1
        )
        fig.add_trace(go.Scatter(x=levels, y=[s.p95_ms for s in steps], name=f"{name} p95"), row=1, col=2)
    # two runs of different load kinds share the plot; its axis then names both
    labels = dict.fromkeys((a.step_axis.label, b.step_axis.label))
    fig.update_xaxes(title_text=" / ".join(labels))
    fig.update_layout(title="Per step, both runs", height=450)
    return fig


def configured_tolerances(results: Results) -> dict[str, float]:
    """`report.tolerances` of the run's config (validated when the run started)."""
    report = results.inputs.config.get("report")
    tolerances = report.get("tolerances") if isinstance(report, dict) else None
    if not isinstance(tolerances, dict):
        return {}
    return {
        metric: value
        for metric, value in tolerances.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def write_compare(a_dir: Path, b_dir: Path, out: Path, tolerances: dict[str, float]) -> list[CompareRow]:
    """Tolerances: B's config `report.tolerances`, then the ones given here on top. Raises
    ResultsFileError when either run's results.json cannot be read."""
    a, b = results_of(a_dir), results_of(b_dir)
    rows = compare(a, b, {**configured_tolerances(b), **tolerances})
    out.mkdir(parents=True, exist_ok=True)
    markdown = compare_markdown(a_dir, b_dir, rows)
    (out / "compare.md").write_text(markdown, encoding="utf-8")
    document = {"a": str(a_dir), "b": str(b_dir), "rows": [row.model_dump(mode="json") for row in rows]}
    (out / "compare.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    figure = overlay_figure(a, b, (a_dir.name, b_dir.name)).to_html(full_html=False, include_plotlyjs=True)
    body = "<pre>" + html.escape(markdown) + "</pre>"
    (out / "compare.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>compare</title></head><body>{body}"
        f"{figure}</body></html>\n",
        encoding="utf-8",
    )
    return rows
