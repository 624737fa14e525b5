"""Preflight checks (`inferswarm check`, and before `inferswarm run`): is the target reachable, healthy,
answering correct requests correctly and bad ones with a 4xx, with a GPU, on a clock close to ours?

The result is seed 003's structured JSON (`test_info` and `tests[]` of name, status, details, timing_ms,
timestamp) plus a `summary`. This package's `__init__` stays light: `config` is imported by the run
config's schema, so the checks themselves (which import the config) load only when asked for.
"""

from __future__ import annotations

from inferswarm.checks.config import CHECK_NAMES, ChecksConfig
from inferswarm.checks.model import Check, CheckReport, Status

__all__ = ["CHECK_NAMES", "Check", "CheckReport", "ChecksConfig", "Status"]
