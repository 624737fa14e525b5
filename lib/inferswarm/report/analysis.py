"""The numbers of a report: per-capability summary, per-step table, saturation point, SLO verdicts.

Per-step latency percentiles come from the exact per-step histograms the run recorded
(`PREFIX_step_latency.csv`) with Locust's own percentile rule, so they match what Locust would print for
that window. Runs without them (plain `locust` runs, older runs) fall back to Locust's windowed history
percentiles, and the step is marked `exact: false`.

With a request log (`PREFIX_requests.parquet`, see `inferswarm.report.requests`) every latency
percentile, overall, per capability and per step, is computed exactly from the requests themselves
instead, next to the latency from the intended start, the schedule's lag and goodput;
`Results.latency_source` says which source was used.

Steps are placed on the axis of the run's load kind (`inferswarm.load.step_axis_of`): each step's level
is its value in that column of the stages CSV (users for every built-in kind).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, JsonValue, ValidationError

from inferswarm.config import GoodputConfig, ReportConfig, SaturationRule
from inferswarm.derived import OK, is_derived, split_entry
from inferswarm.histograms import percentile as percentile
from inferswarm.load import USERS_AXIS, StepAxis, step_axis_of
from inferswarm.load.arrivals import LATE_MS
from inferswarm.report.load import JsonObject, RunData, object_of
from inferswarm.report.pipelines import pipeline_figures
from inferswarm.report.requests import Requests, figures
from inferswarm.report.results import (
    SCHEMA_VERSION,
    Axis,
    CapabilitySummary,
    GateVerdict,
    GeneratorSaturation,
    GoodputSection,
    GpuFigures,
    Inputs,
    Measurement,
    Metadata,
    PassingStep,
    ReportSettings,
    Results,
    Saturation,
    SaturationRuleSettings,
    SearchSection,
    SloVerdicts,
    StepCapability,
    StepRow,
    format_level,
)
from inferswarm.report.workers import workers_section
from inferswarm.slo import GPU_METRICS, Gate, parse_gate

M = TypeVar("M", bound=BaseModel)

AGGREGATED = "Aggregated"
PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}
HISTORY_PERCENTILES = {"p50_ms": "50%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%"}
# Locust's percentile columns in its stats CSV, as levels (for merging capabilities' percentiles)
STATS_LEVELS = {
    "50%": 0.5,
    "66%": 0.66,
    "75%": 0.75,
    "80%": 0.8,
    "90%": 0.9,
    "95%": 0.95,
    "98%": 0.98,
    "99%": 0.99,
    "99.9%": 0.999,
    "99.99%": 0.9999,
    "100%": 1.0,
}
MIN_STEP_REQUESTS = 10
"""A step's measured window with fewer requests is too short to judge (it never decides the saturation
point or the highest passing step)."""
MIN_STEP_WINDOW_S = 2.0
"""...and so is a window shorter than this."""
UNREACHABLE_SHARE = 0.95
"""At least this share of requests failing with connection errors: the target was unreachable."""
CONNECTION_ERROR = "connection_error"


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities become None, numpy scalars plain Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 4)
    return value


def failure_category(error: str) -> str:
    head = str(error).split(":", 1)[0].strip()
    return head if head and " " not in head else "other"


def _ok_capability(name: str) -> str | None:
    """The capability whose successful requests the entry `name` times (`<capability>:ok`), else None."""
    split = split_entry(name)
    return split[0] if split is not None and split[1] == OK else None


def _value(row: Mapping[str, Any], column: str) -> float | None:
    try:
        value = float(row[column])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def merged_percentiles(rows: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, float | None]:
    """p50_ms ... p99_ms of several entries together, from each entry's (count, stats row): each
    entry's percentile columns are a step CDF, the entries' CDFs are weighted by their counts, and a
    percentile is the lowest listed value where the merged CDF reaches it. Exact for one entry."""
    curves = []
    for n, row in rows:
        points = [
            (value, level)
            for column, level in STATS_LEVELS.items()
            if (value := _value(row, column)) is not None
        ]
        if n > 0 and points:
            curves.append((n, points))
    total = sum(n for n, _ in curves)
    candidates = sorted({value for _, points in curves for value, _ in points})
    out: dict[str, float | None] = dict.fromkeys(PERCENTILES)
    if not total:
        return out

    def cdf(x: float) -> float:
        return (
            sum(
                n * max((level for value, level in points if value <= x), default=0.0) for n, points in curves
            )
            / total
        )

    for metric, q in PERCENTILES.items():
        out[metric] = next((x for x in candidates if cdf(x) >= q - 1e-9), candidates[-1])
    return out


def _latency(row: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """avg, max and percentiles of a stats row (None for each without a row or without requests)."""
    keys = ["avg_ms", "max_ms", *HISTORY_PERCENTILES]
    if row is None or not int(row.get("Request Count", 0) or 0):
        return {f"{prefix}{key}": None for key in keys}
    out = {
        f"{prefix}avg_ms": row.get("Average Response Time"),
        f"{prefix}max_ms": row.get("Max Response Time"),
    }
    out.update({f"{prefix}{metric}": row.get(column) for metric, column in HISTORY_PERCENTILES.items()})
    return out


def capability_summary(data: RunData) -> dict[str, CapabilitySummary]:
    """Run totals per capability and `total`, from Locust's stats, failures and the status codes.

    Latency is of successful requests, from each capability's `<capability>:ok` entry (see
    `inferswarm.derived.OK`); `all_*` is of all requests. A run that did not record `:ok` entries (older
    runs, plain Locust runs) has success latency only where nothing failed (`latency_of`)."""
    out: dict[str, dict[str, Any]] = {}
    if data.stats is None:
        return {}
    ok_rows: dict[str, dict[str, Any]] = {}
    for _, row in data.stats.iterrows():
        name = str(row["Name"])
        capability = _ok_capability(name)
        if capability is not None:
            ok_rows[capability] = dict(row)
        if is_derived(name):
            continue  # LLM timings and token counts are not requests; see report.pipelines
        key = "total" if name == AGGREGATED else name
        requests = int(row["Request Count"])
        failures = int(row.get("Failure Count", 0) or 0)
        rps = float(row.get("Requests/s", float("nan")))
        ratio = failures / requests if requests else 0.0
        entry: dict[str, Any] = {
            "requests": requests,
            "failures": failures,
            "failure_ratio": ratio,
            "rps": rps,
            "success_rps": rps * (1 - ratio) if math.isfinite(rps) else None,
            **_latency(dict(row), "all_"),
            "failures_by_category": {},
            "status_codes": {},
        }
        out[key] = entry
    ok_logged = bool(ok_rows)
    for key, entry in out.items():
        if key == "total":
            continue
        if ok_logged:
            entry.update(_latency(ok_rows.get(key)), latency_of="successful")
        else:
            entry.update(_latency_like_all(entry))
    if "total" in out:
        entry = out["total"]
        if not ok_logged:
            entry.update(_latency_like_all(entry))
        else:
            oks = [(int(row.get("Request Count", 0) or 0), row) for row in ok_rows.values()]
            oks = [(n, row) for n, row in oks if n > 0]
            if len(oks) == 1:
                entry.update(_latency(oks[0][1]))
            else:
                entry.update(_latency(None))
                if oks:
                    means = [(n, _value(row, "Average Response Time")) for n, row in oks]
                    known = [(n, mean) for n, mean in means if mean is not None]
                    if known:
                        entry["avg_ms"] = sum(n * mean for n, mean in known) / sum(n for n, _ in known)
                    peaks = [peak for _, row in oks if (peak := _value(row, "Max Response Time")) is not None]
                    entry["max_ms"] = max(peaks, default=None)
                    entry.update(merged_percentiles(oks))
            entry["latency_of"] = "successful"

    def count(name: str, table: str, bucket: str, n: int) -> None:
        for key in (name, "total"):  # each capability's own, and the run's
            if key in out:
                counts = out[key][table]
                counts[bucket] = counts.get(bucket, 0) + n

    if data.failures is not None:
        for _, row in data.failures.iterrows():
            category = failure_category(str(row["Error"]))
            count(str(row["Name"]), "failures_by_category", category, int(row["Occurrences"]))
    if data.status_codes is not None:
        for _, row in data.status_codes.iterrows():
            count(str(row["name"]), "status_codes", str(int(row["status"])), int(row["count"]))
    return {key: CapabilitySummary.model_validate(entry) for key, entry in out.items()}


def exact_summary(
    summary: Mapping[str, CapabilitySummary], requests: Requests, goodput: GoodputConfig | None
) -> dict[str, CapabilitySummary]:
    """`summary` with its latency taken exactly from the request log, plus latency from the intended
    start, schedule lag and goodput (`goodput_rps`: the scope's rate times its goodput ratio, as
    `success_rps` is its rate times its success ratio)."""
    out: dict[str, CapabilitySummary] = {}
    for key, entry in summary.items():
        index = requests.select(capability=None if key == "total" else key)
        exact = figures(requests, index, goodput, with_avg=True)
        ratio = exact.get("goodput_ratio")
        if ratio is not None and entry.rps is not None and math.isfinite(entry.rps):
            exact["goodput_rps"] = entry.rps * ratio
        out[key] = CapabilitySummary.model_validate({**entry.model_dump(), **exact})
    return out


def _exact_step(
    step: StepCapability,
    requests: Requests,
    window: tuple[float, float],
    capability: str | None,
    goodput: GoodputConfig | None,
) -> StepCapability:
    """A step's (or one capability's in it) numbers with latency exactly from the request log."""
    exact = figures(requests, requests.select(window, capability), goodput, step.seconds)
    return StepCapability.model_validate({**step.model_dump(), **exact})


def _latency_like_all(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Headline latency for a run without success timings: all requests' (successful ones' too when
    nothing failed)."""
    copied = {key.removeprefix("all_"): value for key, value in entry.items() if key.startswith("all_")}
    return {**copied, "latency_of": "successful" if not entry["failures"] else "all"}


