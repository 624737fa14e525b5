"""`inferswarm trend RUN_DIR...`: the key figures of many runs of one config over time, and the runs where
a figure moved beyond its run-to-run noise.

Each run is judged against its own history: the baseline of run i for one metric is the median of that
metric over the last `window` (5) earlier runs of the same config that can serve as baseline, and its
noise a robust spread, 1.4826 x MAD (the standard deviation for normal noise), never below the metric's
floor: a relative floor (2 % of the median) and an absolute one (1 ms of latency, 0.2 point of failure
ratio, ...), so identical synthetic values do not make every tiny change "significant". A run is flagged
when |x - median| > k x noise (k = 3), as a `regression` in the metric's bad direction, an `improvement`
in its good one. The capacity (a load level) moves by whole steps: a shift of one step (the search's
resolution, or the gap between steps) is never flagged, as in `compare`.

- Fewer than `MIN_HISTORY` (3) earlier runs: "not enough history", no flag.
- A regression does not join the baseline of the runs after it (for that metric), so a slower release
  does not become the new normal: it stays flagged until it is fixed, or until the runs before the change
  are left out of the trend. Improvements do join it (a faster release is the new normal; falling back
  from it is a regression).
- A run without a valid measurement (target unreachable) is shown, flagged `invalid`, never judged and
  never part of a baseline.

`collect` reads run directories (results.json as plain JSON, so that figures newer than this module, such
as `tensor`, are read when present and nothing refuses a file with more keys); `analyse` judges them;
`trend_render.write_trend` writes trend.md, trend.json and trend.html.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inferswarm.load.base import RATE_AXIS, USERS_AXIS
from inferswarm.report.results import SCHEMA_VERSION
from inferswarm.rundir import ORCH_KIND, RUN_JSON, iso, read_run_json

if TYPE_CHECKING:
    pass

RESULTS_JSON = "results.json"
DEFAULT_K = 3.0
DEFAULT_WINDOW = 5
MIN_HISTORY = 3
"""Earlier runs a baseline needs; with fewer, a run is "not enough history"."""
MAD_SCALE = 1.4826
"""1.4826 x MAD estimates the standard deviation of normal noise, robust to outliers."""

Better = Literal["higher", "lower"]
Status = Literal["regression", "improvement", "ok", "not enough history", "missing", "invalid"]


@dataclass(frozen=True)
class Metric:
    """One trended figure: which way is better, its unit and the floors of its noise."""

    name: str
    better: Better
    unit: str
    relative_floor: float
    """The noise is at least this share of the baseline median."""
    absolute_floor: float
    """...and at least this, in the metric's unit."""
    stepped: bool = False
    """A load level (the capacity): a shift of one step (the run's resolution) is never flagged."""
    what: str = ""


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("throughput_rps", "higher", "req/s", 0.02, 0.0, what="successful requests/s, whole run"),
        Metric("knee_rps", "higher", "req/s", 0.02, 0.0, what="successful requests/s at the saturation knee"),
        Metric(
            "capacity",
            "higher",
            "",
            0.02,
            0.0,
            stepped=True,
            what="the capacity search's result, else the highest step that met every SLO gate",
        ),
        Metric("p95_ms", "lower", "ms", 0.02, 1.0, what="p95 of successful requests"),
        Metric("p99_ms", "lower", "ms", 0.02, 1.0, what="p99 of successful requests"),
        Metric("failure_ratio", "lower", "", 0.02, 0.002, what="failed / all requests"),
        Metric("goodput_rps", "higher", "req/s", 0.02, 0.0, what="requests/s that met every goodput SLO"),
        Metric("gpu_util_pct", "higher", "%", 0.02, 1.0, what="mean GPU utilization over the test"),
        Metric("overhead_ms", "lower", "ms", 0.02, 1.0, what="tensor runs: median network overhead"),
        Metric("check_failures", "lower", "", 0.0, 0.25, what="preflight checks that failed"),
    )
}


