"""The orchestrator-matrix report's tables, heat maps and documents (summary.md, report.html, matrix.json)
from a `Matrix`; `orchestrators.write_matrix_report` puts them in the run directory.

Numbers say what they are of: a round trip is the mean of a cell's successful jobs, marked "of failures"
when none succeeded (then it says how fast the job failed, so it is kept off the heat map's colour
scale) and "n=1" when a single job stands behind it.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from inferswarm.report.orchestrators import (
    MIN_TEST_JOBS,
    Cell,
    Matrix,
    MatrixComparison,
    Status,
)
from inferswarm.report.render import STYLE, _markdown_tables_to_html, _table
from inferswarm.report.significance import ALPHA

COLD = "❄"
DOWN = "<b>DOWN</b>"  # a plain word: emoji such as ⛔ are missing from common fonts
LEGEND = (
    f"{COLD} = cold model (not warm at discovery); DOWN = every job failed without reaching the "
    "orchestrator (the gateway had no orchestrator to send it to, or no connection/timeout); grey = no data"
)
POST_STATUSES = ("posted", "dry_run", "failed", "not_posted")


@dataclass(frozen=True)
class OrchestratorRow:
    address: str
    service_uri: str
    status: Status
    cells: int
    jobs: int
    successes: int
    success_rate: float | None
    rtt_mean_s: float | None
    """Mean round trip of its successful jobs (None without one)."""
    rtt_max_s: float | None
    """The slowest cell's mean round trip (of successes)."""


def orchestrator_rows(matrix: Matrix) -> list[OrchestratorRow]:
    rows = []
    for orch in matrix.orchestrators:
        cells = matrix.cells_of(orch)
        jobs, ok = sum(c.jobs for c in cells), sum(c.successes for c in cells)
        timed = [c for c in cells if c.rtt_of == "successes" and c.rtt_s is not None and c.successes]
        weight = sum(c.successes for c in timed)
        mean = sum((c.rtt_s or 0) * c.successes for c in timed) / weight if weight else None
        top = max((c.rtt_s for c in timed if c.rtt_s is not None), default=None)
        uri = next((c.service_uri for c in cells if c.service_uri), "")
        rate = ok / jobs if jobs else None
        rows.append(OrchestratorRow(orch, uri, matrix.status_of(orch), len(cells), jobs, ok, rate, mean, top))
    return rows


@dataclass(frozen=True)
class PipelineRow:
    pipeline: str
    models: int
    orchestrators: int
    jobs: int
    successes: int
    success_rate: float | None
    rtt_p50_s: float | None
    """Median over orchestrators of each one's mean successful round trip in this pipeline."""
    rtt_max_s: float | None
    timed_orchestrators: int


def pipeline_rows(matrix: Matrix) -> list[PipelineRow]:
    rows = []
    for pipeline in sorted({c.pipeline for c in matrix.cells}):
        cells = [c for c in matrix.cells if c.pipeline == pipeline]
        per_orch: dict[str, list[Cell]] = {}
        for c in cells:
            if c.rtt_of == "successes" and c.rtt_s is not None and c.successes:
                per_orch.setdefault(c.orchestrator, []).append(c)
        means = [
            sum((c.rtt_s or 0) * c.successes for c in cs) / sum(c.successes for c in cs)
            for cs in per_orch.values()
        ]
        jobs, ok = sum(c.jobs for c in cells), sum(c.successes for c in cells)
        rows.append(
            PipelineRow(
                pipeline,
                len({c.model for c in cells}),
                len({c.orchestrator for c in cells}),
                jobs,
                ok,
                ok / jobs if jobs else None,
                float(np.median(means)) if means else None,
                max(means, default=None),
                len(means),
            )
        )
    return rows


@dataclass(frozen=True)
class ErrorRow:
    error_code: str
    message: str
    count: int
    orchestrators: list[str]


