"""The report's figures (plotly). Long runs are thinned to at most MAX_POINTS per line by averaging
time buckets, so a day-long run still renders quickly; the numbers in results.json use every sample.

Every series keeps its colour in every figure (`colour_of`): p95 is the same orange over time, per step
and per capability, and a series of all requests (failures included) is drawn in its successful
requests' colour, dotted. Latency is of successful requests unless a series says `all requests`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inferswarm.derived import OK, entry_name
from inferswarm.load import RATE_AXIS
from inferswarm.report.analysis import series_frame
from inferswarm.report.load import RunData, object_of
from inferswarm.report.results import GoneWorker, Results, format_level

MAX_POINTS = 2000
MAX_LATENCY_PANELS = 6
GIB = 2**30
SATURATION_COLOUR = "#c00"
NO_DATA_COLOUR = "#888"
COLOURS = {
    "requests/s": "#1f77b4",
    "successful/s": "#2ca02c",
    "failures/s": "#d62728",
    "expected": "#17becf",
    "users": "#888888",
    "p50": "#9467bd",
    "p90": "#8c564b",
    "p95": "#ff7f0e",
    "p99": "#e377c2",
    "GPU util": "#bcbd22",
    "offered": "#7f7f7f",
    "late requests": "#d62728",
    "schedule lag p99 ms": "#9467bd",
    "not judged": "#555555",
}
# Failure categories (inferswarm.protocols.base.FailureCategory, and `other`) and every other series
# (status codes, telemetry devices, ...) take colours from this palette, which shares none with COLOURS.
PALETTE = [
    "#7f3c8d",
    "#11a579",
    "#3969ac",
    "#f2b701",
    "#e73f74",
    "#80ba5a",
    "#e68310",
    "#008695",
    "#cf1c90",
    "#f97b72",
    "#4b4b8f",
    "#a5aa99",
]
CATEGORIES = (
    "connection_error",
    "timeout",
    "client_error",
    "server_error",
    "capacity",
    "bad_body",
    "unexpected_status",
    "other",
)
COLOURS.update({category: PALETTE[index] for index, category in enumerate(CATEGORIES)})
# the statuses a load test sees most; others take the palette
COLOURS.update({"HTTP 0": "#444444", "HTTP 200": "#00a087", "HTTP 429": "#8491b4", "HTTP 503": "#b0413e"})
ALL_REQUESTS = " (all requests)"
ALL_DASH = "dot"
FROM_INTENDED = " from intended start"
FROM_INTENDED_DASH = "dash"


def colour_of(series: str) -> str:
    """The colour of a series, the same in every figure: a fixed one for the report's own series (an
    `all requests` series takes its successful requests' colour), else one picked by the name."""
    base = series.removesuffix(ALL_REQUESTS).removesuffix(FROM_INTENDED)
    if base in COLOURS:
        return COLOURS[base]
    return PALETTE[zlib.crc32(base.encode()) % len(PALETTE)]


def integer_ticks(high: float) -> dict[str, object]:
    """Axis settings for counts (users): whole-number ticks from 0, about 8 of them at most."""
    raw = max(1.0, float(high) / 8) if math.isfinite(high) else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return {"tick0": 0, "dtick": step, "tickformat": "d", "rangemode": "tozero"}


