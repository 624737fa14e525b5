"""Significance tests for `inferswarm compare`: is a difference between two runs bigger than the noise?

Three tests, each on the data a run directory records (no per-request log is needed):

- latency percentiles: a stratified bootstrap over the exact per-step response-time histograms
  (`locust_step_latency.csv`). Each step's histogram is resampled multinomially with its own count, and
  run B is weighted to run A's mix of steps, so a run that spent more of its requests in slow,
  overloaded steps does not look slower for that alone. It gives a confidence interval of the relative
  change of each percentile and a two-sided p-value.
- failure ratios: Fisher's exact test on the 2x2 table of failures and successes (a normal
  approximation of the two-proportion test when the table is too large to enumerate).
- throughput: the exact conditional test for two Poisson rates (given the total count, B's count is
  binomial with B's share of the measured seconds), on the counts and the measured windows.

Requests within a run are not fully independent (they queue behind each other), so these p-values are
optimistic; `compare` asks for a change beyond a practical tolerance as well before it calls anything a
regression.

Pure numpy and math; nothing here knows about run directories.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01
"""A difference is significant when its two-sided p-value is below this."""
RESAMPLES = 2000
SEED = 20240613
"""The bootstrap's seed: the same two runs always compare to the same figures."""
_EXACT_SUPPORT = 2_000_000
"""Above this many outcomes the exact tests switch to their normal approximations."""

Histogram = Mapping[float, int]
"""Response time (ms, as Locust rounds it) -> count."""


