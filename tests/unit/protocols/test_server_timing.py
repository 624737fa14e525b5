"""Reading a server's own compute time: Server-Timing, a JSON header, a JSON field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferswarm.protocols.server_timing import (
    ServerTimingSpec,
    from_field,
    from_json_header,
    from_server_timing,
    server_timing_metrics,
)

GENIE = '{"deserialize_ms": 1.5, "execute_ms": 10.25, "serialize_ms": 0.75, "total_ms": 12.5}'


def test_server_timing_several_metrics() -> None:
    value = 'db;dur=53, compute;dur=12.3;desc="GPU, fp16", total;dur=70'
    assert server_timing_metrics(value) == {"db": 53.0, "compute": 12.3, "total": 70.0}
    assert from_server_timing(value) == 12.3  # the one named compute
    assert from_server_timing(value, "db") == 53.0
    assert from_server_timing(value, "missing") is None


def test_server_timing_default_without_compute() -> None:
    assert from_server_timing("infer;dur=7") == 7.0  # the only one with a dur
    assert from_server_timing("a;dur=1, b;dur=2") is None  # ambiguous: never a sum
    assert from_server_timing("cache;desc=hit, infer;dur=4") == 4.0


@pytest.mark.parametrize(
    "value", ["", "garbage", "compute;dur=abc", "compute;dur=-1", "compute;dur=inf", ";;,"]
)
def test_server_timing_garbage_is_none(value: str) -> None:
    assert from_server_timing(value) is None


def test_json_header() -> None:
    assert from_json_header(GENIE) == 12.5
    assert from_json_header(GENIE, "execute_ms") == 10.25
    assert from_json_header(GENIE, "nope") is None
    for garbage in ("{", "[1]", '{"total_ms": "fast"}', '{"total_ms": true}', '{"total_ms": NaN}'):
        assert from_json_header(garbage) is None


def test_field() -> None:
    document = {"timings": {"infer_ms": 3}, "steps": [{"ms": 1.5}]}
    assert from_field(document, "timings.infer_ms") == 3.0
    assert from_field(document, "steps.0.ms") == 1.5
    assert from_field(document, "timings.missing") is None
    assert from_field(None, "timings") is None
    assert from_field(document, "timings") is None  # an object, not a number


def test_spec_reads_each_place() -> None:
    headers = {"server-timing": "compute;dur=8", "X-Genie-Server-Timing": GENIE}
    assert ServerTimingSpec(header="Server-Timing").read(headers) == 8.0
    assert ServerTimingSpec(json_header="x-genie-server-timing").read(headers) == 12.5
    assert ServerTimingSpec(json_header="X-Genie-Server-Timing", key="execute_ms").read(headers) == 10.25
    assert ServerTimingSpec(field="t.ms").read(headers, {"t": {"ms": 2}}) == 2.0
    assert ServerTimingSpec(header="Server-Timing").read({}) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one"),
        ({"header": "Server-Timing", "field": "a"}, "exactly one"),
        ({"field": "a", "metric": "compute"}, "metric goes with header"),
        ({"header": "Server-Timing", "key": "total_ms"}, "key goes with json_header"),
        ({"header": "bad header:"}, "not a header name"),
    ],
)
def test_spec_validation(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServerTimingSpec.model_validate(fields)
