"""Locust's response-time histograms ({ms bucket: count}) and its percentile rule, for the report and for
judging a step during the run (`inferswarm.trials`). No Locust, no pandas: Locust processes import it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def percentile(histogram: Iterable[tuple[float, int]], q: float) -> float | None:
    """Locust's rule: walk from the slowest bucket down until fewer than (1 - q) of requests remain."""
    buckets = sorted(((float(ms), int(n)) for ms, n in histogram if n > 0), reverse=True)
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    keep = int(total * q)
    processed = 0
    for ms, n in buckets:
        processed += n
        if total - processed <= keep:
            return ms
    return buckets[-1][0]


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The bucket-by-bucket sum of `histograms`."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for ms, count in histogram.items():
            merged[ms] = merged.get(ms, 0) + count
    return merged
