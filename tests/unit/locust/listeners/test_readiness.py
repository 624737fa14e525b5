"""The readiness end condition: rows from request events, the timer from the first HTTP answer, the
first iteration where every detector answered from the edge, the timeouts, the CSV and run.json."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from inferswarm.emulator.launcher import free_port
from inferswarm.load import ReadinessPlan
from inferswarm.locust.listeners.readiness import (
    EndpointReadiness,
    ReadinessLedger,
    ReadinessMonitor,
    ReadinessState,
    RoutePoller,
    RouteRow,
    Row,
    answer_of,
)
from inferswarm.locust.outcome import OBSERVATIONS, SLOT, STATUS
from inferswarm.rundir import READINESS_COLUMNS, READINESS_ROUTE_COLUMNS
from tests.unit.emulator.conftest import INSTANT, instant_settings, serve
from tests.unit.locust.listeners.events import env_on, local_env

PLAN = ReadinessPlan(("det-a", "det-b"), interval_s=1.0, timeout_s=30.0, connect_timeout_s=60.0)


class Failure(Exception):
    def __init__(self, category: str) -> None:
        super().__init__(f"{category}: x")
        self.category = category


EDGE = {OBSERVATIONS: [("edge_ms", 12.0), ("confidence_pct", 95.0)]}
CLOUD = {OBSERVATIONS: [("cloud_ms", 300.0)]}


def test_answers_by_source_and_failure() -> None:
    assert answer_of(None, {STATUS: 200, **EDGE}) == "edge"
    assert answer_of(None, {STATUS: 201, **CLOUD}) == "cloud"
    assert answer_of(None, {STATUS: 200}) == "answer"
    assert answer_of(Failure("not_ready"), {STATUS: 503}) == "not_ready"
    assert answer_of(Failure("connection_error"), {STATUS: 0}) == "refused"
    assert answer_of(Failure("capacity"), {STATUS: 429}) == "capacity"
    assert answer_of(ValueError("x"), {STATUS: 500}) == "failed"


def row(iteration: int, name: str, end: float, answer: str, status: int = 200) -> Row:
    return Row(iteration, name, end - 0.01, end, status, answer, 10.0)


def test_the_timer_starts_at_the_first_http_answer_and_ready_needs_one_iteration() -> None:
    state = ReadinessState(PLAN)
    state.add([row(0, "det-a", 100.0, "refused", 0), row(0, "det-b", 100.0, "refused", 0)])
    assert state.first_connection_epoch_s is None
    assert state.gave_up(159.0, 100.0) is None
    state.add([row(1, "det-a", 101.0, "not_ready", 503), row(1, "det-b", 101.2, "cloud", 201)])
    assert state.first_connection_epoch_s == 101.0
    state.add([row(2, "det-a", 102.1, "edge"), row(2, "det-b", 102.1, "cloud", 201)])
    state.add([row(3, "det-a", 103.1, "not_ready", 503), row(3, "det-b", 103.2, "edge")])
    assert not state.ready  # both answered from the edge, never in the same iteration
    state.add([row(4, "det-b", 104.3, "edge"), row(4, "det-a", 104.5, "edge")])
    assert state.ready and state.ready_iteration == 4 and state.ready_epoch_s == 104.5
    summary = state.summary("ready")
    assert summary["time_to_all_ready_s"] == 3.5
    assert summary["ready_iteration"] == 5 and summary["iterations"] == 5
    assert summary["first_connection_epoch_s"] == 101.0
    assert summary["detectors"] == {
        "det-a": {"first_edge_iteration": 3, "first_edge_epoch_s": 102.1, "first_edge_s": 1.1},
        "det-b": {"first_edge_iteration": 4, "first_edge_epoch_s": 103.2, "first_edge_s": 2.2},
    }
    assert state.gave_up(1000.0, 100.0) is None  # ready: never gives up


def test_rows_out_of_order_and_other_capabilities() -> None:
    state = ReadinessState(PLAN)
    state.add([row(5, "det-a", 105.0, "edge"), row(5, "gpu-check", 105.0, "answer")])
    state.add([row(2, "det-a", 102.0, "edge"), row(2, "det-b", 102.5, "edge"), row(5, "det-b", 105, "edge")])
    assert state.ready_iteration == 2  # the earliest all-edge iteration, whatever the arrival order
    assert state.first_edge["det-a"] == (2, 102.0)
    assert 5 in state.answers and "gpu-check" not in state.answers[5]


def test_it_gives_up_after_either_timeout() -> None:
    state = ReadinessState(PLAN)
    assert state.gave_up(160.0, 100.0) == "nothing answered within connect_timeout_s (60 s)"
    state.add([row(0, "det-a", 110.0, "edge"), row(0, "det-b", 110.0, "not_ready", 503)])
    assert state.gave_up(139.9, 100.0) is None
    assert state.gave_up(140.0, 100.0) == (
        "not all ready within timeout_s (30 s after the first connection): 1 never answered from the edge"
    )


def fire(env: Any, name: str, slot: int, exception: BaseException | None = None, **context: Any) -> None:
    env.events.request.fire(
        request_type="POST",
        name=name,
        response_time=20.0,
        response_length=0,
        exception=exception,
        context={SLOT: slot, **context},
        start_time=1000.0 + slot,
    )


def test_the_monitor_writes_the_timeline_and_ends_the_run_once(tmp_path: Path) -> None:
    env = local_env()
    ended: list[bool] = []
    saved: list[dict[str, Any]] = []
    lines: list[str] = []
    path = tmp_path / "locust_readiness.csv"
    monitor = ReadinessMonitor(
        env, PLAN, path, lambda: ended.append(True), saved.append, lines.append, clock=lambda: 1000.0
    )
    monitor.start()
    fire(env, "det-a", 0, Failure("connection_error"), **{STATUS: 0})
    fire(env, "det-b", 0, Failure("connection_error"), **{STATUS: 0})
    fire(env, "det-a", 1, Failure("not_ready"), **{STATUS: 503})
    fire(env, "det-b", 1, None, **{STATUS: 201}, **CLOUD)
    fire(env, "det-a", 2, None, **{STATUS: 200}, **EDGE)
    assert not ended
    fire(env, "det-b", 2, None, **{STATUS: 200}, **EDGE)
    assert ended == [True]
    fire(env, "det-a", 3, None, **{STATUS: 200}, **EDGE)  # a request still in flight: recorded, no new end
    monitor.stop()
    assert ended == [True]
    assert saved[-1]["outcome"] == "ready" and saved[-1]["time_to_all_ready_s"] == 1.0
    assert "iteration 2: 0 of 2 detectors answered from the edge (1 cloud, 1 not_ready)" in lines
    assert any("all 2 detectors answered from the edge in iteration 3, 1.0 s" in line for line in lines)
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == READINESS_COLUMNS
    assert [(r[0], r[1], r[2], r[5], r[6]) for r in rows[1:]] == [
        ("1", "det-a", "0.000", "0", "refused"),
        ("1", "det-b", "0.000", "0", "refused"),
        ("2", "det-a", "1.000", "503", "not_ready"),
        ("2", "det-b", "1.000", "201", "cloud"),
        ("3", "det-a", "2.000", "200", "edge"),
        ("3", "det-b", "2.000", "200", "edge"),
        ("4", "det-a", "3.000", "200", "edge"),
    ]


def test_a_run_stopped_before_ready_says_so(tmp_path: Path) -> None:
    env = local_env()
    saved: list[dict[str, Any]] = []
    monitor = ReadinessMonitor(
        env, PLAN, tmp_path / "r.csv", lambda: None, saved.append, lambda _: None, clock=lambda: 1000.0
    )
    monitor.start()
    fire(env, "det-a", 0, None, **{STATUS: 200}, **EDGE)
    monitor.stop()
    assert saved[-1]["outcome"] == "stopped" and saved[-1]["time_to_all_ready_s"] is None
    assert saved[-1]["detectors"]["det-b"]["first_edge_s"] is None


def test_workers_ship_rows_the_master_merges() -> None:
    worker = env_on(WorkerRunner)
    shipped_to = ReadinessLedger(worker)
    fire(worker, "det-a", 4, None, **{STATUS: 200}, **EDGE)
    data: dict[str, Any] = {}
    worker.events.report_to_master.fire(client_id="w1", data=data)
    assert shipped_to.pending == []
    master = env_on(MasterRunner)
    got: list[Row] = []
    ReadinessLedger(master, sink=got.extend)
    master.events.worker_report.fire(client_id="w1", data=data)
    assert got == [Row(4, "det-a", 1004.0, 1004.02, 200, "edge", 20.0)]


# --- the endpoint's readiness routes, polled alongside ----------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


EDGE_TARGET = {
    "ready_after_s": 1,
    "detectors": [
        {"id": "det_a", "mode": "BINARY", "online_after_s": 2, "service_time": INSTANT},
        {"id": "det_b", "mode": "COUNT", "online_after_s": 4, "service_time": INSTANT},
    ],
}
ROUTES_PLAN = ReadinessPlan(
    ("a", "b"), interval_s=1.0, timeout_s=30.0, connect_timeout_s=60.0, poll_routes=True
)


def test_route_poller_reads_the_reference_targets_routes() -> None:
    clock = Clock(1000.0)
    with serve(instant_settings(edge=EDGE_TARGET)) as target:
        target.app.state.edge.reset(clock)
        poller = RoutePoller(target.url, {"a": "det_a", "b": "det_b", "c": "det_missing"}, 5.0, clock=clock)
        readings = []
        for _ in range(6):
            readings.append([(r.route, r.name, r.detector_id, r.status, r.ready) for r in poller.poll()])
            clock.now += 1.0
    assert readings[0] == [
        ("/health/ready", "", "", 503, False),
        ("/edge-detector-readiness", "a", "det_a", 200, False),
        ("/edge-detector-readiness", "b", "det_b", 200, False),
        ("/edge-detector-readiness", "c", "det_missing", 200, None),  # not a detector the endpoint knows
    ]
    ready = [[r[4] for r in reading[:3]] for reading in readings]
    assert ready == [
        [False, False, False],
        [True, False, False],
        [True, True, False],
        [True, True, False],
        [True, True, True],
        [True, True, True],
    ]


def test_route_poller_without_the_routes_or_an_endpoint() -> None:
    with serve(instant_settings()) as target:  # no edge section: both routes are 404
        rows = RoutePoller(target.url, {"a": "det_a"}, 5.0).poll()
    assert [(r.status, r.ready) for r in rows] == [(404, None), (404, None)]
    refused = RoutePoller(f"http://127.0.0.1:{free_port()}", {"a": "det_a"}, 1.0).poll()
    assert [(r.route, r.status, r.ready) for r in refused] == [
        ("/health/ready", 0, None),
        ("/edge-detector-readiness", 0, None),
    ]


def route_row(epoch: float, name: str, ready: bool | None, status: int = 200) -> RouteRow:
    route = "/health/ready" if not name else "/edge-detector-readiness"
    return RouteRow(epoch, route, name, f"det_{name}" if name else "", status, ready)


def test_endpoint_readiness_records_the_flips() -> None:
    endpoint = EndpointReadiness()
    endpoint.add([route_row(100.0, "", None, 0), route_row(100.0, "a", None, 0)])  # refused
    endpoint.add([route_row(101.0, "", False, 503), route_row(101.0, "a", False)])
    endpoint.add([route_row(102.0, "", True), route_row(102.0, "a", True)])
    endpoint.add([route_row(103.0, "", True), route_row(103.0, "a", False)])  # the pod restarted
    endpoint.add([route_row(104.0, "", True), route_row(104.0, "a", True)])
    assert endpoint.polls == 5
    a = endpoint.detectors["a"]
    assert (a.first_ready_epoch_s, a.last_not_ready_epoch_s, a.flips, a.readings) == (102.0, 103.0, 3, 4)
    health = endpoint.health
    assert (health.first_ready_epoch_s, health.last_not_ready_epoch_s, health.flips) == (102.0, 101.0, 1)


def test_the_monitor_records_the_routes_beside_the_answers(tmp_path: Path) -> None:
    env = local_env()
    clock = Clock(1000.0)
    saved: list[dict[str, Any]] = []
    lines: list[str] = []
    path = tmp_path / "locust_readiness_routes.csv"
    with serve(instant_settings(edge=EDGE_TARGET)) as target:
        target.app.state.edge.reset(clock)
        poller = RoutePoller(target.url, {"a": "det_a", "b": "det_b"}, 5.0, clock=clock)
        monitor = ReadinessMonitor(
            env,
            ROUTES_PLAN,
            tmp_path / "locust_readiness.csv",
            lambda: None,
            saved.append,
            lines.append,
            clock=clock,
            routes=poller,
            routes_csv_path=path,
        )
        monitor.started_s = clock.now  # no greenlets: the test polls on its own clock
        fire(env, "a", 0, None, **{STATUS: 201}, **CLOUD)
        for _ in range(5):
            monitor.take_routes(poller.poll())
            clock.now += 1.0
        monitor.stop()
    summary = saved[-1]
    assert summary["first_connection_epoch_s"] == 1000.02  # the first query's answer starts the timer
    assert summary["route_polls"] == 5
    assert summary["health_ready"]["endpoint_ready_epoch_s"] == 1001.0
    a, b = summary["detectors"]["a"], summary["detectors"]["b"]
    assert (a["endpoint_ready_epoch_s"], a["endpoint_ready_s"], a["endpoint_flips"]) == (1002.0, 1.98, 1)
    assert (b["endpoint_ready_epoch_s"], b["endpoint_last_not_ready_epoch_s"]) == (1004.0, 1003.0)
    assert a["first_edge_s"] is None  # no edge answer came: the route and the answers are told apart
    assert "READINESS: b: the endpoint says its inference pod is ready" in lines
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == READINESS_ROUTE_COLUMNS
    assert rows[1] == ["0.000", "1000.000", "/health/ready", "", "", "503", "0"]
    assert rows[-1] == ["4.000", "1004.000", "/edge-detector-readiness", "b", "det_b", "200", "1"]
    assert len(rows) == 1 + 5 * 3