def error_rows(matrix: Matrix) -> list[ErrorRow]:
    """Failed jobs by (error code, message), most frequent first."""
    counts: Counter[tuple[str, str]] = Counter()
    who: dict[tuple[str, str], set[str]] = {}
    for cell in matrix.cells:
        for e in cell.errors:
            counts[(e.error_code, e.message)] += e.count
            who.setdefault((e.error_code, e.message), set()).add(cell.orchestrator)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [ErrorRow(code, message, n, sorted(who[(code, message)])) for (code, message), n in ranked]


def post_counts(matrix: Matrix) -> dict[str, int]:
    """posted / dry_run / failed / not_posted -> cells (every key present)."""
    counts = Counter(c.post_status or "not_posted" for c in matrix.cells)
    return {status: counts.get(status, 0) for status in ("posted", "dry_run", "failed", "not_posted")} | {
        k: v for k, v in counts.items() if k not in ("posted", "dry_run", "failed", "not_posted")
    }


# --- heat maps -----------------------------------------------------------------------------------------


def short(address: str) -> str:
    return address if len(address) <= 14 else f"{address[:6]}…{address[-4:]}"


def rtt_text(seconds: float | None, n: int, of: str) -> str:
    """A mean round trip with what it is of: `1.234 s`, `1.234 s (n=1)`, `0.012 s of failures (n=2)`."""
    if seconds is None:
        return "-"
    text = f"{seconds:.3f} s"
    if of == "failures":
        text += " of failures"
    return text + (f" (n={n})" if n <= 1 or of == "failures" else "")


@dataclass(frozen=True)
class HeatMap:
    """Rows: orchestrators (down ones marked); columns: pipeline / model cells; None: no such cell."""

    rows: list[str]
    columns: list[str]
    z: list[list[float | None]]
    text: list[list[str]]


def _grid(matrix: Matrix) -> tuple[list[str], list[tuple[str, str]], list[str], list[str]]:
    orchs = matrix.orchestrators
    columns = sorted({(c.pipeline, c.model) for c in matrix.cells})
    labels = [short(o) for o in orchs]
    if len(set(labels)) < len(labels):  # two addresses sharing their ends: show them whole
        labels = list(orchs)
    down = {o for o in orchs if matrix.status_of(o) == "down"}
    rows = [f"{label} {DOWN}" if o in down else label for o, label in zip(orchs, labels, strict=True)]
    return orchs, columns, rows, [f"{p}<br>{m}" for p, m in columns]


def _heatmap(matrix: Matrix, value: Any, label: Any) -> HeatMap:
    orchs, columns, rows, names = _grid(matrix)
    at = {c.key: c for c in matrix.cells}
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for orch in orchs:
        cells = [at.get((orch, p, m)) for p, m in columns]
        z.append([None if c is None else value(c) for c in cells])
        text.append(["" if c is None else (f"{COLD} " if not c.warm else "") + label(c) for c in cells])
    return HeatMap(rows, names, z, text)


def success_heatmap(matrix: Matrix) -> HeatMap:
    return _heatmap(
        matrix,
        lambda c: c.success_rate,
        lambda c: "not run" if c.success_rate is None else f"{c.success_rate:.0%}<br>{c.successes}/{c.jobs}",
    )


def rtt_heatmap(matrix: Matrix) -> HeatMap:
    # a failure's round trip stays in the text, off the colour scale: it is how fast the job failed
    return _heatmap(
        matrix,
        lambda c: c.rtt_s if c.rtt_of == "successes" else None,
        lambda c: rtt_text(c.rtt_s, c.rtt_n, c.rtt_of).replace(" (", "<br>(").replace(" of", "<br>of", 1),
    )


