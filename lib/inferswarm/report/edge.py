"""The edge section of a report: edge answers vs cloud escalations, answers by source, confidence, the
not-ready count and latency split by edge vs cloud, per capability over the run and per step; the `fps`
load kind's frames per second; the `readiness` load kind's time until every detector was ready.

Everything comes from files a run writes anyway: the `<capability>:edge_ms`, `:cloud_ms`,
`:confidence_pct` and `:source_<name>` entries (`inferswarm.derived`) in Locust's stats and in the
per-step files, the failures table (category `not_ready`), run.json's `readiness` section and
PREFIX_readiness.csv. A run without any of them has no edge section.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from inferswarm.derived import CLOUD_MS, CONFIDENCE_PCT, EDGE_MS, SOURCE_PREFIX, split_entry
from inferswarm.histograms import percentile
from inferswarm.report.analysis import failure_category
from inferswarm.report.load import RunData, object_of
from inferswarm.report.results import (
    Distribution,
    EdgeFigures,
    EdgeSection,
    EdgeStep,
    ReadinessDetector,
    ReadinessFigures,
    ReadinessIteration,
    StepRow,
)

NOT_READY = "not_ready"
EDGE_METRICS = (EDGE_MS, CLOUD_MS, CONFIDENCE_PCT)
MAX_TIMELINE = 500
"""At most this many iterations in the timeline (the CSV has them all)."""
FPS_SHAPE = "fps"
DISTRIBUTION_COLUMNS = {"p50": "50%", "p90": "90%", "p95": "95%", "p99": "99%"}
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def edge_metric(name: str) -> tuple[str, str] | None:
    """(capability, metric) for an edge entry's name (`edge_ms`, `cloud_ms`, `confidence_pct`,
    `source_<name>`), else None."""
    split = split_entry(name)
    if split is None:
        return None
    if split[1] in EDGE_METRICS or split[1].startswith(SOURCE_PREFIX):
        return split
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _row_distribution(row: Mapping[str, Any]) -> Distribution:
    """avg and percentiles of a Locust stats row."""
    values = {key: _number(row.get(column)) for key, column in DISTRIBUTION_COLUMNS.items()}
    return Distribution(avg=_number(row.get("Average Response Time")), **values)


def _histogram_distribution(buckets: Sequence[tuple[float, int]]) -> Distribution | None:
    """avg and percentiles of a histogram, with Locust's percentile rule (`histograms.percentile`)."""
    total = sum(n for _, n in buckets)
    if not total:
        return None
    avg = sum(ms * n for ms, n in buckets) / total
    return Distribution(avg=avg, **{key: percentile(buckets, q) for key, q in QUANTILES.items()})


def _figures(
    answers: int,
    counts: Mapping[str, int],
    distributions: Mapping[str, Distribution | None],
    not_ready: int | None,
) -> EdgeFigures:
    edge, cloud = counts.get(EDGE_MS, 0), counts.get(CLOUD_MS, 0)
    sources = {
        metric.removeprefix(SOURCE_PREFIX): n
        for metric, n in sorted(counts.items())
        if metric.startswith(SOURCE_PREFIX)
    }
    given: dict[str, Any] = {
        "answers": answers,
        "edge": edge,
        "cloud": cloud,
        "edge_share": edge / (edge + cloud) if edge + cloud else None,
        "by_source": sources,
    }
    if not_ready is not None:
        given["not_ready"] = not_ready
    for metric in EDGE_METRICS:
        if distributions.get(metric) is not None:
            given[metric] = distributions[metric]
    return EdgeFigures.model_validate(given)


def _not_ready_counts(data: RunData) -> dict[str, int]:
    counts: dict[str, int] = {}
    if data.failures is None:
        return counts
    for _, row in data.failures.iterrows():
        if failure_category(str(row["Error"])) == NOT_READY:
            name = str(row["Name"])
            counts[name] = counts.get(name, 0) + int(row["Occurrences"])
    return counts


def run_figures(data: RunData) -> dict[str, EdgeFigures]:
    """Per capability with edge entries, over the whole run (Locust's stats and failures)."""
    if data.stats is None:
        return {}
    answers: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    distributions: dict[str, dict[str, Distribution | None]] = {}
    for _, row in data.stats.iterrows():
        name = str(row["Name"])
        requests = int(row["Request Count"])
        split = edge_metric(name)
        if split is None:
            answers[name] = requests - int(_number(row.get("Failure Count")) or 0)
            continue
        capability, metric = split
        counts.setdefault(capability, {})[metric] = requests
        if metric in EDGE_METRICS and requests:
            distributions.setdefault(capability, {})[metric] = _row_distribution(dict(row))
    not_ready = _not_ready_counts(data)
    return {
        capability: _figures(
            answers.get(capability, 0),
            counts[capability],
            distributions.get(capability, {}),
            not_ready.get(capability, 0),
        )
        for capability in sorted(counts)
    }