def test_window(data: RunData) -> tuple[float, float] | None:
    """From the first stage's start to the last stage's end; else the stats history's span."""
    if data.stages is not None and not data.stages.empty:
        return float(data.stages["start_epoch_s"].min()), float(data.stages["end_epoch_s"].max())
    if data.history is not None and not data.history.empty:
        return float(data.history["Timestamp"].min()), float(data.history["Timestamp"].max())
    return None


def gpu_figures(data: RunData, start: float, end: float, requests: int | None) -> GpuFigures:
    """Peak memory, mean utilization and energy per request over (start, end], from every GPU source."""
    tel = data.telemetry
    if tel is None:
        return GpuFigures()
    out: dict[str, float] = {}
    util = tel.get("gpu_util_pct")
    if util is not None:
        util = util.window(start, end)
        values = util.value[tel.is_gpu(util.sid)]
        if len(values):
            out["gpu_util_mean_pct"] = float(values.mean())
    used, total = tel.get("gpu_mem_used_bytes"), tel.get("gpu_mem_total_bytes")
    if used is not None:
        used = used.window(start, end)
        gpu = tel.is_gpu(used.sid)
        if gpu.any():
            peaks = _per_series(used.sid[gpu], used.value[gpu], np.maximum, len(tel.series), -np.inf)
            out["gpu_mem_peak_bytes"] = float(peaks.max())
            if total is not None:
                totals = _per_series(total.sid, total.value, np.maximum, len(tel.series), -np.inf)
                known = np.isfinite(peaks) & np.isfinite(totals) & (totals > 0)
                if known.any():
                    out["gpu_mem_peak_pct"] = float(100 * (peaks[known] / totals[known]).max())
    energy = tel.get("gpu_energy_j")
    if energy is not None:
        energy = energy.window(start, end)
        gpu = tel.is_gpu(energy.sid)
        if gpu.any():
            n = len(tel.series)
            high = _per_series(energy.sid[gpu], energy.value[gpu], np.maximum, n, -np.inf)
            low = _per_series(energy.sid[gpu], energy.value[gpu], np.minimum, n, np.inf)
            seen = np.isfinite(high)
            joules = float((high[seen] - low[seen]).sum())
            out["gpu_energy_j"] = joules
            if requests:
                out["energy_per_request_j"] = joules / requests
    return GpuFigures.model_validate(out)


