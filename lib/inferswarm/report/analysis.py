"""The numbers of a report: per-capability summary, per-step table, saturation point, SLO verdicts.

Per-step latency percentiles come from the exact per-step histograms the run recorded
(`PREFIX_step_latency.csv`) with Locust's own percentile rule, so they match what Locust would print for
that window. Runs without them (plain `locust` runs, older runs) fall back to Locust's windowed history
percentiles, and the step is marked `exact: false`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from inferswarm.config import ReportConfig, SaturationRule
from inferswarm.derived import is_derived
from inferswarm.report.load import RunData
from inferswarm.report.pipelines import pipeline_figures
from inferswarm.report.workers import workers_section
from inferswarm.slo import GPU_METRICS, Gate, parse_gate

AGGREGATED = "Aggregated"
PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}
HISTORY_PERCENTILES = {"p50_ms": "50%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%"}


def percentile(histogram: Iterable[tuple[float, int]], q: float) -> float | None:
    """Locust's rule: walk from the slowest bucket down until fewer than (1 - q) of requests remain."""
    buckets = sorted(((float(ms), int(n)) for ms, n in histogram if n > 0), reverse=True)
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    keep = int(total * q)
    processed = 0
    for ms, n in buckets:
        processed += n
        if total - processed <= keep:
            return ms
    return buckets[-1][0]


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


def capability_summary(data: RunData) -> dict[str, dict[str, Any]]:
    """Run totals per capability and `total`, from Locust's stats, failures and the status codes."""
    out: dict[str, dict[str, Any]] = {}
    if data.stats is None:
        return out
    for _, row in data.stats.iterrows():
        name = str(row["Name"])
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
            "avg_ms": row.get("Average Response Time"),
            "max_ms": row.get("Max Response Time"),
        }
        for metric, column in HISTORY_PERCENTILES.items():
            entry[metric] = row.get(column) if requests else None
        entry["failures_by_category"] = {}
        entry["status_codes"] = {}
        out[key] = entry

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
    return out


def test_window(data: RunData) -> tuple[float, float] | None:
    """From the first stage's start to the last stage's end; else the stats history's span."""
    if data.stages is not None and not data.stages.empty:
        return float(data.stages["start_epoch_s"].min()), float(data.stages["end_epoch_s"].max())
    if data.history is not None and not data.history.empty:
        return float(data.history["Timestamp"].min()), float(data.history["Timestamp"].max())
    return None


def gpu_figures(data: RunData, start: float, end: float, requests: int | None) -> dict[str, Any]:
    """Peak memory, mean utilization and energy per request over (start, end], from every GPU source."""
    tel = data.telemetry
    if tel is None:
        return {}
    out: dict[str, Any] = {}
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
    return out


def _per_series(sid: np.ndarray, value: np.ndarray, ufunc: Any, n: int, fill: float) -> np.ndarray:
    result = np.full(n, fill)
    ufunc.at(result, sid, value)
    return result


def _history_step(data: RunData, start: float, end: float) -> dict[str, Any] | None:
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
    seconds = max(float(last["Timestamp"]) - base_t, 1e-9)
    step: dict[str, Any] = {
        "requests": int(last["Total Request Count"] - base_req),
        "failures": int(last["Total Failure Count"] - base_fail),
        "seconds": seconds,
    }
    for metric, column in HISTORY_PERCENTILES.items():
        step[metric] = float(inside[column].median()) if column in inside else None
    step["max_ms"] = float(inside["100%"].max()) if "100%" in inside else None
    return step


