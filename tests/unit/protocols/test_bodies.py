from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP

from inferswarm.protocols import protocol_for
from inferswarm.protocols.json_body import JsonCapability
from inferswarm.protocols.multipart import MultipartCapability, form_value
from tests.conftest import ASSETS


def test_json_body_and_headers() -> None:
    cap = JsonCapability(
        name="t2i",
        kind="json",
        path="/text-to-image",
        params={"prompt": "a cat", "seed": 3},
        headers={"X-A": "1"},
    )
    prepared = protocol_for("json").prepare(cap, ASSETS)
    assert (prepared.method, prepared.path) == ("POST", "/text-to-image")
    assert prepared.body is not None and json.loads(prepared.body) == {"prompt": "a cat", "seed": 3}
    assert prepared.headers["Content-Type"] == "application/json" and prepared.headers["X-A"] == "1"


def test_json_get_has_no_body() -> None:
    cap = JsonCapability(name="h", kind="json", method="GET", path="/health")
    assert protocol_for("json").prepare(cap, ASSETS).body is None


def test_form_values_follow_gateway_convention() -> None:
    assert form_value(True) == "true" and form_value(False) == "false"
    assert form_value([{"a": 1}]) == '[{"a":1}]'
    assert form_value(7.5) == "7.5"


def test_multipart_round_trips_through_a_real_parser() -> None:
    cap = MultipartCapability(
        name="i2t",
        kind="multipart",
        path="/image-to-text",
        params={"prompt": "describe", "safety_check": True},
        files={"image": "image-64x48.png"},
    )
    prepared = protocol_for("multipart").prepare(cap, ASSETS)
    content_type = prepared.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    assert prepared.body is not None
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + prepared.body
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert set(parts) == {"prompt", "safety_check", "image"}
    assert parts["prompt"].get_content().strip() == "describe"
    assert parts["safety_check"].get_content().strip() == "true"
    image = parts["image"]
    assert image.get_filename() == "image-64x48.png" and image.get_content_type() == "image/png"
    assert image.get_payload(decode=True) == (ASSETS / "image-64x48.png").read_bytes()