def _per_series(sid: np.ndarray, value: np.ndarray, ufunc: Any, n: int, fill: float) -> np.ndarray:
    result = np.full(n, fill)
    ufunc.at(result, sid, value)
    return result


@dataclass(frozen=True)
class _Window:
    """Counts and latency of one measured window, before they become rates."""

    requests: int
    failures: int
    seconds: float
    percentiles: dict[str, float | None]
    """p50_ms ... p99_ms"""
    max_ms: float | None
    window: tuple[float, float] | None = None
    """(start, end) epoch seconds, for windows the run recorded itself."""
    buckets: tuple[tuple[float, int], ...] = ()
    """The window's histogram (response time ms, count), for windows the run recorded itself."""


def _history_step(data: RunData, start: float, end: float) -> _Window | None:
    history = data.history
    if history is None:
        return None
    agg = history[history["Name"] == AGGREGATED].sort_values("Timestamp")
    before = agg[agg["Timestamp"] <= start]
    inside = agg[(agg["Timestamp"] > start) & (agg["Timestamp"] <= end)]
    if inside.empty:
        return None
    first = before.iloc[-1] if not before.empty else None
    last = inside.iloc[-1]
    base_t = float(first["Timestamp"]) if first is not None else float(inside.iloc[0]["Timestamp"]) - 1
    base_req = float(first["Total Request Count"]) if first is not None else 0.0
    base_fail = float(first["Total Failure Count"]) if first is not None else 0.0
    return _Window(
        requests=int(last["Total Request Count"] - base_req),
        failures=int(last["Total Failure Count"] - base_fail),
        seconds=max(float(last["Timestamp"]) - base_t, 1e-9),
        percentiles={
            metric: float(inside[column].median()) if column in inside else None
            for metric, column in HISTORY_PERCENTILES.items()
        },
        max_ms=float(inside["100%"].max()) if "100%" in inside else None,
    )


