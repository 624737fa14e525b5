"""`inferswarm compare RUN_A RUN_B`: B against A (the baseline), metric by metric, with a significance
test on each difference, so run-to-run noise is not called a regression.

A row is a REGRESSION only when the difference is both significant (two-sided p < `ALPHA`, the test and
its p-value are in the row) and beyond the metric's tolerance in the bad direction; improvements are
judged the same way. Tolerances are relative changes (default 10 %), except `failure_ratio`, whose
tolerance is absolute (default 0.01: one more failure in a hundred requests).

The numbers come from the steps both runs measured at the same load level (completed steps only), so a
run that went further or stopped earlier is compared on common ground:

- latency percentiles: successful requests (the `<capability>:ok` histograms) when both runs logged
  them, else all requests; a stratified bootstrap over the per-step histograms, B weighted to A's mix of
  steps (see `report.significance`);
- failure ratio: Fisher's exact test on the summed counts;
- throughput (`rps`, `success_rps`): the two-Poisson-rates test on the summed counts and windows, for
  the run and, as information, step by step;
- saturation point: the step size is its resolution. A shift of one step is never a regression by
  itself; a larger shift is one only when a step between the two points is significantly worse beyond
  tolerance in B (throughput, failure ratio or p95);
- GPU figures have no per-request data to test: they are shown, never judged.

Runs without per-step data fall back to the run totals (Fisher and Poisson on the totals; latency then
cannot be tested).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from pydantic import BaseModel, ConfigDict

from inferswarm.derived import OK, entry_name, split_entry
from inferswarm.report.analysis import AGGREGATED, analyse
from inferswarm.report.load import load_run
from inferswarm.report.results import (
    CapabilitySummary,
    Number,
    Results,
    StepCapability,
    StepRow,
    format_level,
    read_results,
)
from inferswarm.report.significance import (
    ALPHA,
    SEED,
    Histogram,
    compare_percentiles,
    fisher_exact,
    poisson_rates,
)
from inferswarm.rundir import CSV_PREFIX_NAME, RUN_JSON
from inferswarm.slo import COMPARE_METRICS

DEFAULT_TOLERANCE = 0.10
DEFAULT_FAILURE_TOLERANCE = 0.01
LATENCY = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}
STEP_METRICS = ("success_rps", "failure_ratio", "p95_ms")
"""What each matched step shows (for the whole run): information, and the saturation point's evidence."""

Verdict = Literal[
    "regression", "improvement", "worse", "better", "ok", "not significant", "within one step", "no test"
]
VERDICTS: dict[str, str] = {
    "regression": "significant (p < {alpha}) and beyond tolerance in the bad direction: fails the comparison",
    "improvement": "significant and beyond tolerance in the good direction",
    "worse": "one step only, significant and beyond tolerance in the bad direction (information, not a gate)",
    "better": "one step only, significant and beyond tolerance in the good direction",
    "ok": "the change is within tolerance",
    "not significant": "beyond tolerance, but within what run-to-run noise explains (p >= {alpha})",
    "within one step": "the saturation point moved by at most one step, the resolution of a stepped test",
    "no test": "no per-request data to test this figure: shown, never judged",
}


