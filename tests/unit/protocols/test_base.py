from __future__ import annotations

import dataclasses

import pytest

from inferswarm.protocols import FailureCategory, ResponseView, SuccessCriteria, classify, protocol_for
from inferswarm.protocols.base import RequestFailure, response_view

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
