"""What every subcommand shares: exit codes and the one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_NO_MEASUREMENT = 4
"""`report` (and `run`): the target was unreachable, or no request was recorded: no valid measurement."""
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def error(message: str) -> int:
    """Print `inferswarm: message` on stderr; the exit code for bad input."""
    print(f"inferswarm: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
