"""The readiness load kind's end condition and timeline: where each detector's answer came from, per
iteration, until every detector answered from the edge in the same iteration.

`ReadinessLedger` (every process) turns each request event into one row (iteration, detector, times,
status, answer); a worker ships its rows to the master with Locust's own stats report. `ReadinessMonitor`
(the master or the local runner) appends the rows to PREFIX_readiness.csv, prints each iteration's
answers, and ends the run (through `end_run`) at the first iteration where every detector answered from
the edge, or when it gives up: `timeout_s` after the first request that got an HTTP answer (the timer of
seed 001's memory-pressure test), or `connect_timeout_s` after the start when nothing answered at all.
What it found goes into run.json's `readiness` section (`ReadinessMonitor.summary`).

Alongside, the owner polls the endpoint's own readiness routes every interval (`RoutePoller`):
`/edge-detector-readiness` (per detector `{"det_x": {"ready": bool}}`) and `/health/ready` (200 or 503),
into PREFIX_readiness_routes.csv; `EndpointReadiness` keeps when each flipped to ready, so run.json's
`readiness` section has each detector's endpoint-side readiness next to its first edge answer.

Where an answer came from is the protocol's observation (`inferswarm.locust.outcome.OBSERVATIONS`):
`edge_ms` for an edge answer, `cloud_ms` for a cloud one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.config import RunConfig
from inferswarm.derived import CLOUD_MS, EDGE_MS
from inferswarm.load import ReadinessPlan
from inferswarm.locust.outcome import OBSERVATIONS, SLOT, STATUS
from inferswarm.protocols.groundlight import GroundlightCapability
from inferswarm.rundir import READINESS_COLUMNS, READINESS_ROUTE_COLUMNS, CsvAppender

REPORT_KEY = "inferswarm_readiness"
NOT_READY = "not_ready"
REFUSED = "refused"
CONNECTION_ERROR = "connection_error"
HEALTH_READY = "/health/ready"
DETECTOR_READINESS = "/edge-detector-readiness"


@dataclass(frozen=True)
class Row:
    iteration: int
    """0-based (the request's slot); files and messages count from 1."""
    name: str
    start_epoch_s: float
    end_epoch_s: float
    status: int
    answer: str
    response_ms: float


def answer_of(exception: BaseException | None, context: dict[str, Any]) -> str:
    """edge, cloud, answer (a success that said neither), not_ready, refused, or the failure's category."""
    if exception is None:
        metrics = {str(pair[0]) for pair in context.get(OBSERVATIONS) or () if pair}
        if EDGE_MS in metrics:
            return "edge"
        if CLOUD_MS in metrics:
            return "cloud"
        return "answer"
    category = str(getattr(exception, "category", "") or "failed")
    if category == NOT_READY:
        return NOT_READY
    if category == CONNECTION_ERROR and not context.get(STATUS):
        return REFUSED
    return category


class ReadinessLedger:
    """Rows of this process's requests; `sink` takes them (the owner), or they go to the master."""

    def __init__(self, environment: Environment, sink: Callable[[list[Row]], None] | None = None) -> None:
        self.pending: list[Row] = []
        self.sink = sink
        environment.events.request.add_listener(self._on_request)
        if isinstance(environment.runner, WorkerRunner):
            environment.events.report_to_master.add_listener(self._ship)
        elif isinstance(environment.runner, MasterRunner):
            environment.events.worker_report.add_listener(self._merge)

    def _on_request(
        self,
        name: str,
        response_time: float = 0.0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        context = context or {}
        slot = context.get(SLOT)
        if slot is None:
            return
        start = start_time if start_time is not None else time.time() - response_time / 1000.0
        row = Row(
            int(slot),
            name,
            float(start),
            float(start) + float(response_time) / 1000.0,
            int(context.get(STATUS) or 0),
            answer_of(exception, context),
            float(response_time),
        )
        self._take([row])

    def _take(self, rows: list[Row]) -> None:
        if self.sink is not None:
            self.sink(rows)
        else:
            self.pending += rows

    def _ship(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = [
            [r.iteration, r.name, r.start_epoch_s, r.end_epoch_s, r.status, r.answer, r.response_ms]
            for r in self.pending
        ]
        self.pending = []

    def _merge(self, client_id: str, data: dict[str, Any]) -> None:
        shipped = data.get(REPORT_KEY) or []
        rows = [
            Row(int(i), str(n), float(s), float(e), int(st), str(a), float(ms))
            for i, n, s, e, st, a, ms in shipped
        ]
        if rows:
            self._take(rows)


@dataclass(frozen=True)
class RouteRow:
    """One reading of an endpoint readiness route: `/health/ready` (name "") or one detector's entry
    of `/edge-detector-readiness`."""

    epoch_s: float
    route: str
    name: str
    detector_id: str
    status: int
    """0: no HTTP answer (connection refused, timed out)."""
    ready: bool | None
    """None: the answer said nothing about it (another status, the detector missing, not JSON)."""


def get(url: str, timeout_s: float, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """(status, body) of a GET; (0, b"") when nothing answered."""
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def detector_ids(config: RunConfig, names: Iterable[str]) -> dict[str, str]:
    """Capability name -> detector id, for the `groundlight` capabilities among `names`."""
    wanted = set(names)
    return {
        cap.name: cap.detector_id
        for cap in config.capabilities
        if cap.name in wanted and isinstance(cap, GroundlightCapability)
    }


class RoutePoller:
    """Reads `/health/ready` and `/edge-detector-readiness` of the endpoint once per call."""

    def __init__(
        self,
        base_url: str,
        detector_ids: Mapping[str, str],
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.detector_ids = dict(detector_ids)
        """capability name -> its detector id (the routes' keys)."""
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.clock = clock

    def poll(self) -> list[RouteRow]:
        now = self.clock()
        status, _ = get(self.base_url + HEALTH_READY, self.timeout_s, self.headers)
        health = {200: True, 503: False}.get(status)
        rows = [RouteRow(now, HEALTH_READY, "", "", status, health)]
        if not self.detector_ids:
            return rows
        now = self.clock()
        status, body = get(self.base_url + DETECTOR_READINESS, self.timeout_s, self.headers)
        doc: object = None
        if status == 200:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
        for name, det_id in self.detector_ids.items():
            entry = doc.get(det_id) if isinstance(doc, dict) else None
            flag = entry.get("ready") if isinstance(entry, dict) else None
            ready = flag if isinstance(flag, bool) else None
            rows.append(RouteRow(now, DETECTOR_READINESS, name, det_id, status, ready))
        return rows


@dataclass
class RouteSeries:
    """What one route said over the run: when it first said ready (after not ready, or at its first
    reading), when it was last seen not ready, and how often its answer changed."""

    first_ready_epoch_s: float | None = None
    last_not_ready_epoch_s: float | None = None
    last: bool | None = None
    flips: int = 0
    readings: int = 0

    def add(self, epoch_s: float, ready: bool | None) -> None:
        if ready is None:
            return
        self.readings += 1
        if self.last is not None and ready != self.last:
            self.flips += 1
        self.last = ready
        if ready and self.first_ready_epoch_s is None:
            self.first_ready_epoch_s = epoch_s
        if not ready:
            self.last_not_ready_epoch_s = epoch_s


@dataclass
class EndpointReadiness:
    """The endpoint's own readiness routes, per detector (capability name) and `/health/ready`."""

    health: RouteSeries = field(default_factory=RouteSeries)
    detectors: dict[str, RouteSeries] = field(default_factory=dict)
    polls: int = 0

    def add(self, rows: Iterable[RouteRow]) -> None:
        for row in rows:
            if row.route == HEALTH_READY:
                self.polls += 1
                self.health.add(row.epoch_s, row.ready)
            else:
                self.detectors.setdefault(row.name, RouteSeries()).add(row.epoch_s, row.ready)


@dataclass
class ReadinessState:
    """What the rows so far say; no Locust, no clock (tested on its own)."""

    plan: ReadinessPlan
    first_connection_epoch_s: float | None = None
    """The end of the first request that got an HTTP answer: the timer starts here."""
    edge_in: dict[int, set[str]] = field(default_factory=dict)
    """iteration -> detectors that answered from the edge in it."""
    answers: dict[int, dict[str, str]] = field(default_factory=dict)
    """iteration -> detector -> answer."""
    last_end: dict[int, float] = field(default_factory=dict)
    """iteration -> when its last answer came."""
    first_edge: dict[str, tuple[int, float]] = field(default_factory=dict)
    """detector -> (iteration, epoch s) of its first edge answer."""
    ready_iteration: int | None = None
    endpoint: EndpointReadiness | None = None
    """The endpoint's readiness routes, when they are polled."""

    def add(self, rows: Iterable[Row]) -> None:
        wanted = set(self.plan.capabilities)
        for row in rows:
            if row.name not in wanted:
                continue
            if row.status and (
                self.first_connection_epoch_s is None or row.end_epoch_s < self.first_connection_epoch_s
            ):
                self.first_connection_epoch_s = row.end_epoch_s
            self.answers.setdefault(row.iteration, {})[row.name] = row.answer
            self.last_end[row.iteration] = max(self.last_end.get(row.iteration, 0.0), row.end_epoch_s)
            if row.answer != "edge":
                continue
            self.edge_in.setdefault(row.iteration, set()).add(row.name)
            first = self.first_edge.get(row.name)
            if first is None or row.end_epoch_s < first[1]:
                self.first_edge[row.name] = (row.iteration, row.end_epoch_s)
            if self.edge_in[row.iteration] >= wanted and (
                self.ready_iteration is None or row.iteration < self.ready_iteration
            ):
                self.ready_iteration = row.iteration

    @property
    def ready(self) -> bool:
        return self.ready_iteration is not None

    @property
    def ready_epoch_s(self) -> float | None:
        return None if self.ready_iteration is None else self.last_end[self.ready_iteration]

    def gave_up(self, now_s: float, started_s: float) -> str | None:
        """Why the run gives up at `now_s` (None: keep going)."""
        if self.ready:
            return None
        plan = self.plan
        if self.first_connection_epoch_s is None:
            if now_s - started_s >= plan.connect_timeout_s:
                return f"nothing answered within connect_timeout_s ({plan.connect_timeout_s:g} s)"
            return None
        if now_s - self.first_connection_epoch_s >= plan.timeout_s:
            missing = [n for n in plan.capabilities if n not in self.first_edge]
            what = f"{len(missing)} never answered from the edge" if missing else "never all in one iteration"
            return f"not all ready within timeout_s ({plan.timeout_s:g} s after the first connection): {what}"
        return None

    def since_connection(self, epoch_s: float | None) -> float | None:
        if epoch_s is None or self.first_connection_epoch_s is None:
            return None
        return round(epoch_s - self.first_connection_epoch_s, 3)

    def summary(self, outcome: str, why: str | None = None) -> dict[str, Any]:
        """run.json's `readiness` section."""
        detectors: dict[str, dict[str, Any]] = {}
        endpoint = self.endpoint
        for name in self.plan.capabilities:
            first = self.first_edge.get(name)
            detectors[name] = {
                "first_edge_iteration": first[0] + 1 if first else None,
                "first_edge_epoch_s": round(first[1], 3) if first else None,
                "first_edge_s": self.since_connection(first[1]) if first else None,
            }
            if endpoint is not None:
                detectors[name].update(self._route_fields(endpoint.detectors.get(name, RouteSeries())))
        ready_at = self.ready_epoch_s
        routes: dict[str, Any] = {}
        if endpoint is not None:
            routes = {"route_polls": endpoint.polls, "health_ready": self._route_fields(endpoint.health)}
        return {
            "outcome": outcome,
            "why": why,
            "interval_s": self.plan.interval_s,
            "timeout_s": self.plan.timeout_s,
            "connect_timeout_s": self.plan.connect_timeout_s,
            "first_connection_epoch_s": (
                round(self.first_connection_epoch_s, 3) if self.first_connection_epoch_s else None
            ),
            "iterations": len(self.answers),
            "ready_iteration": self.ready_iteration + 1 if self.ready_iteration is not None else None,
            "ready_epoch_s": round(ready_at, 3) if ready_at is not None else None,
            "time_to_all_ready_s": self.since_connection(ready_at),
            "detectors": detectors,
            **routes,
        }

    def _route_fields(self, series: RouteSeries) -> dict[str, Any]:
        """`endpoint_ready_*`: when the route first said ready; `endpoint_last_not_ready_epoch_s`: the
        last reading before that said not ready (the flip lies between the two)."""
        ready = series.first_ready_epoch_s
        return {
            "endpoint_ready_epoch_s": round(ready, 3) if ready is not None else None,
            "endpoint_ready_s": self.since_connection(ready),
            "endpoint_last_not_ready_epoch_s": (
                round(series.last_not_ready_epoch_s, 3) if series.last_not_ready_epoch_s is not None else None
            ),
            "endpoint_flips": series.flips,
            "endpoint_readings": series.readings,
        }


def iteration_line(iteration: int, answers: dict[str, str], total: int) -> str:
    counts: dict[str, int] = {}
    for answer in answers.values():
        counts[answer] = counts.get(answer, 0) + 1
    parts = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    edge = counts.get("edge", 0)
    return f"iteration {iteration + 1}: {edge} of {total} detectors answered from the edge ({parts})"


class ReadinessMonitor:
    """The owner's side: the CSV, the console, the end condition and run.json's `readiness` section."""

    def __init__(
        self,
        environment: Environment,
        plan: ReadinessPlan,
        csv_path: Path,
        end_run: Callable[[], None],
        save: Callable[[dict[str, Any]], None],
        out: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        routes: RoutePoller | None = None,
        routes_csv_path: Path | None = None,
    ) -> None:
        self.state = ReadinessState(plan)
        self.csv = CsvAppender(csv_path, READINESS_COLUMNS)
        self.routes = routes
        self.routes_csv: CsvAppender | None = None
        if routes is not None and routes_csv_path is not None:
            self.state.endpoint = EndpointReadiness()
            self.routes_csv = CsvAppender(routes_csv_path, READINESS_ROUTE_COLUMNS)
        self._routes_loop: gevent.Greenlet[Any, Any] | None = None
        self._why: str | None = None
        self.end_run = end_run
        self.save = save
        self.out = out or (lambda text: print(text, flush=True))
        self.clock = clock
        self.started_s: float | None = None
        self.outcome: str | None = None
        self._printed: set[int] = set()
        self._loop: gevent.Greenlet[Any, Any] | None = None
        self.ledger = ReadinessLedger(environment, sink=self.take)

    def start(self) -> None:
        if self.started_s is not None:
            return
        self.started_s = self.clock()
        plan = self.state.plan
        self.out(
            f"READINESS: one query to each of {', '.join(plan.capabilities)} every {plan.interval_s:g}s "
            f"until all answer from the edge in one iteration (timeout {plan.timeout_s:g}s after the "
            "first connection; connection refusals are expected while the endpoint comes up)"
        )
        self.save(self.state.summary("running"))
        self._loop = gevent.spawn(self._run)
        if self.routes is not None:
            self._routes_loop = gevent.spawn(self._poll_routes)

    def _poll_routes(self) -> None:
        """Every interval (from the start, like the iterations) until the run stops."""
        assert self.routes is not None and self.started_s is not None
        interval = self.state.plan.interval_s
        ticks = 0
        while True:
            self.take_routes(self.routes.poll())
            ticks += 1
            gevent.sleep(max(0.0, self.started_s + ticks * interval - self.clock()))

    def take_routes(self, rows: Sequence[RouteRow]) -> None:
        if self.routes_csv is None or self.state.endpoint is None:
            return
        started = self.started_s if self.started_s is not None else self.clock()
        self.routes_csv.rows(
            [
                f"{r.epoch_s - started:.3f}",
                f"{r.epoch_s:.3f}",
                r.route,
                r.name,
                r.detector_id,
                r.status,
                "" if r.ready is None else int(r.ready),
            ]
            for r in rows
        )
        endpoint = self.state.endpoint
        before = {name: series.first_ready_epoch_s for name, series in endpoint.detectors.items()}
        health_before = endpoint.health.first_ready_epoch_s
        endpoint.add(rows)
        if health_before is None and endpoint.health.first_ready_epoch_s is not None:
            self.out("READINESS: the endpoint says it is ready (/health/ready)")
        for name, series in endpoint.detectors.items():
            if before.get(name) is None and series.first_ready_epoch_s is not None:
                self.out(f"READINESS: {name}: the endpoint says its inference pod is ready")

    def _run(self) -> None:
        while self.outcome is None:
            gevent.sleep(min(self.state.plan.interval_s / 2, 1.0))
            self.check()

    def take(self, rows: Sequence[Row]) -> None:
        started = self.started_s if self.started_s is not None else self.clock()
        self.csv.rows(
            [
                r.iteration + 1,
                r.name,
                f"{r.start_epoch_s - started:.3f}",
                f"{r.start_epoch_s:.3f}",
                f"{r.end_epoch_s:.3f}",
                r.status,
                r.answer,
                f"{r.response_ms:.1f}",
            ]
            for r in rows
        )
        had_connection = self.state.first_connection_epoch_s is not None
        self.state.add(rows)
        if not had_connection and self.state.first_connection_epoch_s is not None:
            self.out("READINESS: the endpoint answered; the timer starts now")
        self._print_iterations(final=False)
        if self.state.ready and self.outcome is None:
            self._finish("ready", None)

    def _print_iterations(self, final: bool) -> None:
        total = len(self.state.plan.capabilities)
        for iteration in sorted(self.state.answers):
            answers = self.state.answers[iteration]
            if iteration in self._printed or (len(answers) < total and not final):
                continue
            self._printed.add(iteration)
            self.out(iteration_line(iteration, answers, total))

    def check(self) -> None:
        """Give up when a timeout has passed (called on a timer)."""
        if self.outcome is not None or self.started_s is None:
            return
        why = self.state.gave_up(self.clock(), self.started_s)
        if why is not None:
            self._finish("timed_out", why)

    def _finish(self, outcome: str, why: str | None) -> None:
        self.outcome = outcome
        self._why = why
        state = self.state
        if outcome == "ready":
            self.out(
                f"READINESS: all {len(state.plan.capabilities)} detectors answered from the edge in "
                f"iteration {(state.ready_iteration or 0) + 1}, {state.since_connection(state.ready_epoch_s)}"
                " s after the first connection"
            )
        else:
            self.out(f"READINESS: gave up: {why}")
        self.save(state.summary(outcome, why))
        self.end_run()

    def stop(self) -> None:
        """The run is ending (ready, given up, or stopped from outside): final lines and run.json."""
        for loop in (self._loop, self._routes_loop):
            if loop is not None:
                loop.kill(block=False)
        self._loop = self._routes_loop = None
        self._print_iterations(final=True)
        self.csv.close()
        endpoint = self.state.endpoint
        # ready by the answers: one last reading, so a route that flipped since its last poll counts
        if (
            self.routes is not None
            and endpoint is not None
            and self.outcome == "ready"
            and any(
                endpoint.detectors.get(name, RouteSeries()).first_ready_epoch_s is None
                for name in self.routes.detector_ids
            )
        ):
            self.take_routes(self.routes.poll())
        if self.routes_csv is not None:
            self.routes_csv.close()
        if self.outcome is None:
            self.outcome = "stopped"
            self._why = "the run ended before every detector was ready"
            self.save(self.state.summary(self.outcome, self._why))
        elif self.state.endpoint is not None:  # the route readings taken after the end condition
            self.save(self.state.summary(self.outcome, self._why))
        for name, (iteration, epoch) in sorted(self.state.first_edge.items()):
            since = self.state.since_connection(epoch)
            self.out(f"  {name}: first edge answer in iteration {iteration + 1} ({since} s)")