def _figure(heat: HeatMap, title: str, colours: str, bar: str, zmax: float | None) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=heat.z,
            x=heat.columns,
            y=heat.rows,
            text=heat.text,
            texttemplate="%{text}",
            colorscale=colours,
            zmin=0,
            zmax=zmax,
            colorbar={"title": {"text": bar}},
            hoverongaps=False,
            xgap=2,
            ygap=2,
        )
    )
    fig.update_layout(
        title={"text": f"{title}<br><sup>{LEGEND}</sup>"},
        height=max(360, 160 + 40 * len(heat.rows)),
        plot_bgcolor="#ddd",
        yaxis={"autorange": "reversed", "type": "category", "showgrid": False},
        xaxis={"type": "category", "side": "bottom", "showgrid": False},
        margin={"l": 180},
    )
    return fig


def matrix_figures(matrix: Matrix) -> dict[str, go.Figure]:
    if not matrix.cells:
        return {}
    rtt = rtt_heatmap(matrix)
    top = max((v for row in rtt.z for v in row if v is not None), default=None)
    return {
        "success_rate": _figure(success_heatmap(matrix), "Success rate per cell", "RdYlGn", "success", 1.0),
        "round_trip": _figure(rtt, "Mean round trip of successful jobs (s)", "Viridis", "s", top),
    }


# --- summary.md ----------------------------------------------------------------------------------------


def _cell(text: str, width: int = 100) -> str:
    """Table-safe text: one line, no pipe (it would split the cell), at most `width` characters."""
    flat = " ".join(text.split()).replace("|", "¦")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def post_line(posts: dict[str, int], dry_run: bool) -> str:
    """One line on what the leaderboard got, loud when it did not get everything."""
    cells = sum(posts.values())
    missed = posts.get("failed", 0) + posts.get("not_posted", 0)
    if dry_run or (posts.get("dry_run", 0) and not posts.get("posted", 0)):
        return f"**DRY RUN: no stat was posted to the leaderboard** ({cells} stat(s) built)."
    if missed:
        return (
            f"**{missed} of {cells} stat(s) NOT posted to the leaderboard** "
            f"({posts.get('failed', 0)} failed, {posts.get('not_posted', 0)} not attempted)."
        )
    return f"All {posts.get('posted', 0)} stat(s) posted to the leaderboard."


def _key(key: tuple[str, str, str]) -> str:
    return f"{short(key[0])} {key[1]} / {key[2]}"


def comparison_lines(comparison: MatrixComparison) -> list[str]:
    c = comparison
    rel, floor_ms = 100 * c.rel_threshold, 1000 * c.abs_floor_s
    lines = [
        f"Previous run: `{c.previous_dir}`.",
        "",
        f"A cell is slower/faster when its mean successful round trip moved by more than {rel:g}% and "
        f"{floor_ms:g} ms: **a threshold, not a significance test** (one job or a few per cell give no "
        f"estimate of run-to-run noise). Cells with at least {MIN_TEST_JOBS} successful jobs in both runs "
        f"must also differ by the Mann-Whitney U test (two-sided p < {ALPHA}); the table says which "
        "was used.",
        "",
    ]
    groups = [
        ("Orchestrators that stopped answering (a success before, none now)", c.stopped_answering),
        ("Orchestrators that started answering", c.started_answering),
        ("New orchestrators", c.new_orchestrators),
        ("Orchestrators gone", c.gone_orchestrators),
    ]
    for title, items in groups:
        lines.append(f"- {title}: {', '.join(items) if items else 'none'}")
    cell_groups = [
        ("Cells that stopped answering", c.cells_stopped),
        ("Cells that started answering", c.cells_started),
        ("New cells", c.new_cells),
        ("Cells gone", c.gone_cells),
    ]
    for title, keys in cell_groups:
        lines.append(f"- {title}: {'; '.join(_key(k) for k in keys) if keys else 'none'}")
    moved = c.slower + c.faster
    if moved:
        header = ["orchestrator", "pipeline / model", "verdict", "before s", "now s", "change", "method"]
        rows = [
            [
                short(r.orchestrator),
                f"{r.pipeline} / {r.model}",
                r.verdict.upper(),
                _s(r.previous_s),
                _s(r.current_s),
                f"{100 * r.change:+.0f}%",
                r.method + ("" if r.p_value is None else f" (p={r.p_value:.3g})"),
            ]
            for r in moved
        ]
        lines += ["", *_table(header, rows)]
    else:
        lines += ["", f"No cell's round trip moved beyond the threshold ({len(c.rtt)} compared)."]
    return lines


