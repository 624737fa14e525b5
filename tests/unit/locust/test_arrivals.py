"""The process's shared send schedule: claims in order, the ceiling makes sends late (never lost), a new
share or stage takes effect at once, and a master splits each capability's rate by the users it runs."""

from __future__ import annotations

import gevent
import pytest

from inferswarm.load import Arrival, ArrivalSpec
from inferswarm.load.arrivals import LATE_MS
from inferswarm.locust.arrivals import ArrivalSchedule, Schedules, worker_shares

CONSTANT = ArrivalSpec(Arrival.CONSTANT)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_claims_follow_the_rate_and_wait_for_their_time() -> None:
    t = FakeTime()
    schedule = ArrivalSchedule(CONSTANT, 0, clock=t.clock, sleep=t.sleep)
    assert schedule.claim() is None  # no rate yet
    schedule.set_rate(stage=0, rps=10.0, stream=0)
    due = [schedule.claim() for _ in range(5)]
    assert due == pytest.approx([1000.1, 1000.2, 1000.3, 1000.4, 1000.5])
    assert t.now == pytest.approx(1000.5) and max(t.slept) <= 0.05  # short sleeps: a new rate is seen
    assert (schedule.sent, schedule.late) == (5, 0)


def test_a_busy_ceiling_makes_sends_late_not_lost() -> None:
    t = FakeTime()
    schedule = ArrivalSchedule(CONSTANT, 0, clock=t.clock, sleep=t.sleep)
    schedule.set_rate(0, 100.0, 0)
    t.now += 0.5  # every user was busy for half a second: 50 sends came due meanwhile
    due = [schedule.claim() for _ in range(50)]
    assert due == pytest.approx([1000.01 * 1 + 0.01 * i for i in range(50)])
    assert t.slept == []  # all overdue: sent at once, in order
    assert schedule.late == sum(1 for d in due if (t.now - d) * 1000 > LATE_MS) and schedule.late >= 48
    assert schedule.read_max_lag_ms() == pytest.approx(490.0) and schedule.read_max_lag_ms() == 0.0


def test_a_new_share_rescales_the_gap_in_progress_and_a_new_stage_restarts_the_stream() -> None:
    t = FakeTime()
    poisson = ArrivalSchedule(ArrivalSpec(Arrival.POISSON, seed=4), 0, clock=t.clock, sleep=t.sleep)
    poisson.set_rate(0, 10.0, 0)
    first = poisson.claim()
    assert first is not None
    pending = poisson._next_s
    assert pending is not None
    poisson.set_rate(0, 20.0, 0)  # same stage, twice the share: the rest of the gap halves
    assert poisson._next_s == pytest.approx(t.now + (pending - t.now) / 2)
    again = ArrivalSchedule(ArrivalSpec(Arrival.POISSON, seed=4), 0, clock=t.clock, sleep=t.sleep)
    again.set_rate(0, 10.0, 0, now=t.now)
    other_stage = ArrivalSchedule(ArrivalSpec(Arrival.POISSON, seed=4), 0, clock=t.clock, sleep=t.sleep)
    other_stage.set_rate(1, 10.0, 0, now=t.now)
    assert again._next_s != other_stage._next_s
    poisson.stop()
    assert poisson.claim() is None


def test_users_queue_on_the_schedule_one_waiting_at_a_time() -> None:
    schedule = ArrivalSchedule(CONSTANT, 0)
    schedule.set_rate(0, 50.0, 0)
    claimed: list[float] = []

    def user() -> None:
        for _ in range(5):
            due = schedule.claim()
            assert due is not None
            claimed.append(due)

    gevent.joinall([gevent.spawn(user) for _ in range(4)], timeout=5)
    assert len(claimed) == 20
    assert claimed == sorted(claimed)  # one schedule, taken in order by whoever is free
    assert claimed[-1] - claimed[0] == pytest.approx(19 / 50.0)


def test_schedules_split_by_capability() -> None:
    schedules = Schedules(CONSTANT, ("a", "b"))
    schedules.set_rates(0, {"a": 30.0}, stream=2)
    assert (schedules.by_capability["a"].rps, schedules.by_capability["b"].rps) == (30.0, 0.0)


def test_a_master_splits_each_rate_by_the_users_each_worker_runs() -> None:
    shares = worker_shares(
        {"a": 30.0, "b": 10.0},
        {"w1": {"a": 2, "b": 1}, "w2": {"a": 1, "b": 0}, "w3": {"a": 0, "b": 0}},
    )
    assert shares == {"w1": {"a": 20.0, "b": 10.0}, "w2": {"a": 10.0}, "w3": {}}
    total_a = sum(s.get("a", 0.0) for s in shares.values())
    assert total_a == pytest.approx(30.0)
    # before every worker has reported its users: an even split, so the run starts on time
    assert worker_shares({"a": 30.0}, {"w1": {"a": 2}, "w2": {}}) == {"w1": {"a": 15.0}, "w2": {"a": 15.0}}
    assert worker_shares({"a": 30.0}, {}) == {}
