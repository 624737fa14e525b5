from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from inferswarm.protocols import FailureCategory, ResponseView, SuccessCriteria, classify, protocol_for
from inferswarm.protocols.base import RequestFailure, parse_json, response_view

JSON = SuccessCriteria()


def category(view: ResponseView, criteria: SuccessCriteria = JSON) -> tuple[str, str] | None:
    failure = classify(view, criteria)
    return None if failure is None else (failure.category.value, failure.detail)


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (ResponseView(200, body=b'{"images": []}'), None),
        (
            ResponseView(0, error=ConnectionRefusedError(111, "refused")),
            ("connection_error", "ConnectionRefusedError"),
        ),
        (ResponseView(0, error=ConnectionResetError()), ("connection_error", "ConnectionResetError")),
        (ResponseView(0, error=TimeoutError("no response in 1s")), ("timeout", "TimeoutError")),
        (ResponseView(0, error=TimeoutError()), ("timeout", "TimeoutError")),
        (ResponseView(400, body=b'{"error": {"message": "bad"}}'), ("client_error", "HTTP 400")),
        (ResponseView(404), ("client_error", "HTTP 404")),
        (ResponseView(422), ("client_error", "HTTP 422")),
        (
            ResponseView(500, body=b'{"error": {"message": "Internal Server Error"}}'),
            ("server_error", "HTTP 500"),
        ),
        (ResponseView(502), ("server_error", "HTTP 502")),
        (
            ResponseView(503, body=b'{"error": {"message": "Service Unavailable Error"}}'),
            ("capacity", "HTTP 503"),
        ),
        (ResponseView(429), ("capacity", "HTTP 429")),
        (ResponseView(302), ("unexpected_status", "HTTP 302")),
        (ResponseView(201, body=b"{}"), ("unexpected_status", "HTTP 201")),
        (ResponseView(200, body=b""), ("bad_body", "empty body")),
        (ResponseView(200, body=b"  \n"), ("bad_body", "empty body")),
        (ResponseView(200, body=b"<html>oops</html>"), ("bad_body", "invalid JSON")),
        (ResponseView(200, body=b"\xff\xfe"), ("bad_body", "invalid JSON")),
    ],
)
def test_each_category(view: ResponseView, expected: tuple[str, str] | None) -> None:
    assert category(view) == expected


def test_required_json_fields_with_paths() -> None:
    criteria = SuccessCriteria(json_fields=["images.0.url", "meta.seed"])
    good = b'{"images": [{"url": "x"}], "meta": {"seed": 1}}'
    assert category(ResponseView(200, body=good), criteria) is None
    assert category(ResponseView(200, body=b'{"images": [], "meta": {"seed": 1}}'), criteria) == (
        "bad_body",
        "missing field 'images.0.url'",
    )
    assert category(ResponseView(200, body=b'{"images": [{"url": 1}]}'), criteria) == (
        "bad_body",
        "missing field 'meta.seed'",
    )


def test_body_modes() -> None:
    assert category(ResponseView(200, body=b""), SuccessCriteria(body="any")) is None
    assert category(ResponseView(200, body=b"text"), SuccessCriteria(body="nonempty")) is None
    assert category(ResponseView(200, body=b""), SuccessCriteria(body="nonempty")) == (
        "bad_body",
        "empty body",
    )
    assert category(ResponseView(204), SuccessCriteria(status=[204], body="any")) is None


def test_failure_message_is_stable_and_bounded() -> None:
    failure = RequestFailure(FailureCategory.CAPACITY, "HTTP 503")
    assert repr(failure) == str(failure) == "capacity: HTTP 503"
    long_body = b'{"error": {"message": "' + b"x" * 10_000 + b'"}}'
    message = str(classify(ResponseView(400, body=long_body), JSON))
    assert message == "client_error: HTTP 400"  # the body never leaks into the failure key


def test_unknown_kind_lists_valid_ones() -> None:
    with pytest.raises(
        KeyError,
        match="unknown protocol kind 'grpc'; valid kinds: byoc, groundlight, json, livepeer, multipart, "
        "openai",
    ):
        protocol_for("grpc")


def test_response_view_fast_constructor_is_the_dataclass() -> None:
    """The client's hot-path constructor builds exactly what the dataclass would, every field included
    (a field added to ResponseView later must be added there too), and keeps it frozen."""
    fast = response_view(200, "application/json", b"{}")
    slow = ResponseView(status=200, content_type="application/json", body=b"{}")
    assert type(fast) is ResponseView
    assert fast == slow
    assert vars(fast) == vars(slow)
    assert [f.name for f in dataclasses.fields(ResponseView)] == list(vars(fast))
    assert fast.extra == {} and fast.extra is not response_view(200, "", b"").extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.status = 500  # type: ignore[misc]


def _loaded(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", repr(parse(body))  # repr: NaN equals itself
    except json.JSONDecodeError as exc:
        return "json", (exc.msg, exc.pos)
    except UnicodeDecodeError as exc:
        return "unicode", exc.reason
    except ValueError as exc:
        return "value", type(exc).__name__


BODIES = [
    b"{}",
    b"[]",
    b'{"a": [1, 2.5, null, true, "\xc3\xa9"]}',
    b'{"a":1} ',
    b'{"a":1}\r\n\t ',
    b'{"a":1} x',
    b'{"a":1}{}',
    b'{"a":1}\x0b',
    b'{"a":1}\xc2\xa0',
    b'{"a": NaN, "b": -Infinity}',
    b'{"a": "\\ud800"}',
    b'{"\xff": 1}',
    b"[1, 2",
    b"{",
    b"[",
    b"{\x00",
    b'  {"a": 1}',
    b"\xef\xbb\xbf{}",
    b'"text"',
    b"12",
    b"<html></html>",
    '{"a": "\u00e9"}'.encode("utf-16-le"),
    '{"a": "\u00e9"}'.encode("utf-16-be"),
    '{"a": "\u00e9"}'.encode("utf-16"),
    '["x"]'.encode("utf-32"),
]


@pytest.mark.parametrize("body", BODIES)
def test_parse_json_is_json_loads(body: bytes) -> None:
    assert _loaded(parse_json, body) == _loaded(json.loads, body)


def test_parse_json_is_json_loads_on_mutated_documents() -> None:
    rng = random.Random(12)
    seeds = [
        b'{"a": [1, 2], "b": {"c": "d\\n"}}',
        b"[true, false, null, 1e5, -0.5]",
        b'{"x": "\xe2\x82\xac"}',
    ]
    for _ in range(3000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body) + 1)
            action = rng.randrange(3)
            if action == 0 and len(body) > 1:
                del body[min(at, len(body) - 1)]
            elif action == 1:
                body.insert(at, rng.choice(b' \t\r\n\x00\x0b{}[]",:0a\xc3\xff'))
            else:
                body[min(at, len(body) - 1)] = rng.randrange(256)
        assert _loaded(parse_json, bytes(body)) == _loaded(json.loads, bytes(body)), bytes(body)
