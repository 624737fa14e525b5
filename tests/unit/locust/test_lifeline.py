"""StopCause: the first stop signal stops Locust (KeyboardInterrupt) and is recorded; later ones are
ignored; a parent PID that no longer matches is a lost parent."""

from __future__ import annotations

import os
import signal

import pytest

from inferswarm.lifeline import PARENT_PID_ENV
from inferswarm.locust.lifeline import StopCause


def test_the_first_signal_stops_and_is_recorded_later_ones_are_ignored() -> None:
    cause = StopCause(environ={})
    with pytest.raises(KeyboardInterrupt):
        cause._on_signal(signal.SIGHUP, None)
    cause._on_signal(signal.SIGINT, None)  # no KeyboardInterrupt: already stopping
    assert cause.fields() == {"stop_signal": "SIGHUP"}


def test_a_parent_that_changed_is_a_lost_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    cause = StopCause(environ={PARENT_PID_ENV: str(os.getppid())})
    assert cause.fields() == {} and not cause.parent_lost
    assert not StopCause(environ={}).parent_lost  # started by plain `locust`: no parent to watch
    assert not StopCause(environ={PARENT_PID_ENV: "garbage"}).parent_lost
    monkeypatch.setattr(os, "getppid", lambda: 1)  # reparented to init: `inferswarm run` is gone
    assert cause.parent_lost and cause.fields() == {"parent_lost": True}


def test_a_worker_forked_by_locust_watches_the_process_that_forked_it() -> None:
    """--processes forks workers from the Locust process: their parent is it, not `inferswarm run`."""
    forked = StopCause(environ={PARENT_PID_ENV: str(os.getppid() + 100_000)})
    assert forked.parent_pid == os.getppid() and not forked.parent_lost