def step_figures(data: RunData, steps: Iterable[StepRow]) -> list[EdgeStep]:
    """Per step and capability with edge entries, over each step's measured window (the per-step files)."""
    if data.steps is None:
        return []
    histograms: dict[tuple[int, str], list[tuple[float, int]]] = {}
    if data.step_latency is not None:
        for key, group in data.step_latency.groupby(["stage", "name"]):
            stage, name = cast(tuple[Any, Any], key)
            buckets = zip(group["response_time_ms"], group["count"].astype(int), strict=True)
            histograms[(int(stage), str(name))] = [(float(ms), int(n)) for ms, n in buckets]
    answers: dict[tuple[int, str], int] = {}
    counts: dict[tuple[int, str], dict[str, int]] = {}
    for _, row in data.steps.iterrows():
        stage, name = int(row["stage"]), str(row["name"])
        requests = int(row["requests"])
        split = edge_metric(name)
        if split is None:
            answers[(stage, name)] = requests - int(_number(row.get("failures")) or 0)
        else:
            counts.setdefault((stage, split[0]), {})[split[1]] = requests
    out = []
    for step in steps:
        capabilities = {}
        for (stage, capability), metrics in sorted(counts.items()):
            if stage != step.stage:
                continue
            distributions = {
                metric: _histogram_distribution(histograms.get((stage, f"{capability}:{metric}"), []))
                for metric in EDGE_METRICS
            }
            capabilities[capability] = _figures(
                answers.get((stage, capability), 0), metrics, distributions, None
            )
        if capabilities:
            out.append(
                EdgeStep(stage=step.stage, name=step.name, level=step.level, capabilities=capabilities)
            )
    return out


def fps_of(data: RunData, steps: Sequence[StepRow]) -> float | None:
    """Frames per second end to end of an `fps` run: its step's successful requests per second."""
    load = object_of(data.config.get("load"))
    if load.get("shape") != FPS_SHAPE or not steps:
        return None
    return steps[0].success_rps


def _timeline(data: RunData, first_connection: float | None) -> list[ReadinessIteration]:
    """Iterations from PREFIX_readiness.csv, each only when its answers differ from the iteration before."""
    path = data.run_dir / f"{data.prefix}_readiness.csv"
    if not path.is_file():
        data.notes.append(f"{path.name}: missing (no readiness timeline)")
        return []
    try:
        frame = pd.read_csv(path, usecols=["iteration", "start_epoch_s", "answer"])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        data.notes.append(f"{path.name}: unreadable ({str(exc).splitlines()[0]})")
        return []
    frame["iteration"] = pd.to_numeric(frame["iteration"], errors="coerce")
    frame["start_epoch_s"] = pd.to_numeric(frame["start_epoch_s"], errors="coerce")
    frame = frame.dropna()
    rows: list[ReadinessIteration] = []
    previous: dict[str, int] | None = None
    groups = list(frame.groupby("iteration"))
    for index, (iteration, group) in enumerate(groups):
        answers = {str(k): int(v) for k, v in sorted(group["answer"].astype(str).value_counts().items())}
        last = index == len(groups) - 1
        if answers == previous and not last:
            continue
        previous = answers
        start = float(group["start_epoch_s"].min())
        t_s = round(start - first_connection, 3) if first_connection is not None else None
        rows.append(ReadinessIteration(iteration=int(cast(Any, iteration)), t_s=t_s, answers=answers))
    if len(rows) > MAX_TIMELINE:
        data.notes.append(
            f"{path.name}: readiness timeline cut to its first {MAX_TIMELINE} changes of {len(rows)}"
        )
        rows = rows[: MAX_TIMELINE - 1] + rows[-1:]
    return rows


def readiness_figures(data: RunData) -> ReadinessFigures | None:
    """The readiness run's result (run.json's `readiness` section) and its timeline; None for other runs."""
    section = data.run.get("readiness")
    if not isinstance(section, dict):
        return None
    detectors_raw = object_of(section.get("detectors"))
    detectors = {}
    for name, raw in detectors_raw.items():
        entry = object_of(raw)
        iteration = entry.get("first_edge_iteration")
        detectors[name] = ReadinessDetector(
            first_edge_iteration=iteration if isinstance(iteration, int) else None,
            first_edge_s=_number(entry.get("first_edge_s")),
            endpoint_ready_s=_number(entry.get("endpoint_ready_s")),
        )
    ready_iteration = section.get("ready_iteration")
    route_polls = section.get("route_polls")
    iterations = section.get("iterations")
    why = section.get("why")
    first_connection = _number(section.get("first_connection_epoch_s"))
    return ReadinessFigures(
        outcome=str(section.get("outcome") or "unknown"),
        **({"why": str(why)} if why else {}),
        interval_s=_number(section.get("interval_s")),
        timeout_s=_number(section.get("timeout_s")),
        time_to_all_ready_s=_number(section.get("time_to_all_ready_s")),
        ready_iteration=ready_iteration if isinstance(ready_iteration, int) else None,
        iterations=iterations if isinstance(iterations, int) else 0,
        health_ready_s=_number(object_of(section.get("health_ready")).get("endpoint_ready_s")),
        route_polls=route_polls if isinstance(route_polls, int) else 0,
        detectors=detectors,
        timeline=_timeline(data, first_connection),
    )


def edge_section(data: RunData, steps: Sequence[StepRow]) -> EdgeSection | None:
    """The edge section, or None for a run with no edge data (an `fps` run always has one)."""
    capabilities = run_figures(data)
    readiness = readiness_figures(data)
    fps = fps_of(data, steps)
    if not capabilities and readiness is None and fps is None:
        return None
    given: dict[str, Any] = {"capabilities": capabilities, "steps": step_figures(data, steps)}
    if fps is not None:
        given["fps"] = fps
    if readiness is not None:
        given["readiness"] = readiness
    return EdgeSection.model_validate(given)