def _thin(frame: pd.DataFrame, time_col: str, value_cols: list[str]) -> pd.DataFrame:
    if len(frame) <= MAX_POINTS:
        return frame
    start, end = frame[time_col].min(), frame[time_col].max()
    width = (end - start) / MAX_POINTS or 1.0
    buckets = ((frame[time_col] - start) // width).astype(int)
    thinned = frame.groupby(buckets)[[time_col, *value_cols]].mean()
    return thinned.reset_index(drop=True)


def _when(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(seconds, unit="s", utc=True)


def _telemetry_lines(
    data: RunData, metric: str, scale: float = 1.0, host_only: bool = False, prefix: str = ""
) -> list[go.Scatter]:
    tel = data.telemetry
    series = tel.get(metric) if tel is not None else None
    if tel is None or series is None:
        return []
    wanted = tel.is_host(series.sid) if host_only else np.ones(len(series), dtype=bool)
    if metric.startswith("gpu_"):
        wanted &= tel.is_gpu(series.sid)
    lines = []
    for sid in np.unique(series.sid[wanted]):
        mask = series.sid == sid
        frame = _thin(
            pd.DataFrame({"timestamp": series.ts[mask], "value": series.value[mask]}), "timestamp", ["value"]
        )
        node, _, device = tel.series[int(sid)]
        name = f"{prefix}{device} · {node}"
        lines.append(
            go.Scatter(
                x=_when(frame["timestamp"]),
                y=frame["value"] / scale,
                name=name,
                mode="lines",
                line={"color": colour_of(name)},
            )
        )
    return lines


def _empty_note(fig: go.Figure, row: int, text: str, col: int = 1) -> None:
    """A grey note in the middle of an empty subplot (paper coordinates: no data range is touched)."""
    subplot = fig.get_subplot(row, col)
    x = sum(subplot.xaxis.domain) / 2
    y = sum(subplot.yaxis.domain) / 2
    fig.add_annotation(
        text=text, showarrow=False, xref="paper", yref="paper", x=x, y=y, font={"color": NO_DATA_COLOUR}
    )


def _mark_workers_gone(fig: go.Figure, gone: Sequence[GoneWorker]) -> None:
    """A dashed line at each lost (or departed) worker's last heartbeat, labelled with its node."""
    for worker in gone:
        when = worker.last_seen_epoch_s
        if when is None:
            continue
        x = pd.Timestamp(when, unit="s", tz="UTC")
        fig.add_vline(x=x, line={"dash": "dash", "color": "#c00"}, row=1, col=1)
        # add_vline's own annotation cannot place a datetime x; a paper-y annotation can.
        fig.add_annotation(
            x=x,
            y=1.0,
            xref="x",
            yref="paper",
            text=f"worker {worker.how}: {worker.node}",
            showarrow=False,
            yanchor="bottom",
            font={"color": "#c00"},
        )


def saturation_time(data: RunData, results: Results) -> float | None:
    """When the saturation step began (its stage's start), for the over-time figures."""
    sat = results.saturation
    if sat is None:
        return None
    stages = data.stages
    if stages is not None and not stages.empty:
        match = stages[stages["stage"] == sat.stage]
        if not match.empty:
            return float(match["start_epoch_s"].iloc[0])
    for step in results.steps:
        if step.stage == sat.stage:
            return step.window_start_epoch_s
    return None


def _mark_saturation_over_time(fig: go.Figure, data: RunData, results: Results, rows: int) -> None:
    when = saturation_time(data, results)
    sat = results.saturation
    if when is None or sat is None:
        return
    x = pd.Timestamp(when, unit="s", tz="UTC")
    for row in range(1, rows + 1):
        fig.add_vline(x=x, line={"dash": "dash", "color": SATURATION_COLOUR}, row=row, col=1)
    top = fig.get_subplot(1, 1).yaxis.domain[1]
    fig.add_annotation(
        x=x,
        y=top,
        xref="x",
        yref="paper",
        text=f"saturation at {format_level(sat.level)} {results.step_axis.label}",
        showarrow=False,
        xanchor="left",
        yanchor="top",
        xshift=4,
        bgcolor="rgba(255,255,255,0.8)",
        font={"color": SATURATION_COLOUR},
    )


def _percentile_lines(
    fig: go.Figure,
    history: pd.DataFrame,
    columns: tuple[str, ...],
    row: int,
    first: bool,
    suffix: str = "",
    dash: str | None = None,
) -> int:
    """One line per percentile column of a Locust history (thinned); how many had any sample."""
    present = [c for c in columns if c in history]
    frame = _thin(history, "Timestamp", present)
    drawn = 0
    for column in present:
        name = f"p{column.rstrip('%')}{suffix}"
        drawn += bool(frame[column].notna().any())
        line: dict[str, str] = {"color": colour_of(name)}
        if dash is not None:
            line["dash"] = dash
        fig.add_trace(
            go.Scatter(
                x=_when(frame["Timestamp"]),
                y=frame[column],
                name=name,
                mode="lines",
                line=line,
                legendgroup=name,
                showlegend=first,
            ),
            row=row,
            col=1,
        )
    return drawn


def _users_line(x: pd.Series, users: pd.Series, show: bool = True) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=users,
        name="users",
        mode="lines",
        line={"shape": "hv", "color": COLOURS["users"]},
        legendgroup="users",
        showlegend=show,
    )


def throughput_over_time(
    data: RunData, per_user_rps: float | None, gone: Sequence[GoneWorker] = (), results: Results | None = None
) -> go.Figure | None:
    agg = series_frame(data)
    if agg is None:
        return None
    agg = _thin(agg, "Timestamp", ["Requests/s", "Failures/s", "User Count"])
    x = _when(agg["Timestamp"])
    gpu_rows = [
        ("GPU utilization (%)", _telemetry_lines(data, "gpu_util_pct")),
        ("GPU memory used (GiB)", _telemetry_lines(data, "gpu_mem_used_bytes", GIB)),
    ]
    has_gpu = any(lines for _, lines in gpu_rows)
    host = _telemetry_lines(data, "cpu_util_pct", host_only=True, prefix="cpu ")
    host += _telemetry_lines(data, "mem_util_pct", host_only=True, prefix="mem ")
    panels: list[tuple[str, list[go.Scatter]]] = [("Throughput and users", [])]
    panels += gpu_rows if has_gpu else []  # no GPU samples: one line under the title, not two empty panels
    panels.append(("Host CPU and memory (%)", host))
    rows = len(panels)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        specs=[[{"secondary_y": True}]] + [[{}]] * (rows - 1),
        subplot_titles=[title for title, _ in panels],
    )
    failures = agg["Failures/s"] if "Failures/s" in agg else pd.Series(0.0, index=agg.index)
    for name, values in (
        ("requests/s", agg["Requests/s"]),
        ("successful/s", agg["Requests/s"] - failures),
        ("failures/s", failures),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=values, name=name, mode="lines", line={"color": colour_of(name)}), row=1, col=1
        )
    if per_user_rps:
        expected = agg["User Count"] * per_user_rps
        fig.add_trace(
            go.Scatter(
                x=x,
                y=expected,
                name="expected (users * per-user rate)",
                mode="lines",
                line={"dash": "dot", "color": COLOURS["expected"]},
            ),
            row=1,
            col=1,
        )
    fig.add_trace(_users_line(x, agg["User Count"]), row=1, col=1, secondary_y=True)
    for row, (_, lines) in enumerate(panels[1:], start=2):
        for trace in lines:
            fig.add_trace(trace, row=row, col=1)
        if not lines:
            _empty_note(fig, row, "no host telemetry in this run")
    _mark_workers_gone(fig, gone)
    if results is not None:
        _mark_saturation_over_time(fig, data, results, rows)
    fig.update_yaxes(title_text="req/s", row=1, col=1)
    fig.update_yaxes(
        title_text="users", row=1, col=1, secondary_y=True, **integer_ticks(agg["User Count"].max())
    )
    title = "Throughput and utilization over time"
    if not has_gpu:
        title += "<br><sup>GPU: no GPU samples in this run</sup>"
    fig.update_layout(height=250 * rows + 250, title=title, legend={"orientation": "h"})
    return fig


