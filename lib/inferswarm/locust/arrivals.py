"""Open-loop sending on Locust: each process's shared schedule of intended send times, and who sets it.

For an open-loop load kind (`LoadKind.arrivals()`), users are the ceiling on requests in flight, not the
load. Each capability has one `ArrivalSchedule` per process; a free user `claim`s the next send time from
it: one user at a time waits for it (the others queue on the schedule's lock), then sends, recording
the time the request *should* have gone out. While every user is busy, due times pass unclaimed; the
next free user takes the oldest at once, late by that much: the ceiling makes requests late, never lost.

Rates come from the owner of the run: locally the shape's stage sets them directly; a master gives each
worker its share of each capability's rate in proportion to the users it runs (re-sent when the users
move, as when a worker joins or is lost), with its own random stream (its Locust worker index).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from inferswarm.load import ArrivalSpec, LoadContext, Stage
from inferswarm.load.arrivals import LATE_MS, UnitGaps

MESSAGE = "inferswarm_rates"
POLL_S = 0.05
"""Longest single sleep while waiting for a send time, so a new rate is picked up within it."""
IDLE_S = 0.05
"""How long a user waits before asking again when its schedule has no rate (between runs, a new worker)."""
PUSH_INTERVAL_S = 1.0


class ArrivalSchedule:
    """One capability's send times in one process."""

    def __init__(
        self,
        spec: ArrivalSpec,
        capability_index: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = gevent.sleep,
    ) -> None:
        self.spec = spec
        self.capability_index = capability_index
        self.rps = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = Semaphore()
        self._gaps: UnitGaps | None = None
        self._key: tuple[int, int] | None = None
        self._next_s: float | None = None
        self.sent = 0
        self.late = 0
        self._max_lag_s = 0.0

    def set_rate(self, stage: int, rps: float, stream: int, now: float | None = None) -> None:
        """From now on, send at `rps` (this process's share). A new stage (or stream) starts a new random
        stream; a new share within the stage stretches the gap in progress, keeping the stream."""
        now = self._clock() if now is None else now
        if rps <= 0:
            self.stop()
            return
        key = (stage, stream)
        if key != self._key or self._gaps is None or self._next_s is None:
            self._key = key
            self._gaps = UnitGaps(self.spec, (stage, self.capability_index, stream))
            self._next_s = now + self._gaps.next() / rps
        elif rps != self.rps:
            self._next_s = now + max(self._next_s - now, 0.0) * self.rps / rps
        self.rps = rps

    def stop(self) -> None:
        """No more sends until a rate is set again (the stage's key is forgotten: a restart re-seeds)."""
        self.rps = 0.0
        self._next_s = None
        self._key = None

    def claim(self) -> float | None:
        """Wait for this process's next send time and take it (epoch seconds); None when no rate is set."""
        with self._lock:
            while True:
                due = self._next_s
                if due is None or self._gaps is None:
                    return None
                now = self._clock()
                wait = due - now
                if wait <= 0:
                    self._next_s = due + self._gaps.next() / self.rps
                    self.sent += 1
                    if -wait * 1000.0 > LATE_MS:
                        self.late += 1
                    self._max_lag_s = max(self._max_lag_s, -wait)
                    return due
                self._sleep(min(wait, POLL_S))

    def read_max_lag_ms(self) -> float:
        """The worst lag of a claimed send behind its due time since the last read."""
        lag, self._max_lag_s = self._max_lag_s, 0.0
        return round(lag * 1000.0, 3)


class Schedules:
    """Every capability's schedule in this process."""

    def __init__(self, spec: ArrivalSpec, capabilities: tuple[str, ...]) -> None:
        self.spec = spec
        self.by_capability = {name: ArrivalSchedule(spec, index) for index, name in enumerate(capabilities)}

    def set_rates(self, stage: int, rates: Mapping[str, float], stream: int) -> None:
        for name, schedule in self.by_capability.items():
            schedule.set_rate(stage, rates.get(name, 0.0), stream)

    def stop(self) -> None:
        for schedule in self.by_capability.values():
            schedule.stop()

    def read_max_lag_ms(self) -> float:
        return max((s.read_max_lag_ms() for s in self.by_capability.values()), default=0.0)

    def counts(self) -> tuple[int, int]:
        """(sends claimed, of which late) in this process so far."""
        return (
            sum(s.sent for s in self.by_capability.values()),
            sum(s.late for s in self.by_capability.values()),
        )


