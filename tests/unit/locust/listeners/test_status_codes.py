"""HTTP status codes per capability: counted from request events, shipped by workers, merged, saved."""

from __future__ import annotations

import csv
from pathlib import Path

from locust.runners import MasterRunner, WorkerRunner

from inferswarm.locust.listeners.status_codes import REPORT_KEY, StatusCodes
from tests.unit.locust.listeners.events import env_on, fire, local_env


def rows(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return list(csv.reader(handle))


def test_counts_from_request_events_and_saves_sorted(tmp_path: Path) -> None:
    env = local_env()
    codes = StatusCodes(env, tmp_path / "status_codes.csv")
    for status in (200, 503, 200):
        fire(env, "text-to-image", status)
    fire(env, "llm", 0, exception=TimeoutError())
    fire(env, "plain-locust", None)  # a request fired by something else: no status in its context
    env.events.request.fire(request_type="GET", name="bare", response_time=1, response_length=0)
    assert codes.of("text-to-image") == {200: 2, 503: 1}
    assert codes.of("llm") == {0: 1}
    assert codes.of("plain-locust") == {} and codes.of("bare") == {}
    codes.stage_closed(0, True)  # the file is current at every stage's end
    assert rows(tmp_path / "status_codes.csv") == [
        ["name", "status", "count"],
        ["llm", "0", "1"],
        ["text-to-image", "200", "2"],
        ["text-to-image", "503", "1"],
    ]
    fire(env, "llm", 200)
    codes.save()
    assert ["llm", "200", "1"] in rows(tmp_path / "status_codes.csv")


def test_no_file_without_a_path(tmp_path: Path) -> None:
    codes = StatusCodes(local_env())
    codes.save()
    assert list(tmp_path.iterdir()) == []


def test_workers_ship_their_counts_and_the_master_merges_them() -> None:
    worker = env_on(WorkerRunner)
    shipped = StatusCodes(worker)
    fire(worker, "a", 200)
    fire(worker, "a", 200)
    fire(worker, "b", 429)
    report: dict[str, object] = {"stats": []}  # Locust's own report, which the counts ride along with
    worker.events.report_to_master.fire(client_id="w1", data=report)
    assert sorted(report[REPORT_KEY]) == [["a", 200, 2], ["b", 429, 1]]  # type: ignore[call-overload]
    assert shipped.counts == {}  # shipped counts start again from zero
    fire(worker, "a", 500)
    second: dict[str, object] = {}
    worker.events.report_to_master.fire(client_id="w1", data=second)
    assert second[REPORT_KEY] == [["a", 500, 1]]

    master = env_on(MasterRunner)
    merged = StatusCodes(master)
    for data in (report, second, report, {"stats": []}):  # a report of another worker, one without counts
        master.events.worker_report.fire(client_id="w", data=data)
    assert merged.of("a") == {200: 4, 500: 1} and merged.of("b") == {429: 2}


def test_a_master_counts_no_requests_of_its_own_twice() -> None:
    master = env_on(MasterRunner)
    merged = StatusCodes(master)
    master.events.report_to_master.fire(client_id="m", data={})  # not a worker: nothing is shipped
    master.events.worker_report.fire(client_id="w", data={REPORT_KEY: [["a", "200", "3"]]})
    assert merged.of("a") == {200: 3}
