"""The report's figures (plotly). Long runs are thinned to at most MAX_POINTS per line by averaging
time buckets, so a day-long run still renders quickly; the numbers in results.json use every sample."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from inferswarm.report.analysis import series_frame
from inferswarm.report.load import RunData, object_of
from inferswarm.report.results import GoneWorker, Results, format_level

MAX_POINTS = 2000
GIB = 2**30


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
    data: RunData, metric: str, scale: float = 1.0, host_only: bool = False
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
        lines.append(
            go.Scatter(
                x=_when(frame["timestamp"]), y=frame["value"] / scale, name=f"{device} · {node}", mode="lines"
            )
        )
    return lines


def _empty_note(fig: go.Figure, row: int, text: str) -> None:
    """A grey note in the middle of an empty subplot (paper coordinates: no data range is touched)."""
    subplot = fig.get_subplot(row, 1)
    x = sum(subplot.xaxis.domain) / 2
    y = sum(subplot.yaxis.domain) / 2
    fig.add_annotation(
        text=text, showarrow=False, xref="paper", yref="paper", x=x, y=y, font={"color": "#888"}
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


def throughput_over_time(
    data: RunData, per_user_rps: float | None, gone: Sequence[GoneWorker] = ()
) -> go.Figure | None:
    agg = series_frame(data)
    if agg is None:
        return None
    agg = _thin(agg, "Timestamp", ["Requests/s", "Failures/s", "User Count"])
    x = _when(agg["Timestamp"])
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        specs=[[{"secondary_y": True}], [{}], [{}], [{}]],
        subplot_titles=(
            "Throughput and users",
            "GPU utilization (%)",
            "GPU memory used (GiB)",
            "Host CPU and memory (%)",
        ),
    )
    fig.add_trace(go.Scatter(x=x, y=agg["Requests/s"], name="requests/s", mode="lines"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=agg["Failures/s"], name="failures/s", mode="lines"), row=1, col=1)
    if per_user_rps:
        expected = agg["User Count"] * per_user_rps
        fig.add_trace(
            go.Scatter(
                x=x, y=expected, name="expected (users * per-user rate)", mode="lines", line={"dash": "dot"}
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=x, y=agg["User Count"], name="users", mode="lines", line={"shape": "hv", "color": "#888"}
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    for row, lines in (
        (2, _telemetry_lines(data, "gpu_util_pct")),
        (3, _telemetry_lines(data, "gpu_mem_used_bytes", GIB)),
    ):
        for trace in lines:
            fig.add_trace(trace, row=row, col=1)
        if not lines:
            _empty_note(fig, row, "no GPU samples in this run")
    for trace in _telemetry_lines(data, "cpu_util_pct", host_only=True):
        trace.name = f"cpu {trace.name}"
        fig.add_trace(trace, row=4, col=1)
    for trace in _telemetry_lines(data, "mem_util_pct", host_only=True):
        trace.name = f"mem {trace.name}"
        fig.add_trace(trace, row=4, col=1)
    _mark_workers_gone(fig, gone)
    fig.update_yaxes(title_text="req/s", row=1, col=1)
    fig.update_yaxes(title_text="users", row=1, col=1, secondary_y=True)
    fig.update_layout(height=1000, title="Throughput and utilization over time", legend={"orientation": "h"})
    return fig


def latency_over_time(data: RunData) -> go.Figure | None:
    agg = series_frame(data)
    if agg is None:
        return None
    columns = [c for c in ("50%", "95%", "99%") if c in agg]
    agg = _thin(agg, "Timestamp", [*columns, "User Count"])
    x = _when(agg["Timestamp"])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for column in columns:
        fig.add_trace(go.Scatter(x=x, y=agg[column], name=f"p{column.rstrip('%')}", mode="lines"))
    fig.add_trace(
        go.Scatter(
            x=x, y=agg["User Count"], name="users", mode="lines", line={"shape": "hv", "color": "#888"}
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="ms (Locust's 10 s window)")
    fig.update_yaxes(title_text="users", secondary_y=True)
    fig.update_layout(title="Latency over time", legend={"orientation": "h"}, height=450)
    return fig


def per_step(results: Results) -> go.Figure | None:
    steps = [s for s in results.steps if s.requests]
    if not steps:
        return None
    unit = results.step_axis.label
    levels = [s.level for s in steps]
    has_gpu = any(s.gpu_util_mean_pct is not None for s in steps)
    titles = ["Throughput per step (req/s)", "Latency per step (ms)"]
    titles += ["GPU utilization per step (%)"] if has_gpu else []
    rows = len(titles)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=titles)

    def line(row: int, name: str, values: list[float | None]) -> None:
        fig.add_trace(go.Scatter(x=levels, y=values, name=name, mode="lines+markers"), row=row, col=1)

    line(1, "requests/s", [s.rps for s in steps])
    line(1, "successful/s", [s.success_rps for s in steps])
    line(2, "p50", [s.p50_ms for s in steps])
    line(2, "p95", [s.p95_ms for s in steps])
    line(2, "p99", [s.p99_ms for s in steps])
    if has_gpu:
        line(3, "GPU util", [s.gpu_util_mean_pct for s in steps])
    saturation = results.saturation
    if saturation is not None:
        for row in range(1, rows + 1):
            fig.add_vline(x=saturation.level, line={"dash": "dash", "color": "#c00"}, row=row, col=1)
        fig.add_annotation(
            x=saturation.level,
            xref=f"x{rows}" if rows > 1 else "x",
            y=0,
            yref="paper",
            yanchor="top",
            yshift=-40,
            text=f"saturation at {format_level(saturation.level)} {unit}",
            showarrow=False,
            font={"color": "#c00"},
        )
    fig.update_xaxes(title_text=unit, row=rows, col=1)
    fig.update_layout(
        title="Per step of the ramp", height=300 * rows + 150, legend={"orientation": "h", "y": -0.2}
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
        subplot_titles=("Requests/s", "Latency (ms)", "Failures by category", "Status codes"),
    )
    fig.add_trace(go.Bar(x=names, y=[caps[n].rps for n in names], name="req/s"), row=1, col=1)
    for name, values in (
        ("p50", [caps[n].p50_ms for n in names]),
        ("p95", [caps[n].p95_ms for n in names]),
        ("p99", [caps[n].p99_ms for n in names]),
    ):
        fig.add_trace(go.Bar(x=names, y=values, name=name), row=1, col=2)
    categories = sorted({c for n in names for c in caps[n].failures_by_category})
    for category in categories:
        fig.add_trace(
            go.Bar(x=names, y=[caps[n].failures_by_category.get(category, 0) for n in names], name=category),
            row=2,
            col=1,
        )
    codes = sorted({c for n in names for c in caps[n].status_codes})
    for code in codes:
        fig.add_trace(
            go.Bar(x=names, y=[caps[n].status_codes.get(code, 0) for n in names], name=f"HTTP {code}"),
            row=2,
            col=2,
        )
    fig.update_layout(barmode="group", title="Per capability", height=800, legend={"orientation": "h"})
    return fig


def all_figures(data: RunData, results: Results) -> dict[str, go.Figure]:
    """name -> figure, for each figure there is data for."""
    per_user_rps = object_of(data.config.get("load")).get("per_user_rps")
    if not isinstance(per_user_rps, int | float):  # the expected-rate line needs a number
        per_user_rps = None
    gone = results.workers.lost if results.workers is not None else []
    made = {
        "throughput_over_time": throughput_over_time(data, per_user_rps, gone),
        "latency_over_time": latency_over_time(data),
        "per_step": per_step(results),
        "per_capability": per_capability(results),
    }
    return {name: fig for name, fig in made.items() if fig is not None}