def alert_lines(matrix: Matrix, orchs: list[OrchestratorRow], posts: dict[str, int]) -> list[str]:
    """What must not be missed: stats the leaderboard did not get, orchestrators that are down."""
    alerts = []
    line = post_line(posts, matrix.dry_run)
    if line.startswith("**"):
        alerts.append(line)
    down = [o.address for o in orchs if o.status == "down"]
    if down:
        alerts.append(f"**Down (not answering): {', '.join(down)}.**")
    if matrix.status != "complete":
        alerts.append(f"**The run did not complete (status {matrix.status}): the matrix may be partial.**")
    return alerts


def summary_head(matrix: Matrix, orchs: list[OrchestratorRow], posts: dict[str, int]) -> list[str]:
    jobs, ok = sum(o.jobs for o in orchs), sum(o.successes for o in orchs)
    down = sum(o.status == "down" for o in orchs)
    lines = [f"# {matrix.name or 'run'}: orchestrator matrix", ""]
    lines.append(
        f"Started {matrix.started_at or '?'}, status **{matrix.status}**, region {matrix.region or '?'}, "
        f"gateway {matrix.gateway_url or '?'}, discovery from {matrix.source}."
    )
    lines += [
        "",
        f"{len(orchs)} orchestrator(s), {len(matrix.cells)} cell(s), {jobs} job(s), {ok} successful "
        f"({_pct(ok / jobs if jobs else None)}); {down} down.",
    ]
    line = post_line(posts, matrix.dry_run)
    return lines if line.startswith("**") else [*lines, "", line]


def summary_body(
    matrix: Matrix,
    orchs: list[OrchestratorRow],
    pipes: list[PipelineRow],
    errors: list[ErrorRow],
    posts: dict[str, int],
    comparison: MatrixComparison | None,
    notes: list[str],
    load: list[dict[str, str]] | None = None,
) -> list[str]:
    lines = ["## Orchestrators", ""]
    header = ["orchestrator", "service URI", "cells", "jobs", "success rate", "mean RTT s", "max cell RTT s"]
    lines += _table(
        [*header, "status"],
        [
            [
                o.address,
                _cell(o.service_uri),
                str(o.cells),
                str(o.jobs),
                _pct(o.success_rate),
                _s(o.rtt_mean_s) + (" (n=1)" if o.successes == 1 else ""),
                _s(o.rtt_max_s),
                o.status,
            ]
            for o in orchs
        ],
    )
    lines += [
        "",
        "RTT: round trips of successful jobs (mean over the orchestrator's jobs; max over its cells' means). "
        "Status: ok = every job succeeded; failing = some failed; down = every job failed without reaching "
        "it.",
        "",
        "## Pipelines",
        "",
    ]
    header = ["pipeline", "models", "orchestrators", "jobs", "success rate", "RTT p50 s", "RTT max s"]
    header.append("orchestrators with an RTT")
    lines += _table(
        header,
        [
            [
                p.pipeline,
                str(p.models),
                str(p.orchestrators),
                str(p.jobs),
                _pct(p.success_rate),
                _s(p.rtt_p50_s),
                _s(p.rtt_max_s),
                str(p.timed_orchestrators),
            ]
            for p in pipes
        ],
    )
    lines += [
        "",
        "RTT p50/max: over orchestrators, of each one's mean successful round trip in the pipeline.",
    ]
    lines += ["", "## Errors by code", ""]
    if errors:
        rows = [
            [e.error_code, _cell(e.message), str(e.count), ", ".join(short(o) for o in e.orchestrators)]
            for e in errors
        ]
        lines += _table(["code", "message", "count", "orchestrators"], rows)
    else:
        lines.append("No job failed.")
    lines += ["", "## Discovery", ""]
    lines += [f"- {n}" for n in matrix.notices] or ["No notices."]
    for f in matrix.filtered_out:
        who = f"{f.get('orchestrator', '?')} {f.get('pipeline', '?')} / {f.get('model', '?')}"
        lines.append(f"- filtered out: {who}: {f.get('reason', '?')}")
    if load:
        lines += ["", *load_lines(load)]
    lines += ["", "## Leaderboard posts", "", post_line(posts, matrix.dry_run), ""]
    lines += _table(["outcome", "stats"], [[k, str(v)] for k, v in posts.items()])
    lines += ["", "## Compared with the previous run", ""]
    lines += (
        comparison_lines(comparison) if comparison else ["No earlier run of this config beside this one."]
    )
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return lines


