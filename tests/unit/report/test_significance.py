"""The significance tests of `inferswarm compare`, against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from inferswarm.report.analysis import percentile
from inferswarm.report.significance import (
    binomial_two_sided,
    compare_percentiles,
    fisher_exact,
    poisson_rates,
)


def locust_rounded(ms: np.ndarray) -> np.ndarray:
    """Locust's response-time buckets: 1 ms below 100, 10 ms below 1000, then 100 ms."""
    rounded: np.ndarray = np.where(
        ms < 100, np.round(ms), np.where(ms < 1000, np.round(ms, -1), np.round(ms, -2))
    )
    return rounded


def drawn(rng: np.random.Generator, n: int, median_ms: float, sigma: float = 0.25) -> dict[float, int]:
    values, counts = np.unique(locust_rounded(rng.lognormal(np.log(median_ms), sigma, n)), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def test_fisher_exact_known_tables() -> None:
    # the classic tea-tasting-sized table [[1, 9], [11, 3]]: two-sided p = 0.002759 (R's fisher.test)
    assert fisher_exact(1, 10, 11, 14) == pytest.approx(0.0027594, rel=1e-4)
    # [[3, 1], [1, 3]]: p = 0.4857
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857143, rel=1e-6)
    assert fisher_exact(0, 100, 0, 100) == 1.0
    # 0 of 100 against 2 of 100: noise; 5 of 1000 against 50 of 1000: not
    assert fisher_exact(0, 100, 2, 100) == pytest.approx(0.4975, rel=1e-3)
    assert fisher_exact(5, 1000, 50, 1000) < 1e-9
    # too big to enumerate: the normal approximation agrees with the exact answer's size
    assert fisher_exact(50_000, 10_000_000, 51_500, 10_000_000) < 1e-5


def test_binomial_and_poisson_rates() -> None:
    assert binomial_two_sided(3, 10, 0.5) == pytest.approx(0.34375)
    assert binomial_two_sided(0, 10, 0.5) == pytest.approx(2 / 1024)
    assert poisson_rates(100, 10.0, 100, 10.0) == pytest.approx(1.0)
    # 1000 vs 900 requests in 10 s: the conditional binomial test (R: poisson.test) gives p = 0.023
    assert poisson_rates(1000, 10.0, 900, 10.0) == pytest.approx(0.02326, rel=0.05)
    assert poisson_rates(1000, 10.0, 800, 10.0) < 1e-5
    # the same rate over windows of different length is no difference
    assert poisson_rates(1000, 10.0, 500, 5.0) > 0.9


def test_same_distribution_is_not_significant_and_a_20_percent_shift_is() -> None:
    rng = np.random.default_rng(1)
    a = [drawn(rng, 300, 130) for _ in range(4)]
    same = [drawn(rng, 300, 130) for _ in range(4)]
    slower = [drawn(rng, 300, 156) for _ in range(4)]
    quantiles = [0.5, 0.95]

    clean = compare_percentiles(a, same, quantiles)
    assert clean is not None and clean.steps == 4 and clean.samples_a == 1200
    assert all(p > 0.01 for p in clean.p_value)
    # A's figure is Locust's percentile of A's pooled histogram
    pooled = [(ms, n) for step in a for ms, n in step.items()]
    assert clean.a == (percentile(pooled, 0.5), percentile(pooled, 0.95))

    shifted = compare_percentiles(a, slower, quantiles)
    assert shifted is not None
    assert all(p < 0.01 for p in shifted.p_value)
    for (low, high), a_value, b_value in zip(shifted.ci, shifted.a, shifted.b, strict=True):
        assert 0.1 < b_value / a_value - 1 < 0.3 and low > 0.05 and low <= 0.2 <= high + 0.05


def test_b_is_weighted_to_a_step_mix() -> None:
    """Same latency in each step, but B spent most requests in the slow step: no difference."""
    a = [{100.0: 900}, {300.0: 100}]
    b = [{100.0: 100}, {300.0: 900}]
    result = compare_percentiles(a, b, [0.5, 0.95])
    assert result is not None
    assert result.a == result.b == (100.0, 300.0) and result.p_value == (1.0, 1.0)


def test_empty_steps_are_left_out_and_the_bootstrap_is_repeatable() -> None:
    a = [{100.0: 50, 110.0: 50}, {}]
    b = [{100.0: 60, 120.0: 40}, {200.0: 10}]
    first = compare_percentiles(a, b, [0.5])
    assert first is not None and first.steps == 1 and first.samples_b == 100
    assert compare_percentiles(a, b, [0.5]) == first
    assert compare_percentiles([{}], [{100.0: 1}], [0.5]) is None