def worker_shares(
    rates: Mapping[str, float], users: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, float]]:
    """Each worker's share of each capability's rate, in proportion to its users of that capability
    (`users`: worker id -> capability -> users, as the workers last reported them). Until every worker
    has reported its users (the first second of a run), each gets an even share: sends due before its
    users exist go out late as they arrive, rather than the run starting a second short."""
    if not users:
        return {}
    if any(not counts for counts in users.values()):
        even = {name: rate / len(users) for name, rate in rates.items()}
        return {worker: dict(even) for worker in users}
    totals: dict[str, int] = {}
    for counts in users.values():
        for name, count in counts.items():
            totals[name] = totals.get(name, 0) + count
    return {
        worker: {
            name: rate * counts.get(name, 0) / totals[name]
            for name, rate in rates.items()
            if totals.get(name) and counts.get(name)
        }
        for worker, counts in users.items()
    }


class RateDriver:
    """The owner's side: sets the rates of each stage, locally or on every worker (a StageListener)."""

    def __init__(self, environment: Environment, context: LoadContext, schedules: Schedules) -> None:
        self.environment = environment
        self.shares = context.shares()
        self.schedules = schedules
        self._stage: tuple[int, float] | None = None
        self._sent: dict[str, dict[str, float]] = {}
        self._pusher: gevent.Greenlet[Any, Any] | None = None
        environment.events.test_stop.add_listener(self._on_test_stop)

    def rates(self, rps: float) -> dict[str, float]:
        return {name: rps * share for name, share in self.shares.items()}

    def stage_opened(self, index: int, stage: Stage) -> None:
        if stage.rps is None:
            return
        self._stage = (index, stage.rps)
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            self._sent = {}
            self._push()
            if self._pusher is None:
                self._pusher = gevent.spawn(self._push_loop)
        else:
            self.schedules.set_rates(index, self.rates(stage.rps), stream=0)

    def stage_closed(self, index: int, completed: bool) -> None:
        return None

    def _on_test_stop(self, **_: Any) -> None:
        self._stage = None
        self.schedules.stop()
        if self._pusher is not None:
            self._pusher.kill(block=False)
            self._pusher = None

    def _push_loop(self) -> None:
        while True:
            gevent.sleep(PUSH_INTERVAL_S)
            self._push()

    def _push(self) -> None:
        """Send each worker its shares when they changed (a new stage, users moved between workers)."""
        runner = self.environment.runner
        if self._stage is None or not isinstance(runner, MasterRunner):
            return
        index, rps = self._stage
        users = {
            node.id: dict(node.user_classes_count)
            for node in runner.clients.values()
            if node.state != STATE_MISSING
        }
        for worker, rates in worker_shares(self.rates(rps), users).items():
            if self._sent.get(worker) == rates:
                continue
            data = {"stage": index, "rates": rates, "stream": runner.get_worker_index(worker)}
            runner.send_message(MESSAGE, data, client_id=worker)
            self._sent[worker] = rates


class WorkerRates:
    """A worker's side: applies the rates its master sends."""

    def __init__(self, environment: Environment, schedules: Schedules) -> None:
        self.schedules = schedules
        runner = environment.runner
        assert isinstance(runner, WorkerRunner)
        runner.register_message(MESSAGE, self._on_rates)
        environment.events.test_stop.add_listener(lambda **_: schedules.stop())

    def _on_rates(self, msg: Any, **_: Any) -> None:
        data = msg.data
        self.schedules.set_rates(int(data["stage"]), dict(data["rates"]), int(data["stream"]))