def _histogram_window(
    requests: int, failures: int, start: float, end: float, buckets: list[tuple[float, int]]
) -> _Window:
    return _Window(
        requests=requests,
        failures=failures,
        seconds=max(end - start, 1e-9),
        percentiles={metric: percentile(buckets, q) for metric, q in PERCENTILES.items()},
        max_ms=max((ms for ms, n in buckets if n > 0), default=None),
        window=(start, end),
        buckets=tuple(buckets),
    )


def _exact_steps(data: RunData) -> dict[tuple[int, str], _Window]:
    out: dict[tuple[int, str], _Window] = {}
    if data.steps is None or data.step_latency is None:
        return out
    hist = data.step_latency.groupby(["stage", "name"])
    for _, row in data.steps.iterrows():
        key = (int(row["stage"]), str(row["name"]))
        start, end = float(row["window_start_epoch_s"]), float(row["window_end_epoch_s"])
        buckets: list[tuple[float, int]] = []
        if key in hist.groups:
            group = hist.get_group(key)
            buckets = list(zip(group["response_time_ms"], group["count"].astype(int), strict=True))
        requests, failures = int(row["requests"]), int(row.get("failures", 0) or 0)
        out[key] = _histogram_window(requests, failures, start, end, buckets)
    return out


def _rates(step: _Window, ok: _Window | None, ok_logged: bool) -> StepCapability:
    """`step`'s numbers; latency of its successful requests from `ok` (their own window) when the run
    logged them (`ok_logged`; no `ok` window then means nothing succeeded), else from `step` itself
    when nothing failed."""
    requests, failures, seconds = step.requests, step.failures, step.seconds
    if ok_logged:
        latency_of = "successful"
        success = ok.percentiles if ok is not None else dict.fromkeys(PERCENTILES)
        success_max = ok.max_ms if ok is not None else None
    else:
        latency_of = "successful" if not failures else "all"
        success, success_max = step.percentiles, step.max_ms
    return StepCapability.model_validate(
        {
            "requests": requests,
            "failures": failures,
            "seconds": seconds,
            **success,
            "max_ms": success_max,
            "rps": requests / seconds,
            "success_rps": (requests - failures) / seconds,
            "failure_ratio": failures / requests if requests else 0.0,
            "latency_of": latency_of,
            **{f"all_{metric}": value for metric, value in step.percentiles.items()},
            "all_max_ms": step.max_ms,
        }
    )


