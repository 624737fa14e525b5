"""Derived statistics: numbers measured inside a request (LLM time to first token, inter-token latency,
output tokens and tokens per second) that go into Locust's statistics as entries of their own.

An entry is named `<capability>:<metric>`, so it is bounded (one per capability and metric) and shows in
the web UI and every Locust CSV next to the capability it belongs to. Its "response time" column holds
the metric's value in the unit below. These entries are kept out of Locust's Aggregated row (they are
not requests), and the report and the per-step statistics skip them when they count requests.

This module imports nothing from Locust, so the report can use it.
"""

from __future__ import annotations

from typing import Final

OK: Final = "ok"
"""Response time of the capability's successful requests only (the report's headline latency: fast
failures under overload would otherwise pull the percentiles down)."""
FROM_INTENDED: Final = "from_intended"
"""Latency of the capability's successful requests from when the schedule meant to send them (open-loop
load kinds): how late it was sent plus its response time, what a client on that schedule waited. Only
logged for requests that had an intended start; see `inferswarm.rundir.REQUEST_COLUMN_TYPES`."""
TTFT: Final = "ttft"
ITL: Final = "itl"
TOKENS_PER_S: Final = "tokens_per_s"
OUTPUT_TOKENS: Final = "output_tokens"
# Observations a protocol reads off each successful answer (`Protocol.observations`): an edge endpoint's
# answers split by where they came from (Groundlight: the edge's own model, or an escalation to the cloud).
EDGE_MS: Final = "edge_ms"
"""Response time of an answer that came from the edge."""
CLOUD_MS: Final = "cloud_ms"
"""Response time of an answer that came from the cloud (an escalation, or nginx's fallback)."""
SERVER_MS: Final = "server_ms"
"""The server's own time for the request, as it said it (a tensor server's `Server-Timing`)."""
OVERHEAD_MS: Final = "overhead_ms"
"""Response time minus the server's own time: what the network, (de)serialisation and queues cost."""
CONFIDENCE_PCT: Final = "confidence_pct"
"""The answer's confidence x 100."""
SOURCE_PREFIX: Final = "source_"
"""`source_<name>` (e.g. `source_algorithm`, `source_human`): response time of answers from that source;
one entry per source, so its count is the answers by source."""

UNITS: Final[dict[str, str]] = {
    OK: "ms",
    FROM_INTENDED: "ms",
    TTFT: "ms",
    ITL: "ms",
    TOKENS_PER_S: "tokens/s",
    OUTPUT_TOKENS: "tokens",
    EDGE_MS: "ms",
    CLOUD_MS: "ms",
    CONFIDENCE_PCT: "%",
    SERVER_MS: "ms",
    OVERHEAD_MS: "ms",
}
DERIVED_METRICS: Final = tuple(UNITS)
"""The fixed metrics; `source_<name>` entries (unit ms) are derived too."""

# The "Type" column of a derived entry: what kind of number it is (tokens also say where they were counted).
TIMING_TYPE: Final = "LLM"
SUCCESS_TYPE: Final = "success"
OBSERVED_TYPE: Final = "observed"


def token_type(source: str) -> str:
    """`tokens(usage)` when the server's usage block counted them, `tokens(chunks)` when we did."""
    return f"tokens({source})"


def entry_name(capability: str, metric: str) -> str:
    return f"{capability}:{metric}"


def is_source_metric(metric: str) -> bool:
    return metric.startswith(SOURCE_PREFIX) and len(metric) > len(SOURCE_PREFIX)


def unit(metric: str) -> str:
    """A derived metric's unit (`source_<name>` entries hold response times)."""
    return "ms" if is_source_metric(metric) else UNITS[metric]


def split_entry(name: str) -> tuple[str, str] | None:
    """(capability, metric) for a derived entry's name, None for a capability's own entry."""
    capability, sep, metric = name.rpartition(":")
    if sep and capability and (metric in UNITS or is_source_metric(metric)):
        return capability, metric
    return None


def is_derived(name: str) -> bool:
    return split_entry(name) is not None