def _history_of(data: RunData, name: str) -> pd.DataFrame | None:
    history = data.history
    if history is None:
        return None
    rows = history[history["Name"] == name].sort_values("Timestamp")
    return rows if not rows.empty else None


def latency_over_time(data: RunData, results: Results | None = None) -> go.Figure | None:
    """Per capability (the busiest MAX_LATENCY_PANELS), the latency of its successful requests from its
    `<capability>:ok` history, with all requests' p95 dotted beside it; runs without that history show
    all requests, labelled so."""
    agg = series_frame(data)
    if agg is None:
        return None
    summary = results.summary if results is not None else {}
    capabilities = sorted(
        (name for name in summary if name != "total" and _history_of(data, entry_name(name, OK)) is not None),
        key=lambda name: (-summary[name].requests, name),
    )
    shown = capabilities[:MAX_LATENCY_PANELS]
    # (title, successful requests' history or None, all requests' history)
    panels: list[tuple[str, pd.DataFrame | None, pd.DataFrame]] = []
    for name in shown:
        ok = _history_of(data, entry_name(name, OK))
        own = _history_of(data, name)
        panels.append((f"{name}: successful requests", ok, own if own is not None else agg))
    if not panels:
        panels.append(("All requests (this run did not record successful requests' latency)", None, agg))
    rows = len(panels)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08 if rows > 1 else 0.0,
        specs=[[{"secondary_y": True}]] * rows,
        subplot_titles=[title for title, _, _ in panels],
    )
    users = _thin(agg, "Timestamp", ["User Count"])
    for row, (_, ok, every) in enumerate(panels, start=1):
        first = row == 1
        drawn = 0
        if ok is not None:
            drawn += _percentile_lines(fig, ok, ("50%", "95%", "99%"), row, first)
        # all requests beside, dashed: only p95 when the successful requests' lines are there
        columns = ("95%",) if ok is not None else ("50%", "95%", "99%")
        drawn += _percentile_lines(fig, every, columns, row, first, suffix=ALL_REQUESTS, dash=ALL_DASH)
        if not drawn:
            _empty_note(fig, row, "no latency samples")
        fig.add_trace(
            _users_line(_when(users["Timestamp"]), users["User Count"], show=first),
            row=row,
            col=1,
            secondary_y=True,
        )
        fig.update_yaxes(title_text="ms", row=row, col=1)
        fig.update_yaxes(
            title_text="users", row=row, col=1, secondary_y=True, **integer_ticks(agg["User Count"].max())
        )
    if len(capabilities) > len(shown):
        fig.add_annotation(
            text=f"{len(capabilities) - len(shown)} more capabilities: see results.json",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=1.0,
            y=0.0,
            yshift=-40,
            font={"color": NO_DATA_COLOUR},
        )
    if results is not None:
        _mark_saturation_over_time(fig, data, results, rows)
    fig.update_layout(
        title="Latency over time (ms, Locust's 10 s window)",
        legend={"orientation": "h"},
        height=350 * rows + 100,
    )
    return fig