def _level(stage: pd.Series, column: str) -> float | None:
    try:
        level = float(stage[column])
    except (KeyError, TypeError, ValueError):
        return None
    return level if math.isfinite(level) else None


def _not_judged_why(completed: bool, requests: int, seconds: float) -> str | None:
    """Why a step cannot be judged (None when it can): it did not complete, or its window is too short."""
    if not completed:
        return "did not complete"
    if seconds < MIN_STEP_WINDOW_S:
        return f"measured window {seconds:.1f} s < {MIN_STEP_WINDOW_S:g} s"
    if requests < MIN_STEP_REQUESTS:
        return f"{requests} requests < {MIN_STEP_REQUESTS} in the measured window"
    return None


def _stage_ok(exact: Mapping[tuple[int, str], _Window], index: int) -> _Window | None:
    """The successful requests of every capability in stage `index`, their histograms added."""
    parts = [w for (i, name), w in exact.items() if i == index and _ok_capability(name) is not None]
    if not parts:
        return None
    merged: dict[float, int] = {}
    for part in parts:
        for ms, n in part.buckets:
            merged[ms] = merged.get(ms, 0) + n
    start, end = parts[0].window or (0.0, 0.0)
    requests = sum(p.requests for p in parts)
    return _histogram_window(requests, 0, start, end, sorted(merged.items()))


def step_table(data: RunData, report: ReportConfig, axis: StepAxis = USERS_AXIS) -> list[StepRow]:
    """One row per recorded stage: its level on `axis`, users, window, throughput, latency, failures,
    GPU; plus per capability. A stage without a level (an empty cell in `axis.column`) is left out.
    A stage that did not complete, or whose window is too short, is marked `judged: false`."""
    if data.stages is None or data.stages.empty:
        return []
    exact = _exact_steps(data)
    ok_logged = any(_ok_capability(name) is not None for _, name in exact)
    rows: list[StepRow] = []
    no_level = 0
    for _, stage in data.stages.sort_values("stage").iterrows():
        index = int(stage["stage"])
        level = _level(stage, axis.column)
        if level is None:
            no_level += 1
            continue
        start, end = float(stage["start_epoch_s"]), float(stage["end_epoch_s"])
        warmup = min(report.warmup_s, (end - start) / 2)
        agg = exact.get((index, AGGREGATED))
        if agg is not None and agg.window is not None:
            rates, window, is_exact = _rates(agg, _stage_ok(exact, index), ok_logged), agg.window, True
            capabilities = {
                name: _rates(step, exact.get((index, f"{name}:{OK}")), ok_logged)
                for (i, name), step in exact.items()
                if i == index and name != AGGREGATED and not is_derived(name)
            }
        else:
            window = (start + warmup, end)
            approx = _history_step(data, *window)
            if approx is None:
                continue
            rates, capabilities, is_exact = _rates(approx, None, False), {}, False
        if data.requests is not None:
            goodput = data.goodput
            rates = _exact_step(rates, data.requests, window, None, goodput)
            capabilities = {
                name: _exact_step(step, data.requests, window, name, goodput)
                for name, step in capabilities.items()
            }
        gpu = gpu_figures(data, window[0], window[1], rates.requests)
        completed = str(stage.get("completed", "true")).lower() == "true"
        why = _not_judged_why(completed, rates.requests, window[1] - window[0])
        row = {
            "stage": index,
            "name": str(stage.get("name", f"stage {index + 1}")),
            "users": int(stage["users"]),
            "level": level,
            "completed": completed,
            **rates.model_dump(),
            "exact": is_exact,
            "judged": why is None,
            **({"not_judged_why": why} if why else {}),
            "capabilities": capabilities,
            "window_start_epoch_s": window[0],
            "window_end_epoch_s": window[1],
            **gpu.model_dump(),
        }
        rows.append(StepRow.model_validate(row))
    if no_level:
        data.notes.append(
            f"{data.prefix}_stages.csv: {no_level} stage(s) without a value in column {axis.column} left out"
        )
    return rows