@dataclass(frozen=True)
class PercentileTest:
    """Bootstrap comparison of latency percentiles (A pooled; B weighted to A's mix of steps)."""

    quantiles: tuple[float, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    ci: tuple[tuple[float, float], ...]
    """Per quantile: the (1 - ALPHA) percentile interval of the relative change b / a - 1."""
    p_value: tuple[float, ...]
    samples_a: int
    samples_b: int
    steps: int


def two_sided_normal(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def _two_sided_exact(log_pmf: np.ndarray, observed: int) -> float:
    """P(outcome at most as likely as the observed one) for a discrete distribution given by log_pmf."""
    log_pmf = log_pmf - np.logaddexp.reduce(log_pmf)
    cutoff = log_pmf[observed] + 1e-7
    return float(min(1.0, np.exp(log_pmf[log_pmf <= cutoff]).sum()))


def _log_pmf_from_ratios(log_ratios: np.ndarray) -> np.ndarray:
    """log pmf (unnormalised) over a support whose consecutive pmf ratios are given."""
    return np.concatenate(([0.0], np.cumsum(log_ratios)))


def fisher_exact(failures_a: int, requests_a: int, failures_b: int, requests_b: int) -> float:
    """Two-sided p-value that A and B fail at the same rate (Fisher's exact test)."""
    if requests_a <= 0 or requests_b <= 0:
        return 1.0
    n, failed = requests_a + requests_b, failures_a + failures_b
    low, high = max(0, failed - requests_b), min(failed, requests_a)
    if high == low:
        return 1.0
    if high - low > _EXACT_SUPPORT:
        pooled = failed / n
        se = math.sqrt(pooled * (1 - pooled) * (1 / requests_a + 1 / requests_b))
        return two_sided_normal((failures_b / requests_b - failures_a / requests_a) / se) if se else 1.0
    # x = failures in A ~ hypergeometric:
    # pmf(x + 1) / pmf(x) = (K - x)(nA - x) / ((x + 1)(N - K - nA + x + 1))
    x = np.arange(low, high, dtype=np.float64)
    ratios = (failed - x) * (requests_a - x) / ((x + 1) * (n - failed - requests_a + x + 1))
    return _two_sided_exact(_log_pmf_from_ratios(np.log(ratios)), failures_a - low)


def binomial_two_sided(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test of k successes in n trials at probability p."""
    if n <= 0 or not 0 < p < 1:
        return 1.0
    if n > _EXACT_SUPPORT:
        return two_sided_normal((k - n * p) / math.sqrt(n * p * (1 - p)))
    i = np.arange(0, n, dtype=np.float64)
    ratios = np.log((n - i) / (i + 1)) + math.log(p / (1 - p))
    return _two_sided_exact(_log_pmf_from_ratios(ratios), k)


def poisson_rates(count_a: int, seconds_a: float, count_b: int, seconds_b: float) -> float:
    """Two-sided p-value that two counts over their windows come from one Poisson rate (the conditional
    binomial test: given count_a + count_b, B's count is binomial with B's share of the seconds)."""
    if seconds_a <= 0 or seconds_b <= 0:
        return 1.0
    return binomial_two_sided(count_b, count_a + count_b, seconds_b / (seconds_a + seconds_b))


def _quantile_values(cdf_below: np.ndarray, grid: np.ndarray, q: float) -> np.ndarray:
    """Locust's percentile rule on (weighted) histograms, one per row: the slowest bucket whose share
    of faster requests is at most q. `cdf_below[r, k]`: share of requests faster than bucket k."""
    index = (cdf_below <= q + 1e-12).sum(axis=-1) - 1
    values: np.ndarray = grid[np.clip(index, 0, len(grid) - 1)]
    return values


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    shares: np.ndarray = counts / np.where(total > 0, total, 1)
    return shares


def compare_percentiles(
    a_steps: Sequence[Histogram],
    b_steps: Sequence[Histogram],
    quantiles: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    rng: np.random.Generator | None = None,
) -> PercentileTest | None:
    """Percentiles of A's pooled histograms against B's weighted to A's step mix, with bootstrap CIs and
    p-values of the relative change. Steps pair up by position; a pair where either side is empty is
    left out. None when no pair is left."""
    pairs = [
        (a, b) for a, b in zip(a_steps, b_steps, strict=True) if sum(a.values()) > 0 and sum(b.values()) > 0
    ]
    if not pairs:
        return None
    rng = rng if rng is not None else np.random.default_rng(SEED)
    grid = np.array(sorted({float(ms) for a, b in pairs for ms in (*a, *b)}))
    position = {ms: i for i, ms in enumerate(grid)}

    def matrix(side: int) -> np.ndarray:
        out = np.zeros((len(pairs), len(grid)))
        for s, pair in enumerate(pairs):
            for ms, n in pair[side].items():
                out[s, position[float(ms)]] += max(int(n), 0)
        return out

    counts_a, counts_b = matrix(0), matrix(1)
    weights = counts_a.sum(axis=1) / counts_a.sum()  # A's step mix, used for both runs

    def below(shares: np.ndarray) -> np.ndarray:
        """(..., buckets) shares -> share of requests faster than each bucket."""
        faster: np.ndarray = np.cumsum(shares, axis=-1) - shares
        return faster

    def mixture(counts: np.ndarray) -> np.ndarray:
        return below((_shares(counts) * weights[:, None]).sum(axis=0))

    def resampled_mixture(counts: np.ndarray) -> np.ndarray:
        shares = np.zeros((resamples, len(grid)))
        for weight, row in zip(weights, counts, strict=True):
            total = int(row.sum())
            shares += rng.multinomial(total, row / total, size=resamples) * (weight / total)
        return below(shares)

    boot_a, boot_b = resampled_mixture(counts_a), resampled_mixture(counts_b)
    base_a, base_b = mixture(counts_a), mixture(counts_b)
    a_values, b_values, intervals, p_values = [], [], [], []
    for q in quantiles:
        point_a = float(_quantile_values(base_a, grid, q))
        point_b = float(_quantile_values(base_b, grid, q))
        star_a, star_b = _quantile_values(boot_a, grid, q), _quantile_values(boot_b, grid, q)
        change = star_b / np.where(star_a > 0, star_a, np.nan) - 1
        change = change[np.isfinite(change)]
        if change.size == 0:
            intervals.append((math.nan, math.nan))
            p_values.append(1.0)
        else:
            low, high = np.quantile(change, [ALPHA / 2, 1 - ALPHA / 2])
            intervals.append((float(low), float(high)))
            # the bootstrap's two-sided p-value, with the +1 that keeps it above zero
            at_most = (np.count_nonzero(change <= 0) + 1) / (change.size + 1)
            at_least = (np.count_nonzero(change >= 0) + 1) / (change.size + 1)
            p_values.append(float(min(1.0, 2 * min(at_most, at_least))))
        a_values.append(point_a)
        b_values.append(point_b)
    return PercentileTest(
        quantiles=tuple(quantiles),
        a=tuple(a_values),
        b=tuple(b_values),
        ci=tuple(intervals),
        p_value=tuple(p_values),
        samples_a=int(counts_a.sum()),
        samples_b=int(counts_b.sum()),
        steps=len(pairs),
    )
