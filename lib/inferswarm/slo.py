"""SLO gates: `p95_ms < 2000`, `failure_ratio < 0.01`, `rps >= 5`, `gpu_mem_peak_pct < 90`, optionally
for one capability: `text-to-image: p95_ms < 2000`. Parsed when the config is loaded (a bad gate is a
config error, exit 2) and judged by the report (a failed gate is exit 3).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

GATE_METRICS = {
    "p50_ms": "median latency (ms)",
    "p90_ms": "90th percentile latency (ms)",
    "p95_ms": "95th percentile latency (ms)",
    "p99_ms": "99th percentile latency (ms)",
    "max_ms": "slowest request (ms)",
    "avg_ms": "mean latency (ms)",
    "rps": "requests per second",
    "success_rps": "successful requests per second",
    "failure_ratio": "failed / all requests",
    "requests": "requests sent",
    "goodput_rps": "requests per second that succeeded and met every goodput SLO",
    "goodput_ratio": "goodput requests / all requests",
    "gpu_util_mean_pct": "mean GPU utilization (%)",
    "gpu_mem_peak_pct": "peak GPU memory (% of total)",
}
GPU_METRICS = {"gpu_util_mean_pct", "gpu_mem_peak_pct"}
GOODPUT_METRICS = {"goodput_rps", "goodput_ratio"}
"""Judged per request against the config's `goodput` SLOs, from the request log: a gate on them needs
both (a config without them is refused when it is loaded)."""
# `inferswarm compare`'s metrics and which direction is better
COMPARE_METRICS: dict[str, str] = {
    "rps": "higher",
    "success_rps": "higher",
    "failure_ratio": "lower",
    "p50_ms": "lower",
    "p90_ms": "lower",
    "p95_ms": "lower",
    "p99_ms": "lower",
    "saturation_users": "higher",
    "knee_success_rps": "higher",
    "gpu_util_mean_pct": "higher",
    "energy_per_request_j": "lower",
}


def check_tolerance(metric: str, value: float) -> None:
    """Raises ValueError unless `metric` is a compare metric and `value` a usable tolerance."""
    if metric not in COMPARE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(COMPARE_METRICS)}")
    if value < 0:
        raise ValueError(f"{metric}: tolerance must be >= 0")


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_GATE = re.compile(
    r"^\s*(?:(?P<scope>[A-Za-z0-9][A-Za-z0-9_.:-]*)\s*:\s+)?(?P<metric>[a-z0-9_]+)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$"
)


@dataclass(frozen=True)
class Gate:
    text: str
    metric: str
    op: str
    threshold: float
    capability: str | None = None  # None: the whole run (Locust's "Aggregated")

    def passes(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    @property
    def scope(self) -> str:
        return self.capability or "total"


def parse_gate(text: str) -> Gate:
    """One gate; raises ValueError with what is wrong and what would be right."""
    match = _GATE.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a gate: write '<metric> <op> <number>', optionally after '<capability>: ', "
            f"e.g. 'p95_ms < 2000' (operators: < <= > >=)"
        )
    metric = match["metric"]
    if metric not in GATE_METRICS:
        raise ValueError(f"{text!r}: unknown metric {metric!r}; known: {', '.join(GATE_METRICS)}")
    return Gate(text.strip(), metric, match["op"], float(match["value"]), match["scope"])