def run_axis(data: RunData) -> StepAxis:
    """The steps' axis for this run: its load kind's, or users when the stages CSV lacks that column."""
    axis = step_axis_of(data.config.get("load"))
    if axis.column != USERS_AXIS.column and data.stages is not None and axis.column not in data.stages:
        data.notes.append(
            f"{data.prefix}_stages.csv: no {axis.column} column for the {axis.label} axis: "
            "steps are placed by users"
        )
        return USERS_AXIS
    return axis


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def saturation_point(steps: list[StepRow], rule: SaturationRule, unit: str = "users") -> Saturation | None:
    """The first step where added load stops adding throughput while p95 climbs, or failures pass the
    bound; `knee` is the step before it: the highest load the target sustained. `unit` names the
    steps' axis in the reason. p95 is the successful requests' (`StepRow.p95_ms`): fast failures under
    overload must not make latency look better. Steps not judged (cut short, too short) are skipped."""
    previous: StepRow | None = None
    for step in steps:
        if not step.judged:
            continue  # a step cut short, or too short to tell, decides nothing
        reason = None
        if step.requests and step.failure_ratio > rule.max_failure_ratio:
            reason = f"failure ratio {step.failure_ratio:.1%} > {rule.max_failure_ratio:.1%}"
        elif previous is not None and step.level > previous.level and previous.level > 0:
            before = _nan_if_none(previous.success_rps)
            ideal = before / previous.level * (step.level - previous.level)
            gain = _nan_if_none(step.success_rps) - before
            p95, p95_before = step.p95_ms, previous.p95_ms
            climbing = p95 is not None and p95_before and p95 > p95_before * (1 + rule.latency_rise)
            if ideal > 0 and gain < rule.min_gain * ideal and climbing:
                reason = (
                    f"+{format_level(step.level - previous.level)} {unit} added {gain:+.2f} req/s "
                    f"(< {rule.min_gain:.0%} of {ideal:.2f}) while p95 rose {p95_before:g} → {p95:g} ms"
                )
        if reason is not None:
            knee = previous
            return Saturation(
                stage=step.stage,
                users=step.users,
                level=step.level,
                reason=reason,
                knee_users=knee.users if knee else None,
                knee_level=knee.level if knee else None,
                knee_success_rps=knee.success_rps if knee else None,
            )
        if step.level >= (previous.level if previous else 0):
            previous = step
    return None


def gates_of(data: RunData) -> list[Gate]:
    gates = []
    slo = data.config.get("slo")
    for text in slo if isinstance(slo, list) else []:
        try:
            gates.append(parse_gate(str(text)))
        except ValueError as exc:
            data.notes.append(f"slo: {exc}")
    return gates


def judge(gates: list[Gate], scopes: Mapping[str, BaseModel], gpu: BaseModel) -> list[GateVerdict]:
    """Each gate's verdict on `scopes` (`total` and each capability) and the GPU figures in `gpu`.
    A gate without data fails: a check that cannot be made must not pass CI."""
    verdicts = []
    for gate in gates:
        if gate.metric in GPU_METRICS:
            value = getattr(gpu, gate.metric, None)
        else:
            scope = scopes.get(gate.scope)
            value = getattr(scope, gate.metric, None) if scope is not None else None
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            verdict = GateVerdict(gate=gate.text, scope=gate.scope, value=None, passed=False, why="no data")
        else:
            verdict = GateVerdict(
                gate=gate.text, scope=gate.scope, value=float(value), passed=gate.passes(value)
            )
        verdicts.append(verdict)
    return verdicts


