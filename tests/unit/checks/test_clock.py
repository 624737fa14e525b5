"""Clock offset arithmetic and its verdicts."""

from __future__ import annotations

import pytest

from inferswarm.checks.clock import WHY, clock_offset, judge_offset
from inferswarm.checks.model import Status


def test_offset_is_agent_time_minus_the_midpoint_bounded_by_half_the_round_trip() -> None:
    offset = clock_offset(1000.000, 1000.130, 1000.020)  # midpoint 1000.010
    assert offset.offset_ms == pytest.approx(120.0)
    assert offset.bound_ms == pytest.approx(10.0) and offset.round_trip_ms == pytest.approx(20.0)
    behind = clock_offset(2000.0, 1999.5, 2000.002)
    assert behind.offset_ms == pytest.approx(-501.0)


@pytest.mark.parametrize(
    ("agent_ms", "status"),
    [
        (1.0, Status.PASS),
        (-49.0, Status.PASS),
        (60.0, Status.WARN),
        (-900.0, Status.WARN),
        (1500.0, Status.FAIL),
    ],
)
def test_warn_beyond_50_ms_fail_beyond_1_s(agent_ms: float, status: Status) -> None:
    offset = clock_offset(100.0, 100.001 + agent_ms / 1000, 100.002)
    got, why = judge_offset(offset, 50.0, 1000.0)
    assert got is status
    if status is not Status.PASS:
        assert why is not None and WHY in why


def test_a_round_trip_too_long_to_tell_is_a_warning() -> None:
    offset = clock_offset(100.0, 100.1, 100.2)  # exactly centred, but +/- 100 ms
    status, why = judge_offset(offset, 50.0, 1000.0)
    assert status is Status.WARN and why is not None and "round trip" in why