def load_lines(load: list[dict[str, str]]) -> list[str]:
    """The load step's table: one `inferswarm run` per orchestrator through the gateway pinned to it."""
    rows = [
        [
            short(r["orchestrator"]),
            r["status"],
            r["users"],
            r["capabilities"],
            r["requests"] or "-",
            r["rps"] or "-",
            r["success_rps"] or "-",
            _pct(float(r["failure_ratio"])) if r["failure_ratio"] else "-",
            r["p50_ms"] or "-",
            r["p95_ms"] or "-",
            f"`{r['run_dir']}`" if r["run_dir"] else _cell(r["note"]),
        ]
        for r in load
    ]
    header = ["orchestrator", "status", "users", "cells", "requests", "req/s", "ok req/s", "failures"]
    header += ["p50 ms", "p95 ms", "run"]
    return [
        "## Load step",
        "",
        *_table(header, rows),
        "",
        "Each orchestrator's cells that answered their test job, loaded together through the gateway pinned "
        "to it (closed loop, the users for the duration); latency of successful requests. The run "
        "directory has the step's own report.",
    ]


ALERT_STYLE = ".alert { background: #fdd; border: 2px solid #c00; padding: 0.5rem 1rem; font-weight: bold; }"


def matrix_html(head_md: str, figures: dict[str, go.Figure], body_md: str, alerts: list[str]) -> str:
    """Headline, alerts (stats not posted, orchestrators down) in a red box, heat maps, tables: one file,
    plotly.js embedded once, opens offline."""
    boxed = "".join(f"<p class='alert'>{html.escape(a.replace('**', ''))}</p>" for a in alerts)
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures.values())]
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>inferswarm orchestrator matrix</title>"
        f"<style>{STYLE}{ALERT_STYLE}</style></head><body>\n{_markdown_tables_to_html(head_md)}\n{boxed}\n"
        + "\n".join(f"<div class='figure'>{p}</div>" for p in parts)
        + f"\n{_markdown_tables_to_html(body_md)}\n</body></html>\n"
    )


def _cell_json(cell: Cell) -> dict[str, Any]:
    data = asdict(cell)
    data.pop("round_trips_s")
    data["rtt_n"] = cell.rtt_n
    data["not_answering"] = cell.not_answering
    return data


def matrix_document(
    matrix: Matrix,
    orchs: list[OrchestratorRow],
    pipes: list[PipelineRow],
    errors: list[ErrorRow],
    posts: dict[str, int],
    comparison: MatrixComparison | None,
) -> dict[str, Any]:
    compared = None
    if comparison is not None:
        compared = asdict(comparison) | {"previous_dir": str(comparison.previous_dir)}
    return {
        "schema": 1,
        "kind": "orchestrators",
        "name": matrix.name,
        "status": matrix.status,
        "started_at": matrix.started_at,
        "dry_run": matrix.dry_run,
        "cells": [_cell_json(c) for c in matrix.cells],
        "orchestrators": [asdict(o) for o in orchs],
        "pipelines": [asdict(p) for p in pipes],
        "errors": [asdict(e) for e in errors],
        "posts": posts,
        "comparison": compared,
    }
