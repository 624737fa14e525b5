"""The reference target over real HTTP on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from inferswarm.emulator.launcher import ReferenceTarget
from inferswarm.protocols import protocol_for
from inferswarm.protocols.multipart import MultipartCapability
from tests.conftest import ASSETS
from tests.integration.http import post_json, request

pytestmark = pytest.mark.integration

StartTarget = Callable[[dict[str, Any]], ReferenceTarget]
FAST = {"distribution": "fixed", "mean_ms": 1}


@pytest.fixture
def target(start_target: StartTarget) -> ReferenceTarget:
    return start_target(
        {
            "max_body_bytes": 16384,
            "capabilities": {
                name: {"service_time": FAST} for name in ("text-to-image", "prompt-enhance", "image-to-text")
            },
        }
    )


def test_health_and_stats(target: ReferenceTarget) -> None:
    status, _, body = request(f"{target.url}/health", "GET")
    assert status == 200 and json.loads(body)["status"] == "OK"
    post_json(f"{target.url}/prompt-enhance", {"prompt": "x"})
    status, _, body = request(f"{target.url}/stats", "GET")
    stats = json.loads(body)
    assert stats["requests"] == {"prompt-enhance": 1} and stats["gpu"]["completed"] == 1


def test_text_to_image_has_the_gateway_shape(target: ReferenceTarget) -> None:
    status, body = post_json(
        f"{target.url}/text-to-image", {"prompt": "a cat", "seed": 5, "num_images_per_prompt": 2}
    )
    assert status == 200 and list(body) == ["images"]
    assert [(i["seed"], i["nsfw"]) for i in body["images"]] == [(5, False), (6, False)]
    assert body["images"][0]["url"].startswith("data:image/png;base64,")


def test_prompt_enhance_echo(target: ReferenceTarget) -> None:
    status, body = post_json(f"{target.url}/prompt-enhance", {"prompt": "a dog"})
    assert status == 200 and body["prompt"] == "a dog" and body["enhanced_prompt"].startswith("a dog, ")


def test_gpu_check_without_gpu_is_honest(target: ReferenceTarget) -> None:
    status, body = post_json(f"{target.url}/gpu-check", {"agent_id": "agent-7"})
    assert status == 200
    assert body["agent_id"] == "agent-7" and body["system_info"]["capability"] == "gpu-check"
    # This machine has no GPU: the answer must say so, not invent devices.
    assert body["gpu_count"] == 0 and body["devices"] == {} and body["status"] == "no_gpu"
    assert body["message"]
    status, _, raw = request(f"{target.url}/gpu-check")  # an empty body is allowed
    assert status == 200 and json.loads(raw)["gpu_count"] == 0


def test_image_to_text_multipart(target: ReferenceTarget) -> None:
    cap = MultipartCapability(
        name="i",
        kind="multipart",
        path="/image-to-text",
        params={"prompt": "p"},
        files={"image": "image-64x48.png"},
    )
    prepared = protocol_for("multipart").prepare(cap, ASSETS)
    status, _, body = request(
        f"{target.url}/image-to-text", body=prepared.body, headers=dict(prepared.headers)
    )
    size = (ASSETS / "image-64x48.png").stat().st_size
    assert status == 200 and json.loads(body) == {"text": f"echo: an image of {size} bytes"}


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "message"),
    [
        ("/text-to-image", b'{"prompt": ', "application/json", 400, "request body is not valid JSON"),
        ("/text-to-image", b"[1, 2]", "application/json", 400, "request body must be a JSON object"),
        ("/text-to-image", b"{}", "application/json", 400, "prompt: field required"),
        ("/text-to-image", b'{"prompt": 5}', "application/json", 400, "prompt: must be of type string"),
        (
            "/text-to-image",
            b'{"prompt": "a", "width": "wide"}',
            "application/json",
            400,
            "width: must be of type integer",
        ),
        (
            "/prompt-enhance",
            b"prompt=a",
            "application/x-www-form-urlencoded",
            415,
            "Content-Type must be application/json",
        ),
        ("/image-to-text", b"{}", "application/json", 415, "Content-Type must be multipart/form-data"),
        (
            "/image-to-text",
            b"--x--\r\n",
            "multipart/form-data; boundary=x",
            400,
            "image: a non-empty file part named 'image'",
        ),
        ("/text-to-image", b"x" * 20000, "application/json", 413, "request body exceeds 16384 bytes"),
        (
            "/text-to-image",
            b'{"prompt": "a", "num_images_per_prompt": 3000000}',
            "application/json",
            400,
            "num_images_per_prompt: must be between 1 and 16",
        ),
        (
            "/text-to-image",
            b'{"prompt": "a", "num_images_per_prompt": -5}',
            "application/json",
            400,
            "num_images_per_prompt: must be between 1 and 16",
        ),
        ("/llm", b"[" * 8000 + b"]" * 8000, "application/json", 400, "request body nests deeper than 64"),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [1, "x", null]}',
            "application/json",
            400,
            "Invalid type for 'messages[0]': expected an object",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
            "application/json",
            400,
            "Invalid 'max_tokens': integer below minimum value",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, '
            b'"stream_options": [1]}',
            "application/json",
            400,
            "Invalid type for 'stream_options': expected an object",
        ),
        ("/no-such-route", b"{}", "application/json", 404, "Not Found"),
    ],
)
def test_bad_input_gets_a_json_4xx(
    target: ReferenceTarget, path: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    got, headers, raw = request(f"{target.url}{path}", body=body, headers={"Content-Type": content_type})
    assert got == status
    assert headers["content-type"] == "application/json"
    assert json.loads(raw)["error"]["message"].startswith(message)
    assert b"Traceback" not in raw


def test_wrong_method_is_405(target: ReferenceTarget) -> None:
    status, _, raw = request(f"{target.url}/text-to-image", "GET")
    assert status == 405 and json.loads(raw) == {"error": {"message": "Method Not Allowed"}}


def test_503_when_slots_and_queue_are_full(start_target: StartTarget) -> None:
    slow = {"distribution": "fixed", "mean_ms": 800}
    target = start_target(
        {"slots": 2, "queue_depth": 1, "capabilities": {"text-to-image": {"service_time": slow}}}
    )
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda _: post_json(f"{target.url}/text-to-image", {"prompt": "x"}), range(6))
        )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 503, 503, 503]
    rejected = [body for status, body in results if status == 503]
    assert all(body == {"error": {"message": "Service Unavailable Error"}} for body in rejected)
    stats = target.stats()
    assert stats is not None and stats["gpu"]["rejected"] == 3 and stats["gpu"]["peak_in_system"] == 3


def test_client_hanging_up_mid_body_is_counted_not_a_500(target: ReferenceTarget) -> None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(target.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        head = (
            "POST /prompt-enhance HTTP/1.1\r\nHost: t\r\n"
            "Content-Type: application/json\r\nContent-Length: 50\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"prompt": ')  # a load generator stopped mid-request
    deadline = time.monotonic() + 5
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, _, body = request(f"{target.url}/stats", "GET")
        stats = json.loads(body)
        if stats["client_disconnects"] == 1:
            break
        time.sleep(0.05)
    assert stats["client_disconnects"] == 1
    assert stats["requests"].get("prompt-enhance", 0) == 0  # not counted as served


def test_half_open_connections_are_closed(target: ReferenceTarget) -> None:
    """`inferswarm serve` closes a connection that sent half a request line and then nothing."""
    import socket
    from urllib.parse import urlparse

    from inferswarm.emulator.serving import READ_TIMEOUT_S

    url = urlparse(target.url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=READ_TIMEOUT_S + 10) as sock:
        sock.sendall(b"POST /prompt-enhance HT")
        assert sock.recv(1024) == b""  # EOF: the server closed it (a timeout would raise)
