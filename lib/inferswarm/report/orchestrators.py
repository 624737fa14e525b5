"""The report of an orchestrator-matrix run (`inferswarm orchestrators`): which orchestrators answered
which (pipeline, model) cells, how fast, what failed, whether the leaderboard got the stats, and what
changed since the previous run of the same config.

Reads the run directory's contract (`rundir.ORCH_*`): the stats CSV (one row per cell) is the matrix, the
jobs CSV gives the per-job round trips, orchestrators.json what discovery said, run.json who and when.
Pure computation here; `matrix_render` draws the heat maps and writes the tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inferswarm.report.results import ResultsFileError
from inferswarm.report.significance import ALPHA, two_sided_normal
from inferswarm.rundir import (
    ORCH_DISCOVERY,
    ORCH_JOB_COLUMNS,
    ORCH_JOBS_CSV,
    ORCH_KIND,
    ORCH_LOAD_COLUMNS,
    ORCH_LOAD_CSV,
    ORCH_STAT_COLUMNS,
    ORCH_STATS_CSV,
    RUN_JSON,
    read_run_json,
)

# A job failed this way never reached the orchestrator: the gateway could not select or reach it.
NOT_ANSWERING_CODES = frozenset({"CONNECTION_ERROR", "TIMEOUT"})
NOT_ANSWERING_MESSAGE = "no orchestrators available"
REL_THRESHOLD = 0.25
"""A cell's mean round trip changed when it moved by more than this share of the previous one ..."""
ABS_FLOOR_S = 0.05
"""... and by more than this many seconds (a 20 ms job going to 30 ms is not news)."""
MIN_TEST_JOBS = 5
"""Successful round trips each run needs in a cell before the rank test is used instead of the threshold."""
_EXACT_MAX_PAIRS = 2_500

Status = Literal["ok", "failing", "down", "untested"]


class MatrixFileError(ResultsFileError):
    """A run directory file the matrix report cannot read; the message is one line naming the file."""


@dataclass(frozen=True)
class ErrorCount:
    error_code: str
    message: str
    count: int