class CompareRow(BaseModel):
    """One metric of one scope in both runs (a row of compare.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str
    """`total`, a capability, or `total @ <level> <unit>` for one matched step."""
    metric: str
    basis: Literal["success", "all"] | None = None
    """Latency rows: successful requests only, or all requests (when a run did not log successes)."""
    a: Number | None
    b: Number | None
    change: float | None
    """(b - a) / a; null when a is 0 or missing."""
    tolerance: Number
    test: str
    """`bootstrap`, `fisher exact`, `poisson rates`, `step resolution`, or `none`."""
    p_value: float | None
    ci: tuple[float, float] | None = None
    """The (1 - alpha) bootstrap interval of the relative change (latency rows)."""
    verdict: Verdict
    gated: bool
    """Whether the row can fail the comparison (per-step rows and untested figures cannot)."""
    regression: bool
    note: str = ""
    level: Number | None = None
    """The matched step's load level, for a per-step row (null for the run's rows)."""


def results_of(run_dir: Path) -> Results:
    """The run's results.json, or a fresh analysis when the run has not been reported yet. Raises
    ResultsFileError for a results.json of another schema version or with content this version cannot read."""
    path = run_dir / "results.json"
    if path.is_file():
        return read_results(path)
    return analyse(load_run(run_dir))


def step_histograms(run_dir: Path) -> dict[tuple[int, str], dict[float, int]]:
    """(stage, name) -> the measured window's response-time histogram, from PREFIX_step_latency.csv;
    empty when the run has none (or it is unreadable)."""
    prefix = CSV_PREFIX_NAME
    try:
        run = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
        prefix = str(run.get("csv_prefix") or prefix) if isinstance(run, dict) else prefix
    except (OSError, ValueError):
        pass
    try:
        frame = pd.read_csv(run_dir / f"{prefix}_step_latency.csv", on_bad_lines="skip")
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    if not {"stage", "name", "response_time_ms", "count"} <= set(frame.columns):
        return {}
    for column in ("stage", "response_time_ms", "count"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=["stage", "name", "response_time_ms", "count"])
    out: dict[tuple[int, str], dict[float, int]] = {}
    for stage, name, ms, count in zip(
        frame["stage"], frame["name"], frame["response_time_ms"], frame["count"], strict=True
    ):
        bucket = out.setdefault((int(stage), str(name)), {})
        bucket[float(ms)] = bucket.get(float(ms), 0) + int(count)
    return out


@dataclass
class RunInput:
    """What compare needs of one run: its results and its per-step histograms."""

    results: Results
    histograms: dict[tuple[int, str], dict[float, int]] = field(default_factory=dict)

    def has_success_entries(self, capability: str | None) -> bool:
        """Whether the run logged successful requests separately (for `capability`, or for every one)."""
        logged = set()
        for _, name in self.histograms:
            split = split_entry(name)
            if split is not None and split[1] == OK:
                logged.add(split[0])
        if capability is not None:
            return capability in logged
        capabilities = [scope for scope in self.results.summary if scope != "total"]
        return bool(capabilities) and all(cap in logged for cap in capabilities)

    def histogram(self, stage: int, scope: str, basis: str) -> Histogram:
        if basis == "all":
            return self.histograms.get((stage, AGGREGATED if scope == "total" else scope), {})
        if scope != "total":
            return self.histograms.get((stage, entry_name(scope, OK)), {})
        merged: Counter[float] = Counter()
        for (index, name), buckets in self.histograms.items():
            split = split_entry(name)
            if index == stage and split is not None and split[1] == OK:
                merged.update(buckets)
        return merged


@dataclass(frozen=True)
class _Counts:
    requests: int
    failures: int
    seconds: float

    @property
    def successes(self) -> int:
        return self.requests - self.failures


def _step_counts(step: StepRow, scope: str) -> _Counts | None:
    entry: StepCapability | None = step if scope == "total" else step.capabilities.get(scope)
    if entry is None or entry.seconds is None:
        return None
    return _Counts(entry.requests, entry.failures, float(entry.seconds))


def _summary_counts(entry: CapabilitySummary) -> _Counts | None:
    if not entry.rps or not math.isfinite(entry.rps):
        return None
    return _Counts(entry.requests, entry.failures, entry.requests / entry.rps)


def _sum(counts: Iterable[_Counts | None]) -> _Counts | None:
    present = [c for c in counts if c is not None]
    if not present:
        return None
    return _Counts(
        sum(c.requests for c in present), sum(c.failures for c in present), sum(c.seconds for c in present)
    )


def matched_steps(a: Results, b: Results) -> list[tuple[StepRow, StepRow]]:
    """Pairs of completed steps with requests at the same load level (the n-th occurrence of a level in A
    with the n-th in B); none when the runs' steps lie on different axes."""
    if a.step_axis.column != b.step_axis.column:
        return []

    def keyed(results: Results) -> dict[tuple[str, int], StepRow]:
        seen: Counter[str] = Counter()
        out = {}
        for step in results.steps:
            if step.completed and step.requests > 0:
                level = format_level(step.level)
                out[(level, seen[level])] = step
                seen[level] += 1
        return out

    steps_a, steps_b = keyed(a), keyed(b)
    return sorted(
        ((steps_a[key], steps_b[key]) for key in steps_a.keys() & steps_b.keys()), key=lambda p: p[0].stage
    )