@dataclass
class RunPoint:
    """One load run's key figures."""

    run_dir: Path
    name: str
    started_epoch_s: float | None
    started: str | None
    """ISO 8601 (UTC) of `started_epoch_s`."""
    status: str | None
    figures: dict[str, float | None]
    """Every metric of METRICS; None when the run does not have it."""
    valid: bool = True
    """results.json `measurement.valid` (true when absent: files written before it existed)."""
    why_invalid: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    """The unit of a metric whose unit depends on the run (capacity: users or requests/s offered)."""
    resolution: float | None = None
    """The run's load-level step (search resolution, or the smallest gap between steps)."""

    def unit(self, metric: str) -> str:
        return self.units.get(metric, METRICS[metric].unit)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "name": self.name,
            "started_epoch_s": self.started_epoch_s,
            "started": self.started,
            "status": self.status,
            "valid": self.valid,
            "why_invalid": self.why_invalid,
            "figures": dict(self.figures),
            "units": {m: self.unit(m) for m in self.figures},
            "resolution": self.resolution,
        }


class TrendInputError(ValueError):
    """Nothing to trend (no run directories, a path that does not exist); the message is one line."""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _get(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _epoch(run: Mapping[str, Any], results: Mapping[str, Any]) -> float | None:
    epoch = _number(run.get("start_epoch_s"))
    if epoch is not None:
        return epoch
    for text in (run.get("started_at"), _get(results, "metadata", "started_at")):
        if isinstance(text, str) and text:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def _capacity(results: Mapping[str, Any]) -> tuple[float | None, str, float | None]:
    """(capacity, its unit, the load-level resolution)."""
    levels: set[float] = set()
    steps = results.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            level = _number(step.get("level", step.get("users")))
            if level is not None:
                levels.add(level)
    ordered = sorted(levels)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    step_size = min(gaps) if gaps else None
    search = results.get("search")
    if isinstance(search, dict):
        unit = RATE_AXIS.label if search.get("over") == "rps" else USERS_AXIS.label
        resolution = _number(search.get("resolution")) or step_size
        return _number(search.get("highest_passing")), unit, resolution
    label = _get(results, "step_axis", "label")
    passing = _get(results, "slo", "highest_passing_step")
    level = _number(_get(passing, "level")) if isinstance(passing, dict) else None
    if level is None and isinstance(passing, dict):
        level = _number(passing.get("users"))
    return level, label if isinstance(label, str) else USERS_AXIS.label, step_size


def figures_of(
    run: Mapping[str, Any], results: Mapping[str, Any]
) -> tuple[dict[str, float | None], str, float | None]:
    """The metrics of one run (its run.json and results.json), the capacity's unit and the resolution."""
    total = _get(results, "summary", "total")
    total = total if isinstance(total, dict) else {}
    capacity, unit, resolution = _capacity(results)
    figures: dict[str, float | None] = {
        "throughput_rps": _number(total.get("success_rps")),
        "knee_rps": _number(_get(results, "saturation", "knee_success_rps")),
        "capacity": capacity,
        "p95_ms": _number(total.get("p95_ms")),
        "p99_ms": _number(total.get("p99_ms")),
        "failure_ratio": _number(total.get("failure_ratio")),
        "goodput_rps": _number(total.get("goodput_rps")),
        "gpu_util_pct": _number(_get(results, "gpu", "gpu_util_mean_pct")),
        "overhead_ms": _number(_get(results, "tensor", "overhead_ms_p50")),
        "check_failures": _number(_get(run, "preflight", "summary", "failed")),
    }
    return figures, unit, resolution


def read_point(run_dir: Path) -> RunPoint | str:
    """The run's figures, or one line saying why it is not trended."""
    run = read_run_json(run_dir)
    if run is None and (run_dir / RUN_JSON).exists():
        return f"{run_dir}: skipped: {RUN_JSON} unreadable"
    run = run or {}
    if run.get("kind") == ORCH_KIND:
        return f"{run_dir}: skipped: an orchestrator-matrix run (see its own report)"
    path = run_dir / RESULTS_JSON
    if not path.is_file():
        return f"{run_dir}: skipped: no {RESULTS_JSON} (run `inferswarm report` on it)"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{run_dir}: skipped: {RESULTS_JSON} unreadable ({type(exc).__name__})"
    if not isinstance(results, dict) or not isinstance(results.get("summary"), dict):
        return f"{run_dir}: skipped: {RESULTS_JSON} is not a report's results"
    if results.get("schema") != SCHEMA_VERSION:
        return (
            f"{run_dir}: skipped: results.json schema {results.get('schema')!r}, this reads {SCHEMA_VERSION}"
        )
    name = run.get("name") or _get(results, "metadata", "name") or run_dir.name
    figures, unit, resolution = figures_of(run, results)
    measurement = results.get("measurement")
    valid = not (isinstance(measurement, dict) and measurement.get("valid") is False)
    why = measurement.get("why") if isinstance(measurement, dict) and not valid else None
    epoch = _epoch(run, results)
    status = run.get("status") or _get(results, "metadata", "status")
    return RunPoint(
        run_dir=run_dir,
        name=str(name),
        started_epoch_s=epoch,
        started=iso(epoch) if epoch is not None else None,
        status=str(status) if status is not None else None,
        figures=figures,
        valid=valid,
        why_invalid=str(why) if why else ("target unreachable" if not valid else None),
        units={"capacity": unit},
        resolution=resolution,
    )


def is_run_dir(path: Path) -> bool:
    return (path / RUN_JSON).is_file() or (path / RESULTS_JSON).is_file()


def run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Each path a run directory, or a folder whose sub-directories are run directories (one level).
    Raises TrendInputError for a path that is not a directory."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise TrendInputError(f"{path}: not a directory")
        if is_run_dir(path):
            found.append(path)
            continue
        found += sorted(child for child in path.iterdir() if child.is_dir() and is_run_dir(child))
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    return list(unique)


def collect(paths: Sequence[Path], notes: list[str] | None = None) -> list[RunPoint]:
    """The load runs under `paths` with a results.json, by config name, then start time (the run
    directory's name when a run has none). Why a run was skipped goes to `notes`. Raises TrendInputError
    for a path that is not a directory."""
    points: list[RunPoint] = []
    for run_dir in run_dirs(paths):
        point = read_point(run_dir)
        if isinstance(point, str):
            if notes is not None:
                notes.append(point)
            continue
        if point.started_epoch_s is None and notes is not None:
            notes.append(f"{run_dir}: no start time in {RUN_JSON}: placed by its directory name")
        points.append(point)
    return sorted(
        points,
        key=lambda p: (
            p.name,
            p.started_epoch_s is None,
            p.started_epoch_s if p.started_epoch_s is not None else 0.0,
            p.run_dir.name,
        ),
    )


@dataclass(frozen=True)
class Baseline:
    """A metric's baseline for one run: what its earlier runs say."""

    median: float
    noise: float
    """1.4826 x MAD of the window, or the floor when that is larger."""
    runs: int
    threshold: float
    """How far from the median a value may be before it is flagged: k x noise, at least one step."""
    floored: bool
    """Whether the noise is the metric's floor (the runs varied less than that)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "noise": self.noise,
            "runs": self.runs,
            "threshold": self.threshold,
            "floored": self.floored,
        }


@dataclass(frozen=True)
class Cell:
    """One metric of one run, judged."""

    metric: str
    value: float | None
    status: Status
    baseline: Baseline | None = None

    @property
    def flagged(self) -> bool:
        return self.status in ("regression", "improvement")

    @property
    def deviation(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline.median

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "status": self.status,
            "baseline": self.baseline.to_json() if self.baseline is not None else None,
            "deviation": self.deviation,
        }


@dataclass(frozen=True)
class Flag:
    """A flagged run: a metric beyond its noise, or a run without a valid measurement."""

    config: str
    run_dir: Path
    started: str | None
    kind: Literal["regression", "improvement", "invalid"]
    metric: str | None
    value: float | None = None
    baseline: Baseline | None = None
    k: float = DEFAULT_K
    why: str | None = None
    newest: bool = False
    """The config's newest run (what a CI gate judges)."""

    @property
    def text(self) -> str:
        where = f"{self.run_dir.name}"
        if self.kind == "invalid" or self.metric is None or self.baseline is None or self.value is None:
            return f"{where}: INVALID: no valid measurement ({self.why or 'target unreachable'})"
        b = self.baseline
        unit = METRICS[self.metric].unit
        suffix = f" {unit}" if unit and unit != "ms" else ""
        noise = (
            f"{format_value(self.metric, b.threshold)} = one step"
            if b.threshold > self.k * b.noise
            else f"{self.k:g} x noise = {format_value(self.metric, b.threshold)}"
        )
        return (
            f"{where}: {self.kind.upper() if self.kind == 'regression' else self.kind}: {self.metric} "
            f"{format_value(self.metric, self.value)} vs baseline {format_value(self.metric, b.median)} "
            f"± {format_value(self.metric, b.noise)}{suffix} ({noise}; median of {b.runs} run(s))"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "run_dir": str(self.run_dir),
            "started": self.started,
            "kind": self.kind,
            "metric": self.metric,
            "value": self.value,
            "baseline": self.baseline.to_json() if self.baseline is not None else None,
            "why": self.why,
            "newest": self.newest,
            "text": self.text,
        }


@dataclass
class ConfigTrend:
    """One config's runs in time order, a row of judged cells per run, and its flags."""

    name: str
    points: list[RunPoint]
    cells: list[dict[str, Cell]]
    flags: list[Flag]
    metrics: list[str]
    """The metrics at least one of its runs has (in METRICS order)."""

    @property
    def newest_regressions(self) -> list[Flag]:
        return [f for f in self.flags if f.newest and f.kind == "regression"]


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "failure_ratio":
        return f"{100 * value:.2f}%"
    if metric == "check_failures":
        return f"{value:g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def baseline_of(metric: Metric, history: Sequence[float], k: float, step: float | None) -> Baseline:
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    floor = max(metric.relative_floor * abs(median), metric.absolute_floor)
    noise = max(MAD_SCALE * mad, floor)
    threshold = k * noise
    if metric.stepped and step:
        threshold = max(threshold, step * (1 + 1e-9))
    return Baseline(median, noise, len(history), threshold, floored=noise == floor and floor > 0)


def judge(value: float, metric: Metric, baseline: Baseline) -> Status:
    deviation = value - baseline.median
    if abs(deviation) <= baseline.threshold:
        return "ok"
    worse = deviation < 0 if metric.better == "higher" else deviation > 0
    return "regression" if worse else "improvement"


def analyse_config(
    name: str, points: Sequence[RunPoint], k: float, window: int, metrics: Sequence[str]
) -> ConfigTrend:
    """Judge each run of one config (time order) against the runs before it."""
    cells: list[dict[str, Cell]] = [{} for _ in points]
    flags: list[Flag] = []
    last = len(points) - 1
    for index, point in enumerate(points):
        if not point.valid:
            flags.append(
                Flag(
                    name,
                    point.run_dir,
                    point.started,
                    "invalid",
                    None,
                    why=point.why_invalid,
                    newest=index == last,
                )
            )
    shown = [m for m in metrics if any(p.figures.get(m) is not None for p in points)]
    for metric_name in shown:
        metric = METRICS[metric_name]
        usable: list[int] = []  # earlier runs that can serve as this metric's baseline
        for index, point in enumerate(points):
            value = point.figures.get(metric_name)
            if not point.valid:
                cells[index][metric_name] = Cell(metric_name, value, "invalid")
                continue
            if value is None:
                cells[index][metric_name] = Cell(metric_name, None, "missing")
                continue
            unit = point.unit(metric_name)
            earlier = [j for j in usable if points[j].unit(metric_name) == unit][-window:]
            if len(earlier) < MIN_HISTORY:
                cells[index][metric_name] = Cell(metric_name, value, "not enough history")
                usable.append(index)
                continue
            history = [v for j in earlier if (v := points[j].figures.get(metric_name)) is not None]
            baseline = baseline_of(metric, history, k, point.resolution)
            status = judge(value, metric, baseline)
            cells[index][metric_name] = Cell(metric_name, value, status, baseline)
            if status != "regression":
                usable.append(index)
            if status in ("regression", "improvement"):
                flags.append(
                    Flag(
                        name,
                        point.run_dir,
                        point.started,
                        status,
                        metric_name,
                        value,
                        baseline,
                        k,
                        newest=index == last,
                    )
                )
    order = {p.run_dir: i for i, p in enumerate(points)}
    flags.sort(
        key=lambda f: (order[f.run_dir], f.kind != "invalid", shown.index(f.metric) if f.metric else 0)
    )
    return ConfigTrend(name, list(points), cells, flags, shown)


def analyse(
    points: Sequence[RunPoint],
    k: float = DEFAULT_K,
    window: int = DEFAULT_WINDOW,
    metrics: Sequence[str] | None = None,
) -> list[ConfigTrend]:
    """One ConfigTrend per config name (alphabetical); `points` as `collect` orders them."""
    if k <= 0:
        raise ValueError(f"k must be > 0, not {k:g}")
    if window < MIN_HISTORY:
        raise ValueError(f"window must be at least {MIN_HISTORY}, not {window}")
    chosen = list(metrics) if metrics else list(METRICS)
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    chosen = [m for m in METRICS if m in chosen]
    groups: dict[str, list[RunPoint]] = {}
    for point in points:
        groups.setdefault(point.name, []).append(point)
    return [analyse_config(name, groups[name], k, window, chosen) for name in sorted(groups)]