@dataclass(frozen=True)
class Cell:
    """One (orchestrator, pipeline, model) cell: a row of the stats CSV, with its jobs' round trips."""

    orchestrator: str
    service_uri: str
    pipeline: str
    model: str
    warm: bool
    jobs: int
    successes: int
    success_rate: float | None
    """None when no job ran (the run stopped first)."""
    rtt_s: float | None
    rtt_of: str
    """"successes", "failures" (none succeeded: the mean is of failed jobs) or "" (no job ran)."""
    errors: tuple[ErrorCount, ...]
    post_status: str
    round_trips_s: tuple[float, ...] = ()
    """The successful jobs' round trips from the jobs CSV (empty without it)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.orchestrator, self.pipeline, self.model)

    @property
    def label(self) -> str:
        return f"{self.pipeline} / {self.model}"

    @property
    def rtt_n(self) -> int:
        """How many jobs the mean round trip is of."""
        return {"successes": self.successes, "failures": self.jobs - self.successes}.get(self.rtt_of, 0)

    @property
    def not_answering(self) -> bool:
        """Every job failed, each one because the gateway could not reach or select the orchestrator."""
        failed = sum(e.count for e in self.errors)
        return (
            self.jobs > 0
            and self.successes == 0
            and failed > 0
            and all(
                e.error_code in NOT_ANSWERING_CODES or NOT_ANSWERING_MESSAGE in e.message for e in self.errors
            )
        )


@dataclass(frozen=True)
class Matrix:
    run_dir: Path
    name: str
    status: str
    started_at: str | None
    start_epoch_s: float | None
    region: str | None
    gateway_url: str | None
    dry_run: bool
    source: str
    notices: tuple[str, ...]
    filtered_out: tuple[dict[str, Any], ...]
    cells: tuple[Cell, ...]
    jobs_csv: bool
    """Whether orchestrator_jobs.csv was there (per-job round trips, hence the rank test)."""
    notes: tuple[str, ...] = ()

    @property
    def orchestrators(self) -> list[str]:
        return sorted({c.orchestrator for c in self.cells})

    def cells_of(self, orchestrator: str) -> list[Cell]:
        return [c for c in self.cells if c.orchestrator == orchestrator]

    def status_of(self, orchestrator: str) -> Status:
        cells = [c for c in self.cells_of(orchestrator) if c.jobs > 0]
        if not cells:
            return "untested"
        if all(c.not_answering for c in cells):
            return "down"
        return "ok" if all(c.successes == c.jobs for c in cells) else "failing"


def _fail(path: Path, why: str) -> MatrixFileError:
    return MatrixFileError(f"{path}: {why}")


def _rows(path: Path, required: list[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV whose header holds `required`; a short or long row is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, "missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"unreadable ({exc})") from None
    # newline='': a quoted message may span lines
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    missing = [c for c in required if header is None or c not in header]
    if header is None or missing:
        raise _fail(path, f"not a {path.name} this inferswarm reads (missing columns {', '.join(missing)})")
    for row in reader:
        if len(row) != len(header):
            raise _fail(path, f"line {reader.line_num}: {len(row)} fields, the header has {len(header)}")
        yield reader.line_num, dict(zip(header, row, strict=True))


def _number(path: Path, line: int, row: dict[str, str], column: str) -> float | None:
    text = row[column].strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, f"line {line}: {column} {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def _count(path: Path, line: int, row: dict[str, str], column: str) -> int:
    value = _number(path, line, row, column)
    if value is None or value < 0 or value != int(value):
        raise _fail(path, f"line {line}: {column} {row[column]!r} is not a count")
    return int(value)


def _flag(path: Path, line: int, row: dict[str, str], column: str) -> bool:
    text = row[column].strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise _fail(path, f"line {line}: {column} {row[column]!r} is not True/False")
    return text in ("true", "1")


def _errors(path: Path, line: int, text: str) -> tuple[ErrorCount, ...]:
    try:
        items = json.loads(text) if text.strip() else []
        return tuple(
            ErrorCount(str(e["error_code"]), str(e.get("message", "")), int(e["count"])) for e in items
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise _fail(path, f"line {line}: errors is not a JSON list of error counts ({exc})") from None


def _successful_round_trips(run_dir: Path) -> dict[tuple[str, str, str], list[float]] | None:
    path = run_dir / ORCH_JOBS_CSV
    if not path.is_file():
        return None
    out: dict[tuple[str, str, str], list[float]] = {}
    for line, row in _rows(path, ORCH_JOB_COLUMNS):
        key = (row["orchestrator"], row["pipeline"], row["model"])
        rtt = _number(path, line, row, "round_trip_s")
        if _flag(path, line, row, "ok") and rtt is not None:
            out.setdefault(key, []).append(rtt)
    return out


def _discovery(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ORCH_DISCOVERY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "missing") from None
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("orchestrators", []), list):
        raise _fail(path, "not a discovery record (a JSON object with an orchestrators list)")
    return data


def load_matrix(run_dir: Path) -> Matrix:
    """The matrix of one run directory; raises MatrixFileError (one line, naming the file) when a file
    the report needs is missing or malformed. The jobs CSV may be missing (no per-job round trips)."""
    run = read_run_json(run_dir)
    if run is None:
        raise _fail(run_dir / RUN_JSON, "missing or not JSON")
    if run.get("kind") != ORCH_KIND:
        raise _fail(run_dir / RUN_JSON, f"kind {run.get('kind')!r}, not an {ORCH_KIND} run")
    discovery = _discovery(run_dir)
    trips = _successful_round_trips(run_dir)
    path = run_dir / ORCH_STATS_CSV
    cells: list[Cell] = []
    for line, row in _rows(path, ORCH_STAT_COLUMNS):
        key = (row["orchestrator"], row["pipeline"], row["model"])
        jobs = _count(path, line, row, "jobs")
        cells.append(
            Cell(
                orchestrator=key[0],
                service_uri=row["service_uri"],
                pipeline=key[1],
                model=key[2],
                warm=_flag(path, line, row, "model_is_warm"),
                jobs=jobs,
                successes=_count(path, line, row, "successes"),
                success_rate=_number(path, line, row, "success_rate") if jobs else None,
                rtt_s=_number(path, line, row, "round_trip_time") if row["rtt_of"] else None,
                rtt_of=row["rtt_of"],
                errors=_errors(path, line, row["errors"]),
                post_status=row["post_status"],
                round_trips_s=tuple((trips or {}).get(key, ())),
            )
        )
    planned = {(c.get("orchestrator"), c.get("pipeline"), c.get("model")) for c in discovery.get("cells", [])}
    unrun = len(planned - {c.key for c in cells})
    notes = [f"{ORCH_JOBS_CSV}: missing (no per-job round trips: comparisons use the threshold)"]
    notes = notes if trips is None else []
    if unrun:
        notes.append(f"{unrun} planned cell(s) have no stat (the run ended before them)")
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    gateway = run.get("gateway") if isinstance(run.get("gateway"), dict) else {}
    start = run.get("start_epoch_s")
    return Matrix(
        run_dir=run_dir,
        name=str(run.get("name") or ""),
        status=str(run.get("status") or "unknown"),
        started_at=run.get("started_at"),
        start_epoch_s=float(start) if isinstance(start, int | float) else None,
        region=run.get("region"),
        gateway_url=(gateway or {}).get("url"),
        dry_run=bool((summary or {}).get("dry_run")),
        source=str(discovery.get("source") or "unknown"),
        notices=tuple(str(n) for n in discovery.get("notices", [])),
        filtered_out=tuple(f for f in discovery.get("filtered_out", []) if isinstance(f, dict)),
        cells=tuple(cells),
        jobs_csv=trips is not None,
        notes=tuple(notes),
    )


def previous_run(run_dir: Path) -> Path | None:
    """The latest sibling orchestrators run of the same config name that started before this one and
    wrote stats; None when there is none (or this run's run.json does not say its name and start)."""
    run = read_run_json(run_dir)
    start = None if run is None else run.get("start_epoch_s")
    if run is None or not isinstance(start, int | float):
        return None
    best: tuple[float, Path] | None = None
    for sibling in run_dir.parent.iterdir():
        if not sibling.is_dir() or sibling.resolve() == run_dir.resolve():
            continue
        other = read_run_json(sibling)
        when = None if other is None else other.get("start_epoch_s")
        if (
            other is None
            or other.get("kind") != ORCH_KIND
            or other.get("name") != run.get("name")
            or not isinstance(when, int | float)
            or when >= start
            or not (sibling / ORCH_STATS_CSV).is_file()
        ):
            continue
        if best is None or when > best[0]:
            best = (float(when), sibling)
    return None if best is None else best[1]


# --- comparison -------------------------------------------------------------------------------------


def mann_whitney(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (exact without ties on small samples, else the
    normal approximation with tie and continuity corrections). Pure numpy: scipy is no dependency."""
    m, n = len(a), len(b)
    if not m or not n:
        return 1.0
    values = np.concatenate([a, b])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(m + n)
    sorted_values = values[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    u = float(ranks[:m].sum() - m * (m + 1) / 2)
    ties = counts[counts > 1]
    if not ties.size and m * n <= _EXACT_MAX_PAIRS:
        # ways to reach each U under H0: f(i, j) = f(i-1, j) shifted by j (the largest value is one of
        # a's, above all j of b's) + f(i, j-1); one row of i at a time
        row = [np.ones(1) for _ in range(n + 1)]
        for i in range(1, m + 1):
            new = [np.ones(1)]
            for j in range(1, n + 1):
                dist = np.zeros(i * j + 1)
                dist[j:] += row[j]
                dist[: i * (j - 1) + 1] += new[j - 1]
                new.append(dist)
            row = new
        pmf = row[n] / row[n].sum()
        k = round(u)
        return float(min(1.0, 2 * min(pmf[: k + 1].sum(), pmf[k:].sum())))
    total = m + n
    tie_term = float((ties**3 - ties).sum()) / (total * (total - 1))
    sigma = math.sqrt(m * n / 12 * ((total + 1) - tie_term))
    if sigma == 0:
        return 1.0
    delta = u - m * n / 2
    z = (abs(delta) - 0.5) / sigma if abs(delta) >= 0.5 else 0.0
    return two_sided_normal(z)


@dataclass(frozen=True)
class RttChange:
    orchestrator: str
    pipeline: str
    model: str
    previous_s: float
    current_s: float
    change: float
    """Relative: current / previous - 1."""
    verdict: Literal["slower", "faster", "same"]
    method: str
    """"threshold" (no noise estimate: one or few jobs) or "Mann-Whitney U" (with its p-value)."""
    p_value: float | None = None


@dataclass(frozen=True)
class MatrixComparison:
    previous_dir: Path
    rel_threshold: float
    abs_floor_s: float
    stopped_answering: list[str] = field(default_factory=list)
    started_answering: list[str] = field(default_factory=list)
    new_orchestrators: list[str] = field(default_factory=list)
    gone_orchestrators: list[str] = field(default_factory=list)
    cells_stopped: list[tuple[str, str, str]] = field(default_factory=list)
    cells_started: list[tuple[str, str, str]] = field(default_factory=list)
    new_cells: list[tuple[str, str, str]] = field(default_factory=list)
    gone_cells: list[tuple[str, str, str]] = field(default_factory=list)
    rtt: list[RttChange] = field(default_factory=list)

    @property
    def slower(self) -> list[RttChange]:
        return [r for r in self.rtt if r.verdict == "slower"]

    @property
    def faster(self) -> list[RttChange]:
        return [r for r in self.rtt if r.verdict == "faster"]


def _rtt_change(before: Cell, after: Cell, rel: float, floor_s: float) -> RttChange | None:
    # only successes' means compare: a failure's round trip says how fast it failed, not how fast it works
    if before.rtt_of != "successes" or after.rtt_of != "successes" or before.rtt_s is None:
        return None
    if after.rtt_s is None or before.rtt_s <= 0:
        return None
    prev, cur = before.rtt_s, after.rtt_s
    beyond = max(rel * prev, floor_s)
    verdict: Literal["slower", "faster", "same"] = (
        "slower" if cur - prev > beyond else "faster" if prev - cur > beyond else "same"
    )
    method, p_value = "threshold", None
    a, b = list(before.round_trips_s), list(after.round_trips_s)
    if min(len(a), len(b)) >= MIN_TEST_JOBS:
        method, p_value = "Mann-Whitney U", mann_whitney(a, b)
        verdict = verdict if p_value < ALPHA else "same"
    return RttChange(*after.key, prev, cur, cur / prev - 1, verdict, method, p_value)


def compare_matrix(
    previous: Matrix, current: Matrix, rel_threshold: float = REL_THRESHOLD, abs_floor_s: float = ABS_FLOOR_S
) -> MatrixComparison:
    """What changed from `previous` to `current`: orchestrators and cells that stopped or started
    answering (at least one success before, none now, and the reverse), appeared or went, and cells
    whose mean round trip moved beyond `rel_threshold` and `abs_floor_s` (and, with MIN_TEST_JOBS
    successful round trips in both runs, significantly by the Mann-Whitney U test)."""
    out = MatrixComparison(previous.run_dir, rel_threshold, abs_floor_s)

    def answered(cells: list[Cell]) -> tuple[bool, bool]:
        """(was tested, had a success)"""
        return any(c.jobs for c in cells), any(c.successes for c in cells)

    before_orchs, after_orchs = set(previous.orchestrators), set(current.orchestrators)
    out.new_orchestrators.extend(sorted(after_orchs - before_orchs))
    out.gone_orchestrators.extend(sorted(before_orchs - after_orchs))
    for orch in sorted(before_orchs & after_orchs):
        (tested_a, ok_a), (tested_b, ok_b) = (
            answered(previous.cells_of(orch)),
            answered(current.cells_of(orch)),
        )
        if ok_a and tested_b and not ok_b:
            out.stopped_answering.append(orch)
        elif tested_a and not ok_a and ok_b:
            out.started_answering.append(orch)
    before = {c.key: c for c in previous.cells}
    after = {c.key: c for c in current.cells}
    out.new_cells.extend(sorted(after.keys() - before.keys()))
    out.gone_cells.extend(sorted(before.keys() - after.keys()))
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        if a.successes and b.jobs and not b.successes:
            out.cells_stopped.append(key)
        elif a.jobs and not a.successes and b.successes:
            out.cells_started.append(key)
        change = _rtt_change(a, b, rel_threshold, abs_floor_s)
        if change is not None:
            out.rtt.append(change)
    return out


# --- the report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixReport:
    html: Path
    summary_md: Path
    matrix_json: Path
    orchestrators: int
    cells: int
    jobs: int
    successes: int
    down: list[str]
    not_posted: int
    """Stats the leaderboard did not get (failed or never attempted); dry runs are not counted here."""
    dry_run: bool
    previous: Path | None
    comparison: MatrixComparison | None
    messages: list[str]
    """One line each: notes on the files, the PNG export's notice."""


def _load_rows(run_dir: Path) -> list[dict[str, str]]:
    """The load step's rows (ORCH_LOAD_CSV), empty without a load step."""
    path = run_dir / ORCH_LOAD_CSV
    if not path.is_file():
        return []
    return [row for _, row in _rows(path, ORCH_LOAD_COLUMNS)]


def write_matrix_report(run_dir: Path, png: bool = False) -> MatrixReport:
    """Write report.html, summary.md and matrix.json (and, with `png`, a PNG per heat map) into
    `run_dir`, compared with the previous run of the same config when there is one."""
    # matrix_render builds on this module's types, so it is imported here, not at the top
    from inferswarm.report import matrix_render as mr
    from inferswarm.report.render import write_pngs
    from inferswarm.rundir import write_atomic, write_json_atomic

    matrix = load_matrix(run_dir)
    messages = list(matrix.notes)
    previous = previous_run(run_dir)
    comparison = None
    if previous is not None:
        try:
            comparison = compare_matrix(load_matrix(previous), matrix)
        except MatrixFileError as exc:  # a broken earlier run must not cost this run its report
            messages.append(f"previous run not compared: {exc}")
    orchs, pipes = mr.orchestrator_rows(matrix), mr.pipeline_rows(matrix)
    errors, posts = mr.error_rows(matrix), mr.post_counts(matrix)
    head = "\n".join(mr.summary_head(matrix, orchs, posts)) + "\n"
    alerts = mr.alert_lines(matrix, orchs, posts)
    load = _load_rows(run_dir)
    body = mr.summary_body(matrix, orchs, pipes, errors, posts, comparison, messages, load)
    body_md = "\n".join(body) + "\n"
    figures = mr.matrix_figures(matrix)
    if png:
        _, notice = write_pngs(figures, run_dir)
        if notice:
            messages.append(notice)
    paths = (run_dir / "report.html", run_dir / "summary.md", run_dir / "matrix.json")
    write_atomic(paths[0], mr.matrix_html(head, figures, body_md, alerts))
    write_atomic(paths[1], head + "".join(f"\n{a}\n" for a in alerts) + "\n" + body_md)
    document = mr.matrix_document(matrix, orchs, pipes, errors, posts, comparison)
    if load:
        document["load"] = load
    write_json_atomic(paths[2], document)
    return MatrixReport(
        *paths,
        orchestrators=len(orchs),
        cells=len(matrix.cells),
        jobs=sum(o.jobs for o in orchs),
        successes=sum(o.successes for o in orchs),
        down=[o.address for o in orchs if o.status == "down"],
        not_posted=posts.get("failed", 0) + posts.get("not_posted", 0),
        dry_run=matrix.dry_run,
        previous=previous if comparison is not None else None,
        comparison=comparison,
        messages=messages,
    )
