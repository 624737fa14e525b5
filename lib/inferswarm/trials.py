"""Judging a finished step on the SLO gates while the run goes on: the `search` load kind's trials.

The report judges steps afterwards from the run directory; a search must judge each trial the moment it
ends, on the master (or local runner), to choose the next level. It uses the step's measured window that
the per-step statistics already take (after warm-up): requests, failures and the success-latency
histograms (`<capability>:ok`, Locust's rounding, or `<capability>:from_intended` for open-loop trials:
what a user of the service waits). Gates on numbers only the report has (GPU, goodput) cannot steer a
search; `unsupported` names them so the config is refused up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from inferswarm import derived
from inferswarm.histograms import merge, percentile
from inferswarm.slo import Gate, parse_gate

Window = Mapping[str, tuple[int, int, Mapping[int, int]]]
"""Entry name -> (requests, failures, response-time histogram {ms: count}) in the measured window."""

LATENCY_LEVELS = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "max_ms": 1.0}
IN_RUN_METRICS = frozenset({*LATENCY_LEVELS, "avg_ms", "rps", "success_rps", "failure_ratio", "requests"})
MIN_TRIAL_REQUESTS = 10
"""A trial with fewer requests in its window is not judged a pass (too little to go on)."""


def unsupported(gates: Iterable[str]) -> list[str]:
    """Gates whose metric cannot be judged during the run."""
    out = []
    for text in gates:
        try:
            gate = parse_gate(text)
        except ValueError:
            continue  # the config reports bad gates itself
        if gate.metric not in IN_RUN_METRICS:
            out.append(text)
    return out


def scope_metrics(
    requests: int, failures: int, latency: Mapping[int, int], seconds: float
) -> dict[str, float | None]:
    total = sum(latency.values())
    metrics: dict[str, float | None] = {
        "requests": float(requests),
        "rps": requests / seconds if seconds > 0 else None,
        "success_rps": (requests - failures) / seconds if seconds > 0 else None,
        "failure_ratio": failures / requests if requests else None,
        "avg_ms": sum(ms * n for ms, n in latency.items()) / total if total else None,
    }
    for name, q in LATENCY_LEVELS.items():
        metrics[name] = percentile(latency.items(), q)
    return metrics


def window_metrics(
    window: Window, seconds: float, capabilities: Sequence[str], latency_entry: str = derived.OK
) -> dict[str, dict[str, float | None]]:
    """Gate metrics for `total` and each capability; latency from the `<capability>:<latency_entry>`
    entries (successful requests)."""
    scopes: dict[str, dict[str, float | None]] = {}
    for name in capabilities:
        requests, failures, _ = window.get(name, (0, 0, {}))
        latency = window.get(derived.entry_name(name, latency_entry), (0, 0, {}))[2]
        scopes[name] = scope_metrics(requests, failures, latency, seconds)
    requests = sum(window.get(name, (0, 0, {}))[0] for name in capabilities)
    failures = sum(window.get(name, (0, 0, {}))[1] for name in capabilities)
    latency = merge(window.get(derived.entry_name(n, latency_entry), (0, 0, {}))[2] for n in capabilities)
    scopes["total"] = scope_metrics(requests, failures, latency, seconds)
    return scopes


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]
    """Why it failed: each failed gate with its value (empty when it passed)."""


def judge(gates: Sequence[Gate], scopes: Mapping[str, Mapping[str, float | None]]) -> Verdict:
    """Every gate must hold; a gate without a value fails (a check that cannot be made never passes)."""
    total = scopes.get("total", {})
    if (total.get("requests") or 0) < MIN_TRIAL_REQUESTS:
        return Verdict(False, (f"fewer than {MIN_TRIAL_REQUESTS} requests",))
    reasons = []
    for gate in gates:
        value = scopes.get(gate.scope, {}).get(gate.metric)
        if value is None:
            reasons.append(f"{gate.text}: no data")
        elif not gate.passes(value):
            reasons.append(f"{gate.text}: {value:g}")
    return Verdict(not reasons, tuple(reasons))