def _tolerance(metric: str, tolerances: Mapping[str, float]) -> float:
    default = DEFAULT_FAILURE_TOLERANCE if metric == "failure_ratio" else DEFAULT_TOLERANCE
    return tolerances.get(metric, default)


def _change(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return (b - a) / a


def _direction(metric: str, a: float, b: float, tolerance: float) -> int:
    """+1 beyond tolerance in the good direction, -1 in the bad one, 0 within tolerance."""
    if metric == "failure_ratio":
        worse_by = b - a
    elif a:
        worse_by = (b - a) / abs(a)
    else:
        worse_by = math.copysign(math.inf, b) if b else 0.0
    if COMPARE_METRICS.get(metric, "lower") == "higher":
        worse_by = -worse_by
    if worse_by > tolerance:
        return -1
    if -worse_by > tolerance:
        return 1
    return 0


def _judge(metric: str, a: float, b: float, tolerance: float, p: float | None, gated: bool) -> Verdict:
    direction = _direction(metric, a, b, tolerance)
    if direction == 0:
        return "ok"
    if p is None:
        return "no test"
    if p >= ALPHA:
        return "not significant"
    if direction < 0:
        return "regression" if gated else "worse"
    return "improvement" if gated else "better"


def _row(
    scope: str,
    metric: str,
    a: float | None,
    b: float | None,
    tolerances: Mapping[str, float],
    test: str,
    p: float | None,
    gated: bool = True,
    **extra: object,
) -> CompareRow:
    tolerance = _tolerance(metric, tolerances)
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        verdict: Verdict = "no test"
    else:
        verdict = _judge(metric, a, b, tolerance, p, gated)
    return CompareRow.model_validate(
        {
            "scope": scope,
            "metric": metric,
            "a": a,
            "b": b,
            "change": _change(a, b),
            "tolerance": tolerance,
            "test": test,
            "p_value": p,
            "verdict": verdict,
            "gated": gated,
            "regression": gated and verdict == "regression",
            **extra,
        }
    )


def _count_rows(
    scope: str,
    a: _Counts,
    b: _Counts,
    tolerances: Mapping[str, float],
    metrics: Iterable[str] = ("rps", "success_rps", "failure_ratio"),
    gated: bool = True,
) -> list[CompareRow]:
    rows = []
    for metric in metrics:
        if metric == "failure_ratio":
            if not (a.requests and b.requests):
                continue
            p = fisher_exact(a.failures, a.requests, b.failures, b.requests)
            value_a, value_b = a.failures / a.requests, b.failures / b.requests
            rows.append(_row(scope, metric, value_a, value_b, tolerances, "fisher exact", p, gated))
            continue
        count_a, count_b = (a.requests, b.requests) if metric == "rps" else (a.successes, b.successes)
        p = poisson_rates(count_a, a.seconds, count_b, b.seconds)
        value_a, value_b = count_a / a.seconds, count_b / b.seconds
        rows.append(_row(scope, metric, value_a, value_b, tolerances, "poisson rates", p, gated))
    return rows


@dataclass
class _Comparison:
    a: RunInput
    b: RunInput
    tolerances: Mapping[str, float]
    rng: np.random.Generator
    pairs: list[tuple[StepRow, StepRow]]
    notes: list[str] = field(default_factory=list)

    def basis(self, scope: str) -> Literal["success", "all"]:
        capability = None if scope == "total" else scope
        both = self.a.has_success_entries(capability) and self.b.has_success_entries(capability)
        return "success" if both else "all"

    def latency_rows(
        self, scope: str, pairs: list[tuple[StepRow, StepRow]], metrics: Mapping[str, float], gated: bool
    ) -> list[CompareRow]:
        basis = self.basis(scope)
        histograms_a = [self.a.histogram(sa.stage, scope, basis) for sa, _ in pairs]
        histograms_b = [self.b.histogram(sb.stage, scope, basis) for _, sb in pairs]
        test = compare_percentiles(histograms_a, histograms_b, list(metrics.values()), rng=self.rng)
        if test is None:
            return []
        name = f"bootstrap ({test.steps} step{'s' if test.steps != 1 else ''})"
        return [
            _row(
                scope,
                metric,
                test.a[i],
                test.b[i],
                self.tolerances,
                name,
                test.p_value[i],
                gated,
                basis=basis,
                ci=None if math.isnan(test.ci[i][0]) else test.ci[i],
                note=f"{test.samples_a:,} vs {test.samples_b:,} {'successful ' if basis == 'success' else ''}"
                "requests",
            )
            for i, metric in enumerate(metrics)
        ]

    def scope_rows(self, scope: str) -> list[CompareRow]:
        summary_a, summary_b = self.a.results.summary[scope], self.b.results.summary[scope]
        if self.pairs:
            counts_a = _sum(_step_counts(sa, scope) for sa, _ in self.pairs)
            counts_b = _sum(_step_counts(sb, scope) for _, sb in self.pairs)
        else:
            counts_a, counts_b = _summary_counts(summary_a), _summary_counts(summary_b)
        rows = _count_rows(scope, counts_a, counts_b, self.tolerances) if counts_a and counts_b else []
        latency = self.latency_rows(scope, self.pairs, LATENCY, gated=True) if self.pairs else []
        if not latency:  # no histograms: the run totals, shown but not judged
            latency = [
                _row(
                    scope,
                    metric,
                    getattr(summary_a, metric),
                    getattr(summary_b, metric),
                    self.tolerances,
                    "none",
                    None,
                    gated=False,
                    note="run totals: no per-step histograms",
                )
                for metric in LATENCY
                if getattr(summary_a, metric) is not None and getattr(summary_b, metric) is not None
            ]
        return rows + latency

    def step_rows(self) -> list[CompareRow]:
        unit = self.a.results.step_axis.label
        rows = []
        for sa, sb in self.pairs:
            scope = f"total @ {format_level(sa.level)} {unit}"
            counts_a, counts_b = _step_counts(sa, "total"), _step_counts(sb, "total")
            if counts_a and counts_b:
                rows += _count_rows(scope, counts_a, counts_b, self.tolerances, STEP_METRICS[:2], gated=False)
            rows += self.latency_rows(scope, [(sa, sb)], {"p95_ms": LATENCY["p95_ms"]}, gated=False)
        return [row.model_copy(update={"level": _level_of(row.scope, self.pairs)}) for row in rows]

    def step_size(self) -> float | None:
        levels = sorted({s.level for r in (self.a.results, self.b.results) for s in r.steps})
        gaps = [b - a for a, b in itertools.pairwise(levels) if b > a]
        return min(gaps) if gaps else None

    def saturation_row(self, step_rows: list[CompareRow]) -> CompareRow | None:
        sat_a, sat_b = self.a.results.saturation, self.b.results.saturation
        if sat_a is None and sat_b is None:
            return None
        step = self.step_size()
        unit = self.a.results.step_axis.label
        value_a = sat_a.level if sat_a is not None else None
        value_b = sat_b.level if sat_b is not None else None
        tolerance = _tolerance("saturation_users", self.tolerances)
        common = {
            "scope": "total",
            "metric": "saturation_users",
            "a": value_a,
            "b": value_b,
            "change": _change(value_a, value_b),
            "tolerance": tolerance,
            "gated": True,
        }
        if step is None:
            return CompareRow.model_validate(
                {**common, "test": "none", "p_value": None, "verdict": "no test", "regression": False}
            )

        def past_tested(results: Results) -> float:  # no saturation: one step past the tested load
            return max((s.level for s in results.steps), default=0.0) + step

        level_a = value_a if value_a is not None else past_tested(self.a.results)
        level_b = value_b if value_b is not None else past_tested(self.b.results)
        shift = (level_b - level_a) / step
        test = f"step resolution ({format_level(step)} {unit})"
        if abs(shift) < 1e-9 or _direction("saturation_users", level_a, level_b, tolerance) == 0:
            verdict: Verdict = "ok"
        elif abs(shift) <= 1 + 1e-9:
            verdict = "within one step"
        else:
            verdict = "not significant"
        evidence: list[CompareRow] = []
        if verdict == "not significant":
            # the steps that one run passed and the other did not: is the other one really worse there?
            low, high = sorted((level_a, level_b))
            wanted = "worse" if shift < 0 else "better"
            evidence = [
                r for r in step_rows if r.verdict == wanted and r.level is not None and low <= r.level < high
            ]
            if evidence:
                verdict = "regression" if shift < 0 else "improvement"
        strongest = min(evidence, key=lambda r: r.p_value or 1.0) if evidence else None
        note = (
            f"{strongest.scope}: {strongest.metric} {change_text(strongest)} "
            f"({strongest.test} {format_p(strongest)})"
            if strongest is not None
            else ("no saturation within the tested load in " + ("A" if value_a is None else "B"))
            if value_a is None or value_b is None
            else f"moved {abs(shift):g} step(s) of {format_level(step)} {unit}"
            if verdict != "ok"
            else ""
        )
        return CompareRow.model_validate(
            {
                **common,
                "test": test,
                "p_value": strongest.p_value if strongest is not None else None,
                "verdict": verdict,
                "regression": verdict == "regression",
                "note": note,
            }
        )

    def knee_row(self) -> CompareRow | None:
        sat_a, sat_b = self.a.results.saturation, self.b.results.saturation
        if sat_a is None or sat_b is None or sat_a.knee_level is None or sat_b.knee_level is None:
            return None
        knee_a = _knee_step(self.a.results)
        knee_b = _knee_step(self.b.results)
        counts_a = _step_counts(knee_a, "total") if knee_a is not None else None
        counts_b = _step_counts(knee_b, "total") if knee_b is not None else None
        step = self.step_size()
        if counts_a is None or counts_b is None or knee_a is None or knee_b is None:
            return _row(
                "total",
                "knee_success_rps",
                sat_a.knee_success_rps,
                sat_b.knee_success_rps,
                self.tolerances,
                "none",
                None,
            )
        row = _count_rows("total", counts_a, counts_b, self.tolerances, ["success_rps"])[0]
        levels = f"knee at {format_level(knee_a.level)} vs {format_level(knee_b.level)}"
        update: dict[str, object] = {"metric": "knee_success_rps", "note": levels}
        if (
            knee_a.level != knee_b.level
            and step
            and abs(knee_b.level - knee_a.level) <= step + 1e-9
            and (row.verdict in ("regression", "improvement"))
        ):
            update |= {"verdict": "within one step", "regression": False}
        return row.model_copy(update=update)


def _level_of(scope: str, pairs: list[tuple[StepRow, StepRow]]) -> float | None:
    _, _, rest = scope.partition(" @ ")
    text = rest.split(" ")[0]
    return next((sa.level for sa, _ in pairs if format_level(sa.level) == text), None)


def _knee_step(results: Results) -> StepRow | None:
    sat = results.saturation
    if sat is None:
        return None
    before = [s for s in results.steps if s.stage < sat.stage and s.level == sat.knee_level]
    return before[-1] if before else None


def _percent(change: float | None) -> str:
    return "-" if change is None else f"{100 * change:+.1f}%"


def compare(
    a: Results | RunInput, b: Results | RunInput, tolerances: Mapping[str, float] | None = None
) -> list[CompareRow]:
    """The run's rows (gated), then one block of rows per matched step (information)."""
    run_a = a if isinstance(a, RunInput) else RunInput(a)
    run_b = b if isinstance(b, RunInput) else RunInput(b)
    job = _Comparison(
        run_a,
        run_b,
        tolerances or {},
        np.random.default_rng(SEED),
        matched_steps(run_a.results, run_b.results),
    )
    scopes = sorted(set(run_a.results.summary) & set(run_b.results.summary), key=lambda s: (s != "total", s))
    rows = [row for scope in scopes for row in job.scope_rows(scope)]
    steps = job.step_rows()
    saturation = job.saturation_row(steps)
    knee = job.knee_row()
    rows += [row for row in (saturation, knee) if row is not None]
    for metric in ("gpu_util_mean_pct", "energy_per_request_j"):
        value_a, value_b = getattr(run_a.results.gpu, metric), getattr(run_b.results.gpu, metric)
        if value_a is not None and value_b is not None:
            rows.append(_row("total", metric, value_a, value_b, job.tolerances, "none", None, gated=False))
    return rows + steps


def _cell(value: float | None, metric: str = "") -> str:
    if value is None:
        return "-"
    if metric == "failure_ratio":
        return f"{100 * value:.2f}%"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def format_p(row: CompareRow) -> str:
    """The test column: p-value and, for latency, the interval of the change."""
    if row.p_value is None:
        return "-"
    p = "p<0.001" if row.p_value < 0.001 else f"p={row.p_value:.3f}"
    if row.ci is not None:
        p += f" [{_percent(row.ci[0])}, {_percent(row.ci[1])}]"
    return p


def change_text(row: CompareRow) -> str:
    if row.metric == "failure_ratio" and row.a is not None and row.b is not None:
        return f"{100 * (row.b - row.a):+.2f} pt"
    return _percent(row.change)


def metric_text(row: CompareRow) -> str:
    return row.metric + (f" ({row.basis})" if row.basis else "")


HEADER = ("scope", "metric", "A", "B", "change", "test: p-value / CI", "verdict")


def table_cells(row: CompareRow) -> tuple[str, ...]:
    verdict = row.verdict.upper() if row.regression else row.verdict
    test = "-" if row.test == "none" else f"{row.test.split(' (')[0]} {format_p(row)}"
    return (
        row.scope,
        metric_text(row),
        _cell(row.a, row.metric),
        _cell(row.b, row.metric),
        change_text(row),
        test,
        verdict,
    )


def console_table(rows: list[CompareRow]) -> str:
    """Fixed-width text: a header line, then one line per row."""
    cells = [HEADER, *(table_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    right = {2, 3, 4}
    lines = []
    for line in cells:
        lines.append(
            "  ".join(
                text.rjust(widths[i]) if i in right else text.ljust(widths[i]) for i, text in enumerate(line)
            ).rstrip()
        )
    return "\n".join(lines)


def _headline(rows: list[CompareRow]) -> str:
    regressions = sum(r.regression for r in rows)
    improvements = sum(r.verdict == "improvement" for r in rows)
    if regressions:
        return f"{regressions} regression(s): significant (p < {ALPHA}) and beyond tolerance."
    return "No regressions" + (f"; {improvements} improvement(s)." if improvements else ".")


def _method_lines() -> list[str]:
    return [
        f"A row is a regression only when its difference is significant (two-sided p < {ALPHA}) and beyond "
        "its tolerance in the bad direction (relative; failure_ratio absolute).",
        "Compared on the completed steps both runs measured at the same load level. Latency: successful "
        "requests when both runs logged them, else all requests; stratified bootstrap over the per-step "
        "histograms, B weighted to A's mix of steps (interval: the change's "
        f"{100 * (1 - ALPHA):g} % interval). Failure ratio: Fisher's exact test. Throughput: the "
        "two-Poisson-rates test. Saturation point: the step size is its resolution; a bigger shift "
        "counts only when a step between the two points is significantly worse. GPU figures are shown, "
        "not judged. Per-step rows are information and cannot fail the comparison.",
    ]


def _split(rows: list[CompareRow]) -> tuple[list[CompareRow], list[CompareRow]]:
    steps = [r for r in rows if r.level is not None]
    return [r for r in rows if r.level is None], steps


def compare_markdown(a_dir: Path, b_dir: Path, rows: list[CompareRow], notes: list[str] | None = None) -> str:
    run_rows, step_rows = _split(rows)
    lines = [f"# {b_dir.name} compared with {a_dir.name}", "", _headline(rows), "", *_method_lines(), ""]
    for title, block in (("Run", run_rows), ("Per step (information)", step_rows)):
        if not block:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for row in block:
            cells = list(table_cells(row))
            cells[-1] = f"**{cells[-1]}**" if row.regression else cells[-1]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


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


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}
tr.regression td{background:#fde2e1}
tr.improvement td,tr.better td{background:#e3f6e5}
tr.worse td{background:#fff4d6}
.verdict{font-weight:600}
"""


def compare_html(
    a_dir: Path, b_dir: Path, rows: list[CompareRow], figure: str, notes: list[str] | None = None
) -> str:
    esc = html.escape
    run_rows, step_rows = _split(rows)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(b_dir.name)} compared with {esc(a_dir.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(b_dir.name)} compared with {esc(a_dir.name)}</h1>",
        f"<p><strong>{esc(_headline(rows))}</strong></p>",
        f"<p>A: <code>{esc(str(a_dir))}</code> (baseline); B: <code>{esc(str(b_dir))}</code></p>",
    ]
    for title, block in (("Run", run_rows), ("Per step (information)", step_rows)):
        if not block:
            continue
        parts.append(f"<h2>{title}</h2><table><thead><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in HEADER] + ["<th>note</th></tr></thead><tbody>"]
        for row in block:
            cells = table_cells(row)
            parts.append(f"<tr class='{esc(row.verdict.replace(' ', '-'))}'>")
            for i, text in enumerate(cells):
                klass = " class='num'" if i in (2, 3, 4) else " class='verdict'" if i == 6 else ""
                parts.append(f"<td{klass}>{esc(text)}</td>")
            parts.append(f"<td>{esc(row.note)}</td></tr>")
        parts.append("</tbody></table>")
    parts.append(
        "<h2>How to read the verdicts</h2><p>" + "</p><p>".join(map(esc, _method_lines())) + "</p><dl>"
    )
    for verdict, meaning in VERDICTS.items():
        parts.append(f"<dt class='verdict'>{esc(verdict)}</dt><dd>{esc(meaning.format(alpha=ALPHA))}</dd>")
    parts.append("</dl>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts += [figure, "</body></html>\n"]
    return "".join(parts)


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


def comparison_notes(a: RunInput, b: RunInput, rows: list[CompareRow]) -> list[str]:
    notes = []
    pairs = matched_steps(a.results, b.results)
    unit = a.results.step_axis.label
    if pairs:
        levels = [format_level(sa.level) for sa, _ in pairs]
        notes.append(f"{len(pairs)} matched step(s) at {', '.join(levels)} {unit}")
    else:
        notes.append("no matched steps: run totals compared; latency not tested")
    for run, name in ((a, "A"), (b, "B")):
        if not run.histograms:
            notes.append(f"{name}: no per-step latency histograms")
    if any(r.basis == "all" for r in rows):
        notes.append("latency of all requests (failures included) where a run did not log successes apart")
    return notes


def write_compare(a_dir: Path, b_dir: Path, out: Path, tolerances: dict[str, float]) -> list[CompareRow]:
    """Tolerances: B's config `report.tolerances`, then the ones given here on top. Raises
    ResultsFileError when either run's results.json cannot be read."""
    a = RunInput(results_of(a_dir), step_histograms(a_dir))
    b = RunInput(results_of(b_dir), step_histograms(b_dir))
    rows = compare(a, b, {**configured_tolerances(b.results), **tolerances})
    notes = comparison_notes(a, b, rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(compare_markdown(a_dir, b_dir, rows, notes), encoding="utf-8")
    document = {
        "a": str(a_dir),
        "b": str(b_dir),
        "alpha": ALPHA,
        "regressions": sum(r.regression for r in rows),
        "notes": notes,
        "rows": [row.model_dump(mode="json") for row in rows],
    }
    (out / "compare.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    figure = overlay_figure(a.results, b.results, (a_dir.name, b_dir.name))
    page = compare_html(a_dir, b_dir, rows, figure.to_html(full_html=False, include_plotlyjs=True), notes)
    (out / "compare.html").write_text(page, encoding="utf-8")
    return rows