def per_step(results: Results) -> go.Figure | None:
    steps = [s for s in results.steps if s.requests]
    if not steps:
        return None
    unit = results.step_axis.label
    levels = [s.level for s in steps]
    has_gpu = any(s.gpu_util_mean_pct is not None for s in steps)
    # An open-loop run (steps of offered rate) also shows what was offered, the latency from each
    # request's intended start, and whether the generator kept its schedule.
    open_loop = results.step_axis.column == RATE_AXIS.column
    titles = ["Throughput per step (req/s)", "Latency per step (ms)"]
    titles += ["Late requests and schedule lag per step"] if open_loop else []
    titles += ["GPU utilization per step (%)"] if has_gpu else []
    rows = len(titles)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=titles)

    def line(row: int, name: str, values: list[float | None], dash: str | None = None) -> None:
        if dash is None and name.endswith(ALL_REQUESTS):
            dash = ALL_DASH
        style = {"color": colour_of(name), **({"dash": dash} if dash else {})}
        fig.add_trace(
            go.Scatter(x=levels, y=values, name=name, mode="lines+markers", line=style), row=row, col=1
        )

    if open_loop:
        line(1, "offered", [float(level) for level in levels], dash="dot")
    line(1, "requests/s", [s.rps for s in steps])
    line(1, "successful/s", [s.success_rps for s in steps])
    line(2, "p50", [s.p50_ms for s in steps])
    line(2, "p95", [s.p95_ms for s in steps])
    line(2, "p99", [s.p99_ms for s in steps])
    if any(s.all_p95_ms is not None for s in steps):
        line(2, f"p95{ALL_REQUESTS}", [s.all_p95_ms for s in steps])
    gpu_row = 3
    if open_loop:
        if any(s.from_intended_p99_ms is not None for s in steps):
            line(2, f"p95{FROM_INTENDED}", [s.from_intended_p95_ms for s in steps], dash=FROM_INTENDED_DASH)
            line(2, f"p99{FROM_INTENDED}", [s.from_intended_p99_ms for s in steps], dash=FROM_INTENDED_DASH)
        line(3, "late requests", [s.late_requests for s in steps])
        line(3, "schedule lag p99 ms", [s.schedule_lag_p99_ms for s in steps])
        gpu_row = 4
    if has_gpu:
        line(gpu_row, "GPU util", [s.gpu_util_mean_pct for s in steps])
    unjudged = [s for s in steps if not s.judged]
    if unjudged:
        fig.add_trace(
            go.Scatter(
                x=[s.level for s in unjudged],
                y=[s.rps for s in unjudged],
                name="not judged (cut short or too short)",
                mode="markers",
                marker={"symbol": "x-open", "size": 14, "color": COLOURS["not judged"]},
                text=[s.not_judged_why for s in unjudged],
            ),
            row=1,
            col=1,
        )
    saturation = results.saturation
    if saturation is not None:
        for row in range(1, rows + 1):
            fig.add_vline(
                x=saturation.level, line={"dash": "dash", "color": SATURATION_COLOUR}, row=row, col=1
            )
        fig.add_annotation(
            x=saturation.level,
            xref=f"x{rows}" if rows > 1 else "x",
            y=0,
            yref="paper",
            yanchor="top",
            yshift=-40,
            text=f"saturation at {format_level(saturation.level)} {unit}",
            showarrow=False,
            font={"color": SATURATION_COLOUR},
        )
    if all(float(level).is_integer() for level in levels):
        fig.update_xaxes(**integer_ticks(max(levels)))
    fig.update_xaxes(title_text=unit, row=rows, col=1)
    fig.update_layout(
        title="Per step (latency: successful requests)",
        height=300 * rows + 150,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def per_capability(results: Results) -> go.Figure | None:
    caps = {k: v for k, v in results.summary.items() if k != "total"}
    if not caps:
        return None
    names = sorted(caps)
    fig = make_subplots(
        rows=2,
        cols=2,
        vertical_spacing=0.15,
        subplot_titles=(
            "Requests/s",
            "Latency of successful requests (ms)",
            "Failures by category",
            "Status codes",
        ),
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[caps[n].rps for n in names],
            name="requests/s",
            marker={"color": colour_of("requests/s")},
        ),
        row=1,
        col=1,
    )
    for name, values in (
        ("p50", [caps[n].p50_ms for n in names]),
        ("p95", [caps[n].p95_ms for n in names]),
        ("p99", [caps[n].p99_ms for n in names]),
        (f"p95{ALL_REQUESTS}", [caps[n].all_p95_ms for n in names]),
    ):
        pattern = {"pattern": {"shape": "."}} if name.endswith(ALL_REQUESTS) else {}
        fig.add_trace(
            go.Bar(x=names, y=values, name=name, marker={"color": colour_of(name), **pattern}), row=1, col=2
        )
    if not any(v is not None for n in names for v in (caps[n].p50_ms, caps[n].all_p95_ms)):
        _empty_note(fig, 1, "no latency recorded", col=2)
    categories = sorted({c for n in names for c in caps[n].failures_by_category})
    for category in categories:
        fig.add_trace(
            go.Bar(
                x=names,
                y=[caps[n].failures_by_category.get(category, 0) for n in names],
                name=category,
                marker={"color": colour_of(category)},
            ),
            row=2,
            col=1,
        )
    if not categories:
        _empty_note(fig, 2, "no failures", col=1)
    codes = sorted({c for n in names for c in caps[n].status_codes})
    for code in codes:
        name = f"HTTP {code}"
        fig.add_trace(
            go.Bar(
                x=names,
                y=[caps[n].status_codes.get(code, 0) for n in names],
                name=name,
                marker={"color": colour_of(name)},
            ),
            row=2,
            col=2,
        )
    if not codes:
        _empty_note(fig, 2, "no status codes recorded", col=2)
    fig.update_layout(barmode="group", title="Per capability", height=800, legend={"orientation": "h"})
    return fig