def highest_passing_step(gates: list[Gate], steps: list[StepRow]) -> PassingStep | None:
    """The step with the highest level where every gate holds, judged on that step's own numbers."""
    best: StepRow | None = None
    for step in steps:
        if not step.requests or not step.judged:
            continue
        scopes: dict[str, BaseModel] = {"total": step, **step.capabilities}
        if all(v.passed for v in judge(gates, scopes, step)) and (best is None or step.level >= best.level):
            best = step
    if best is None:
        return None
    return PassingStep(stage=best.stage, users=best.users, level=best.level, success_rps=best.success_rps)


def _fit(model: type[M], raw: JsonObject, what: str, notes: list[str]) -> M:
    """`raw` as `model`; a key that does not fit (a hand-edited run.json) is left null, with a note."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        bad = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]} & raw.keys())
        if not bad:
            raise
    notes.extend(f"{what} {key}: not understood, left out" for key in bad)
    return model.model_validate({**raw, **dict.fromkeys(bad)})


def _section(model: type[M], raw: JsonValue, what: str, notes: list[str]) -> M | None:
    """A run.json section as `model`; None when it is absent, or does not fit (with a note)."""
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        notes.append(f"{what}: not understood, left out ({exc.errors()[0]['msg']})")
        return None


def measurement_of(summary: Mapping[str, CapabilitySummary]) -> Measurement:
    """Not valid when no request was recorded, or when (nearly) all requests failed with connection
    errors: nothing answered, so there is no capacity to judge."""
    total = summary.get("total")
    if total is None or not total.requests:
        return Measurement(valid=False, target_unreachable=False, why="no requests were recorded")
    refused = total.failures_by_category.get(CONNECTION_ERROR, 0)
    if refused >= UNREACHABLE_SHARE * total.requests:
        why = (
            f"target unreachable: {refused / total.requests:.1%} of {total.requests} requests failed with "
            f"connection errors (nothing answered); no capacity verdict"
        )
        return Measurement(valid=False, target_unreachable=True, why=why)
    return Measurement(valid=True, target_unreachable=False)


def _goodput_section(data: RunData) -> GoodputSection | None:
    """The config's goodput SLOs and whether they could be judged (a note says why not)."""
    raw = data.config.get("goodput")
    if raw is None:
        return None
    goodput = data.goodput
    if goodput is None:
        data.notes.append("config goodput section: not understood, goodput left out")
        return None
    slo = goodput.model_dump(exclude_none=True)
    if data.requests is not None:
        return GoodputSection(**slo, measured=True)
    request_log = object_of(data.config.get("output")).get("request_log", True)
    why = (
        "the request log is off (output.request_log: false)"
        if request_log is False
        else "the run left no request log"
    )
    data.notes.append(f"goodput: not measured: {why}; it is judged per request")
    return GoodputSection(**slo, measured=False, why=why)


