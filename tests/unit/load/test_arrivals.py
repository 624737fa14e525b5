"""The arrival processes' statistics: what an open-loop schedule sends is what the config asked for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inferswarm.load.arrivals import Arrival, ArrivalSpec, UnitGaps, offsets, unit_gaps

N = 10_000


def gaps(spec: ArrivalSpec, key: tuple[int, ...] = (0,), n: int = N) -> np.ndarray:
    source = UnitGaps(spec, key)
    return np.array([source.next() for _ in range(n)])


@pytest.mark.parametrize(
    "spec",
    [
        ArrivalSpec(Arrival.CONSTANT),
        ArrivalSpec(Arrival.POISSON, seed=3),
        ArrivalSpec(Arrival.GAMMA, burstiness=0.25, seed=3),
        ArrivalSpec(Arrival.GAMMA, burstiness=4.0, seed=3),
    ],
)
def test_the_mean_rate_is_the_configured_rate(spec: ArrivalSpec) -> None:
    # Within 1 % for every process: a random one over enough arrivals that 1 % (or, for the burstiest,
    # its coefficient of variation) is four standard errors of the mean gap, so no seed is "lucky".
    cv = 0.0 if spec.arrival is Arrival.CONSTANT else 1 / np.sqrt(spec.burstiness)
    count = N if cv == 0 else max(N, int((4 * cv / 0.01) ** 2))
    times = offsets(spec, rps=250.0, count=count)
    assert count / times[-1] == pytest.approx(250.0, rel=0.01)
    assert np.all(np.diff(times) >= 0)


def test_constant_arrivals_are_evenly_spaced() -> None:
    times = offsets(ArrivalSpec(Arrival.CONSTANT), rps=40.0, count=100)
    assert np.allclose(np.diff(times), 0.025) and times[0] == pytest.approx(0.025)


def test_poisson_gaps_are_exponential() -> None:
    sample = gaps(ArrivalSpec(Arrival.POISSON, seed=11))
    assert stats.kstest(sample, "expon").pvalue > 0.01
    # and a constant or a bursty gamma process is not
    assert stats.kstest(gaps(ArrivalSpec(Arrival.GAMMA, burstiness=0.3, seed=11)), "expon").pvalue < 1e-6


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_has_the_configured_coefficient_of_variation(burstiness: float) -> None:
    sample = gaps(ArrivalSpec(Arrival.GAMMA, burstiness=burstiness, seed=5), n=40_000)
    cv = sample.std() / sample.mean()
    assert cv == pytest.approx(1 / np.sqrt(burstiness), rel=0.05)


def test_the_seed_reproduces_the_schedule_and_keys_separate_streams() -> None:
    spec = ArrivalSpec(Arrival.POISSON, seed=42)
    assert np.array_equal(offsets(spec, 10.0, 500), offsets(spec, 10.0, 500))
    assert not np.array_equal(
        offsets(spec, 10.0, 500), offsets(ArrivalSpec(Arrival.POISSON, seed=43), 10.0, 500)
    )
    # two workers (or stages) with one seed never send in lockstep
    assert not np.array_equal(gaps(spec, (0, 0, 0), 500), gaps(spec, (0, 0, 1), 500))
    # drawn a block at a time, the stream is the same as one draw of the same length
    block = unit_gaps(spec, np.random.default_rng(np.random.SeedSequence(42, spawn_key=(0,))), 3000)
    assert np.array_equal(gaps(spec, (0,), 3000), block)