def _exact_steps(data: RunData) -> dict[tuple[int, str], dict[str, Any]]:
    out: dict[tuple[int, str], dict[str, Any]] = {}
    if data.steps is None or data.step_latency is None:
        return out
    hist = data.step_latency.groupby(["stage", "name"])
    for _, row in data.steps.iterrows():
        key = (int(row["stage"]), str(row["name"]))
        seconds = float(row["window_end_epoch_s"]) - float(row["window_start_epoch_s"])
        step: dict[str, Any] = {
            "requests": int(row["requests"]),
            "failures": int(row.get("failures", 0) or 0),
            "seconds": max(seconds, 1e-9),
            "window": (float(row["window_start_epoch_s"]), float(row["window_end_epoch_s"])),
        }
        buckets: list[tuple[float, int]] = []
        if key in hist.groups:
            group = hist.get_group(key)
            buckets = list(zip(group["response_time_ms"], group["count"].astype(int), strict=True))
        for metric, q in PERCENTILES.items():
            step[metric] = percentile(buckets, q)
        step["max_ms"] = max((ms for ms, n in buckets if n > 0), default=None)
        out[key] = step
    return out


def _rates(step: dict[str, Any]) -> dict[str, Any]:
    requests, failures, seconds = step["requests"], step["failures"], step["seconds"]
    ratio = failures / requests if requests else 0.0
    return {
        **{k: v for k, v in step.items() if k != "window"},
        "rps": requests / seconds,
        "success_rps": (requests - failures) / seconds,
        "failure_ratio": ratio,
    }


def step_table(data: RunData, report: ReportConfig) -> list[dict[str, Any]]:
    """One row per recorded stage: users, window, throughput, latency, failures, GPU; plus per capability."""
    if data.stages is None or data.stages.empty:
        return []
    exact = _exact_steps(data)
    rows: list[dict[str, Any]] = []
    for _, stage in data.stages.sort_values("stage").iterrows():
        index = int(stage["stage"])
        start, end = float(stage["start_epoch_s"]), float(stage["end_epoch_s"])
        warmup = min(report.warmup_s, (end - start) / 2)
        row: dict[str, Any] = {
            "stage": index,
            "name": str(stage.get("name", f"stage {index + 1}")),
            "users": int(stage["users"]),
            "completed": str(stage.get("completed", "true")).lower() == "true",
        }
        agg = exact.get((index, AGGREGATED))
        if agg is not None:
            row.update(_rates(agg), exact=True)
            window = agg["window"]
            row["capabilities"] = {
                name: _rates(step)
                for (i, name), step in exact.items()
                if i == index and name != AGGREGATED and not is_derived(name)
            }
        else:
            window = (start + warmup, end)
            approx = _history_step(data, *window)
            if approx is None:
                continue
            row.update(_rates(approx), exact=False, capabilities={})
        row["window_start_epoch_s"], row["window_end_epoch_s"] = window
        row.update(gpu_figures(data, window[0], window[1], row.get("requests")))
        rows.append(row)
    return rows


def saturation_point(steps: list[dict[str, Any]], rule: SaturationRule) -> dict[str, Any] | None:
    """The first step where added users stop adding throughput while p95 climbs, or failures pass the
    bound; `knee` is the step before it: the highest load the target sustained."""
    previous: dict[str, Any] | None = None
    for step in steps:
        reason = None
        if step["requests"] and step["failure_ratio"] > rule.max_failure_ratio:
            reason = f"failure ratio {step['failure_ratio']:.1%} > {rule.max_failure_ratio:.1%}"
        elif previous is not None and step["users"] > previous["users"] and previous["users"] > 0:
            ideal = previous["success_rps"] / previous["users"] * (step["users"] - previous["users"])
            gain = step["success_rps"] - previous["success_rps"]
            p95, p95_before = step.get("p95_ms"), previous.get("p95_ms")
            climbing = p95 is not None and p95_before and p95 > p95_before * (1 + rule.latency_rise)
            if ideal > 0 and gain < rule.min_gain * ideal and climbing:
                reason = (
                    f"+{step['users'] - previous['users']} users added {gain:+.2f} req/s "
                    f"(< {rule.min_gain:.0%} of {ideal:.2f}) while p95 rose {p95_before:g} → {p95:g} ms"
                )
        if reason is not None:
            knee = previous
            return {
                "stage": step["stage"],
                "users": step["users"],
                "reason": reason,
                "knee_users": knee["users"] if knee else None,
                "knee_success_rps": knee["success_rps"] if knee else None,
            }
        if step["users"] >= (previous["users"] if previous else 0):
            previous = step
    return None