def analyse(data: RunData, report: ReportConfig | None = None, axis: StepAxis | None = None) -> Results:
    """results.json: inputs, summary, steps, saturation, gates, GPU figures, metadata, measurement, notes.

    `report` defaults to the run config's report section, `axis` to the run's load kind's."""
    if report is None:
        try:
            report = ReportConfig.model_validate(data.config.get("report") or {})
        except ValueError as exc:
            data.notes.append(f"config report section ignored: {exc}")
            report = ReportConfig()
    axis = axis or run_axis(data)
    summary = capability_summary(data)
    goodput = _goodput_section(data)
    if data.requests is not None:
        summary = exact_summary(summary, data.requests, data.goodput)
        counted = summary["total"].requests if "total" in summary else None
        if counted is not None and counted != len(data.requests):
            data.notes.append(
                f"request log: {len(data.requests)} requests, Locust counted {counted} "
                "(a worker lost, or a run killed before its last batch)"
            )
    steps = step_table(data, report, axis)
    window = test_window(data)
    total = summary.get("total")
    gpu = gpu_figures(data, *window, total.requests if total else None) if window else GpuFigures()
    gates = gates_of(data)
    search = _section(SearchSection, data.run.get("search"), "run.json search", data.notes)
    verdicts = judge(gates, *_judged_on(search, steps, summary, gpu))
    run = data.run
    if not (total and total.requests):
        data.notes.append("no requests were recorded: nothing to summarise")
    given: JsonObject = {"config": data.config, "config_file": run.get("config_file")}
    inputs = _fit(Inputs, given, "run.json", data.notes)
    metadata = _fit(Metadata, {key: run.get(key) for key in Metadata.model_fields}, "run.json", data.notes)
    measurement = measurement_of(summary)
    saturation = saturation_point(steps, report.saturation, axis.label) if measurement.valid else None
    slo = SloVerdicts(
        gates=verdicts,
        passed=all(v.passed for v in verdicts),
        highest_passing_step=highest_passing_step(gates, steps) if gates and measurement.valid else None,
    )
    pipelines = pipeline_figures(data, summary)
    generator = _section(
        GeneratorSaturation, run.get("generator_saturation"), "run.json generator_saturation", data.notes
    )
    workers = workers_section(data)
    from inferswarm.report.edge import edge_section  # edge.py builds on this module's helpers

    edge = edge_section(data, steps)
    from inferswarm.report.tensor import tensor_section  # tensor.py builds on the results models

    tensor = tensor_section(data)
    settings = ReportSettings(
        warmup_s=report.warmup_s,
        saturation_rule=SaturationRuleSettings.model_validate(report.saturation.model_dump()),
        min_step_requests=MIN_STEP_REQUESTS,
        min_step_window_s=MIN_STEP_WINDOW_S,
        late_ms=LATE_MS,
    )
    measured = Results(
        schema_version=SCHEMA_VERSION,
        run_dir=str(data.run_dir),
        inputs=inputs,
        metadata=metadata,
        summary=summary,
        step_axis=Axis(column=axis.column, label=axis.label),
        steps=steps,
        saturation=saturation,
        slo=slo,
        pipelines=pipelines,
        gpu=gpu,
        generator_saturation=generator,
        workers=workers,
        report=settings,
        latency_source="request_log" if data.requests is not None else "locust_histograms",
        **({"goodput": goodput} if goodput is not None else {}),
        measurement=measurement,
        **({"edge": edge} if edge is not None else {}),
        **({"search": search} if search is not None else {}),
        **({"tensor": tensor} if tensor is not None else {}),
        notes=list(data.notes),
    )
    # Everything above is computed on the numbers as measured (gates and the saturation rule are judged
    # on them); results.json holds them rounded to 4 decimals, NaN and infinities as null.
    return Results.model_validate(_clean(measured.model_dump()))


def _judged_on(
    search: SearchSection | None, steps: list[StepRow], summary: Mapping[str, BaseModel], gpu: GpuFigures
) -> tuple[Mapping[str, BaseModel], BaseModel]:
    """What the gates are judged on: the whole run; for a capacity search, the trial it found to be the
    capacity (the highest passing), or, when none passed, the first (so the verdict fails): a search's
    failing trials are how it found the limit, not a failure of the service at its capacity."""
    if search is None or not search.trials:
        return summary, gpu
    chosen = next(
        (t for t in search.trials if t.passed and t.level == search.highest_passing), search.trials[0]
    )
    step = next((s for s in steps if s.stage == chosen.stage), None)
    if step is None:
        return summary, gpu
    return {"total": step, **step.capabilities}, step


def series_frame(data: RunData) -> pd.DataFrame | None:
    """The Aggregated history, one row per second, for the time-series figures."""
    if data.history is None:
        return None
    agg = data.history[data.history["Name"] == AGGREGATED].sort_values("Timestamp")
    return agg if not agg.empty else None
