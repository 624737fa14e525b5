"""Children that die with their parent: a load generator must never keep sending load, and a target
must never keep listening, after the `inferswarm run` that started them is gone (SIGKILL, a closed
terminal, a cancelled CI job).

Two layers, because each has a gap: the kernel's parent-death signal (Linux `PR_SET_PDEATHSIG`) is
immediate but Linux-only and misses a parent that died between fork and exec; the Locust process also
watches its parent's PID (`inferswarm.locust.lifeline`) and stops itself when it changes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PARENT_PID_ENV = "INFERSWARM_PARENT_PID"
"""The PID of the `inferswarm run` that started a Locust process; it stops when its parent changes."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each stops a run as Ctrl+C does: Locust writes its files (SIGHUP: the terminal is gone)."""

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `sig` when this process dies, and starts
    with SIGINT at its default (a shell starts background jobs with SIGINT ignored, and the child
    would inherit that: a SIGINT we forward must work)."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os.kill(os.getpid(), sig)

    return preexec