def gates_of(data: RunData) -> list[Gate]:
    gates = []
    for text in data.config.get("slo", []) or []:
        try:
            gates.append(parse_gate(str(text)))
        except ValueError as exc:
            data.notes.append(f"slo: {exc}")
    return gates


def judge(gates: list[Gate], summary: dict[str, dict[str, Any]], gpu: dict[str, Any]) -> list[dict[str, Any]]:
    """Each gate's verdict. A gate without data fails: a check that cannot be made must not pass CI."""
    verdicts = []
    for gate in gates:
        if gate.metric in GPU_METRICS:
            value = gpu.get(gate.metric)
        else:
            value = summary.get(gate.scope, {}).get(gate.metric)
        verdict: dict[str, Any]
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            verdict = {
                "gate": gate.text,
                "scope": gate.scope,
                "value": None,
                "passed": False,
                "why": "no data",
            }
        else:
            verdict = {
                "gate": gate.text,
                "scope": gate.scope,
                "value": float(value),
                "passed": gate.passes(value),
            }
        verdicts.append(verdict)
    return verdicts


def highest_passing_step(gates: list[Gate], steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step with the most users where every gate holds, judged on that step's own numbers."""
    best = None
    for step in steps:
        if not step.get("requests"):
            continue
        scopes = {"total": step, **step.get("capabilities", {})}
        gpu = {k: step.get(k) for k in GPU_METRICS}
        if all(v["passed"] for v in judge(gates, scopes, gpu)) and (
            best is None or step["users"] >= best["users"]
        ):
            best = step
    return (
        {"stage": best["stage"], "users": best["users"], "success_rps": best["success_rps"]} if best else None
    )


def analyse(data: RunData, report: ReportConfig | None = None) -> dict[str, Any]:
    """results.json: inputs, summary, steps, saturation, gates, GPU figures, metadata, notes."""
    if report is None:
        try:
            report = ReportConfig.model_validate(data.config.get("report") or {})
        except ValueError as exc:
            data.notes.append(f"config report section ignored: {exc}")
            report = ReportConfig()
    summary = capability_summary(data)
    steps = step_table(data, report)
    window = test_window(data)
    total_requests = summary.get("total", {}).get("requests")
    gpu = gpu_figures(data, *window, total_requests) if window else {}
    gates = gates_of(data)
    verdicts = judge(gates, summary, gpu)
    run = data.run
    if not summary.get("total", {}).get("requests"):
        data.notes.append("no requests were recorded: nothing to summarise")
    results = {
        "schema": 1,
        "run_dir": str(data.run_dir),
        "inputs": {"config": data.config, "config_file": run.get("config_file")},
        "metadata": {
            key: run.get(key)
            for key in ("name", "versions", "host", "mode", "started_at", "ended_at", "duration_s", "status")
        },
        "summary": summary,
        "steps": steps,
        "saturation": saturation_point(steps, report.saturation),
        "slo": {
            "gates": verdicts,
            "passed": all(v["passed"] for v in verdicts),
            "highest_passing_step": highest_passing_step(gates, steps) if gates else None,
        },
        "pipelines": pipeline_figures(data, summary),
        "gpu": gpu,
        "generator_saturation": run.get("generator_saturation"),
        "workers": workers_section(run),
        "report": {"warmup_s": report.warmup_s, "saturation_rule": report.saturation.model_dump()},
        "notes": list(data.notes),
    }
    cleaned: dict[str, Any] = _clean(results)
    return cleaned


def series_frame(data: RunData) -> pd.DataFrame | None:
    """The Aggregated history, one row per second, for the time-series figures."""
    if data.history is None:
        return None
    agg = data.history[data.history["Name"] == AGGREGATED].sort_values("Timestamp")
    return agg if not agg.empty else None
