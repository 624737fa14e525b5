"""Samples stay plain Python values, survive Locust's msgpack wire and reject malformed rows."""

from __future__ import annotations

import ctypes
import math
from decimal import Decimal

import msgpack
import pytest

from inferswarm.telemetry.samples import METRIC_UNITS, Sample, from_wire, plain, sample, to_wire


class NumpyLike:
    def __init__(self, value: float) -> None:
        self._value = value

    def item(self) -> float:
        return self._value


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        (ctypes.c_uint(7), 7, int),
        (ctypes.c_ulonglong(2**40), 2**40, int),
        (ctypes.c_double(1.5), 1.5, float),
        (NumpyLike(2.25), 2.25, float),
        (Decimal("3.5"), 3.5, float),
        (True, 1, int),
        (12.0, 12.0, float),
    ],
)
def test_plain(raw: object, expected: float, kind: type) -> None:
    value = plain(raw)
    assert value == expected and type(value) is kind


def test_wire_round_trip_through_msgpack() -> None:
    batch = [
        sample(1700000000.1234, "worker@h/1", "nvml", "gpu0", "gpu_power_w", ctypes.c_uint(250)),
        sample(1700000000.1234, "worker@h/1", "host", "host", "load_1m", 0.75),
    ]
    assert batch[0].timestamp == 1700000000.123 and batch[0].unit == METRIC_UNITS["gpu_power_w"]
    decoded = msgpack.unpackb(msgpack.packb({"samples": to_wire(batch)}))
    assert from_wire(decoded["samples"]) == batch


def test_malformed_rows_are_dropped() -> None:
    good = [1.0, "n", "host", "host", "load_1m", 1.0, "load"]
    rows = [
        good,
        good[:6],
        ["x", *good[1:]],
        [*good[:5], "high", "load"],
        [*good[:5], math.nan, "load"],
        [*good[:5], True, "load"],
        "not a row",
    ]
    assert from_wire(rows) == [Sample(*good)]  # type: ignore[arg-type]
    assert from_wire({"not": "a list"}) == []