def search_trials(results: Results) -> go.Figure | None:
    """A capacity search's trials in order: the level of each, passed or failed, and the bracket."""
    search = results.search
    if search is None or not search.trials:
        return None
    unit = search.unit
    fig = go.Figure()
    for passed, name, colour, symbol in (
        (True, "passed", "#2ca02c", "circle"),
        (False, "failed", "#d62728", "x"),
    ):
        trials = [(i + 1, t) for i, t in enumerate(search.trials) if t.passed is passed]
        fig.add_trace(
            go.Scatter(
                x=[i for i, _ in trials],
                y=[t.level for _, t in trials],
                name=name,
                mode="markers",
                marker={"color": colour, "symbol": symbol, "size": 12},
                text=["; ".join(t.why) or "every gate held" for _, t in trials],
            )
        )
    fig.add_trace(
        go.Scatter(
            x=list(range(1, len(search.trials) + 1)),
            y=[t.level for t in search.trials],
            mode="lines",
            line={"color": "#999999", "dash": "dot"},
            showlegend=False,
        )
    )
    for level, label, colour in (
        (search.highest_passing, "highest passing", "#2ca02c"),
        (search.lowest_failing, "lowest failing", "#d62728"),
    ):
        if level is not None:
            fig.add_hline(y=level, line={"dash": "dash", "color": colour}, annotation_text=label)
    fig.update_xaxes(title_text="trial", **integer_ticks(len(search.trials)))
    fig.update_yaxes(title_text=unit)
    fig.update_layout(title="Capacity search: the level of each trial and its verdict", height=450)
    return fig


