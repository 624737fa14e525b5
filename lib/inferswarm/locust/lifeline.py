"""The Locust side of `inferswarm.lifeline`: a stop that records its cause, and a watch of the parent.

Every stop of an owner or worker process goes through `StopCause`: the first SIGINT, SIGTERM or SIGHUP
stops Locust as Ctrl+C does (its files are written), and further signals are ignored so a second Ctrl+C
cannot cut the writing of the last stage row short. The parent watch turns "the `inferswarm run` that
started me is gone" into the same stop.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from types import FrameType
from typing import Any

import gevent

from inferswarm.lifeline import PARENT_PID_ENV, STOP_SIGNALS

log = logging.getLogger(__name__)

PARENT_CHECK_S = 0.5


class StopCause:
    """Why this process stopped early: the first stop signal's name, and whether its parent was gone."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.signal: str | None = None
        self.parent_pid = _pid(environ.get(PARENT_PID_ENV))
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            # A worker forked by Locust's --processes (its parent is the Locust process that forked it,
            # which watches `inferswarm run` itself); a parent that died before we started was caught
            # by the parent-death check of `inferswarm.lifeline.die_with_parent`.
            self.parent_pid = os.getppid()
        self._watch: gevent.Greenlet[Any, Any] | None = None

    @property
    def parent_lost(self) -> bool:
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        if self.parent_pid is not None:
            self._watch = gevent.spawn(self._watch_parent)

    def fields(self) -> dict[str, Any]:
        """What run.json says about the stop (nothing for a run that was not stopped)."""
        out: dict[str, Any] = {}
        if self.signal is not None:
            out["stop_signal"] = self.signal
        if self.parent_lost:
            out["parent_lost"] = True
        return out

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None:
            log.warning("%s ignored: already stopping, writing results", signal.Signals(signum).name)
            return
        self.signal = signal.Signals(signum).name
        raise KeyboardInterrupt

    def _watch_parent(self) -> None:
        while not self.parent_lost:
            gevent.sleep(PARENT_CHECK_S)
        log.warning("inferswarm: the `inferswarm run` that started this process is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)


def _pid(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
