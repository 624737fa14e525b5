"""Growing a request to `large_payload_bytes` per body kind, and what cannot grow."""

from __future__ import annotations

import json

from inferswarm.checks.requests import PADDING_FIELD, grown_body
from inferswarm.protocols import PreparedRequest


def test_a_json_body_grows_by_a_padding_field() -> None:
    request = PreparedRequest("POST", "/x", {"Content-Type": "application/json"}, b'{"prompt":"a cat"}')
    grown = grown_body(request, 10_000)
    assert not isinstance(grown, str)
    body, how = grown
    assert len(body) == 10_000 and PADDING_FIELD in how
    document = json.loads(body)
    assert document["prompt"] == "a cat" and len(document[PADDING_FIELD]) > 9_000


def test_a_multipart_body_grows_by_a_file_part_before_its_closing_boundary() -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="prompt"\r\n\r\ncat\r\n--B--\r\n'
    request = PreparedRequest("POST", "/x", {"Content-Type": "multipart/form-data; boundary=B"}, body)
    grown = grown_body(request, 5_000)
    assert not isinstance(grown, str)
    big, _ = grown
    assert 4_900 <= len(big) <= 5_100 and big.endswith(b"--B--\r\n") and big.startswith(body[:20])
    assert f'name="{PADDING_FIELD}"'.encode() in big


def test_what_cannot_grow_says_why() -> None:
    get = PreparedRequest("GET", "/x", {}, None)
    assert "without a body" in str(grown_body(get, 100))
    raw = PreparedRequest("POST", "/x", {"Content-Type": "image/jpeg"}, b"\xff\xd8")
    assert "cannot grow" in str(grown_body(raw, 100))
    array = PreparedRequest("POST", "/x", {"Content-Type": "application/json"}, b"[1]")
    assert "not an object" in str(grown_body(array, 100))
    already = PreparedRequest("POST", "/x", {"Content-Type": "image/jpeg"}, b"x" * 200)
    assert grown_body(already, 100) == (b"x" * 200, "the request as it is (already that large)")