def tensor_overhead(results: Results) -> go.Figure | None:
    """Per tensor size: the server's time and the overhead stacked (the client's median time), with the
    local CPU baseline beside them."""
    tensor = results.tensor
    if tensor is None or not any(s.client_p50_ms is not None for s in tensor.sizes):
        return None
    sizes = [s.size for s in tensor.sizes]
    fig = go.Figure()
    fig.add_bar(x=sizes, y=[s.server_p50_ms for s in tensor.sizes], name="server (compute) p50 ms")
    fig.add_bar(x=sizes, y=[s.overhead_p50_ms for s in tensor.sizes], name="overhead p50 ms")
    fig.add_scatter(
        x=sizes, y=[s.client_p50_ms for s in tensor.sizes], name="client p50 ms", mode="lines+markers"
    )
    fig.add_scatter(
        x=sizes,
        y=[s.cpu_baseline_ms for s in tensor.sizes],
        name=f"local CPU baseline ms ({tensor.baseline_host})",
        mode="lines+markers",
        line={"dash": "dash"},
    )
    fig.update_layout(
        barmode="stack", title="Tensor sizes: compute, network overhead, and the local CPU", height=450
    )
    fig.update_xaxes(title_text="tensor size", type="category")
    fig.update_yaxes(title_text="ms", type="log")
    return fig


def all_figures(data: RunData, results: Results) -> dict[str, go.Figure]:
    """name -> figure, for each figure there is data for."""
    per_user_rps = object_of(data.config.get("load")).get("per_user_rps")
    if not isinstance(per_user_rps, int | float):  # the expected-rate line needs a number
        per_user_rps = None
    gone = results.workers.lost if results.workers is not None else []
    made = {
        "throughput_over_time": throughput_over_time(data, per_user_rps, gone, results),
        "latency_over_time": latency_over_time(data, results),
        "per_step": per_step(results),
        "per_capability": per_capability(results),
        "search_trials": search_trials(results),
        "tensor_overhead": tensor_overhead(results),
    }
    return {name: fig for name, fig in made.items() if fig is not None}
