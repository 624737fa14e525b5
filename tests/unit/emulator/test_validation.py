"""The reference target refuses bad input with a 4xx and a JSON error, and bounds what a request costs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from inferswarm.emulator import pipelines
from inferswarm.emulator.http import MAX_JSON_BODY_BYTES
from inferswarm.protocols.multipart import encode_multipart
from tests.conftest import ASSETS
from tests.integration.http import request
from tests.unit.emulator.conftest import Served

JSON = {"Content-Type": "application/json"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
LLM = {**CHAT, "stream": False, "max_tokens": 4}
BOUNDARY = "b0undary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def post(served: Served, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, got_headers, answer = request(f"{served.url}{path}", body=raw, headers=headers or JSON)
    assert b"Traceback" not in answer
    if got_headers.get("content-type", "").startswith("application/json"):
        return status, json.loads(answer)
    return status, answer.decode()


def job_header(capability: str = "text-to-image", inner: str = "{}") -> str:
    job = {"capability": capability, "request": inner, "parameters": "{}", "timeout_seconds": 30}
    return base64.b64encode(json.dumps(job).encode()).decode()


def image_form(**fields: str) -> bytes:
    return encode_multipart(fields, {"image": ASSETS / "image-64x48.png"}, BOUNDARY)


DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 kB: under the JSON cap, far past Python's recursion limit
DEEP_OBJECT = b'{"prompt": "x", "model": "m", "extra": ' + b'{"a": ' * 70 + b"1" + b"}" * 70 + b"}"


@pytest.mark.parametrize(
    "path",
    ["/text-to-image", "/llm", "/v1/chat/completions", "/v1/completions", "/prompt-enhance", "/gpu-check"],
)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["recursion", "depth-70"])
def test_deeply_nested_json_is_a_400(served: Served, path: str, body: bytes) -> None:
    status, answer = post(served, path, body)
    assert status == 400
    assert answer["error"]["message"] == "request body nests deeper than 64 levels"


def test_deeply_nested_async_job_poll_is_a_400(served: Served) -> None:
    status, answer = post(served, "/image-to-video/result", DEEP)
    assert (status, answer) == (400, {"error": {"message": "request_id is required"}})


def test_deeply_nested_byoc_header_is_a_400(served: Served) -> None:
    deep = base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()  # about 13 kB: fits the header limit
    status, answer = post(served, "/process/request/text-to-image", CHAT, {**JSON, "Livepeer": deep})
    assert status == 400 and answer == "Unable to parse job request: header is not base64 JSON\n"


def test_nan_is_not_json(served: Served) -> None:
    # The echo worker repeats the request: NaN once made its answer unserialisable (a 500).
    headers = {**JSON, "Livepeer": job_header()}
    status, answer = post(served, "/process/request/text-to-image", b'{"prompt": "x", "n": NaN}', headers)
    assert status == 400 and answer == "request body is not valid JSON\n"
    status, answer = post(served, "/text-to-image", b'{"prompt": "x", "guidance_scale": Infinity}')
    assert (status, answer) == (400, {"error": {"message": "request body is not valid JSON"}})


def test_stream_options_must_be_an_object(served: Served) -> None:
    status, answer = post(served, "/v1/chat/completions", {**CHAT, "stream": True, "stream_options": "yes"})
    assert status == 400
    assert answer == {
        "error": {
            "message": "Invalid type for 'stream_options': expected an object, but got a string instead.",
            "type": "invalid_request_error",
            "param": "stream_options",
            "code": "invalid_type",
        }
    }
    status, answer = post(served, "/v1/chat/completions", {**CHAT, "stream_options": {"include_usage": True}})
    assert status == 400 and answer["error"]["param"] == "stream_options"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"num_images_per_prompt": 3_000_000},
            "num_images_per_prompt: must be between 1 and 16, got 3000000",
        ),
        ({"num_images_per_prompt": 20_000_000}, "num_images_per_prompt: must be between 1 and 16"),
        ({"num_images_per_prompt": -5}, "num_images_per_prompt: must be between 1 and 16, got -5"),
        ({"num_images_per_prompt": 0}, "num_images_per_prompt: must be between 1 and 16"),
        ({"width": 100_000}, "width: must be between 8 and 4096"),
        ({"height": -512}, "height: must be between 8 and 4096"),
        ({"width": 500}, "width: must be divisible by 8, got 500"),
        ({"num_inference_steps": 0}, "num_inference_steps: must be between 1 and 500"),
        ({"num_inference_steps": 10**9}, "num_inference_steps: must be between 1 and 500"),
        ({"seed": 2**70}, "seed: must be between"),
        ({"guidance_scale": -1}, "guidance_scale: must be between 0 and 100"),
        ({"prompt": "a|" * 20, "num_images_per_prompt": 1}, "too many images requested: 21"),
        ({"prompt": "a|b|c", "num_images_per_prompt": 8}, "too many images requested: 24 (at most 16"),
    ],
)
def test_text_to_image_fields_are_bounded(served: Served, body: dict[str, Any], message: str) -> None:
    status, answer = post(served, "/text-to-image", {"prompt": "a cat", **body})
    assert status == 400 and list(answer) == ["error"]
    assert answer["error"]["message"].startswith(message)


def test_text_to_image_within_bounds_is_served(served: Served) -> None:
    body = {"prompt": "a|b", "num_images_per_prompt": 8, "width": 512, "height": 288, "seed": 2**63 - 1}
    status, answer = post(served, "/text-to-image", body)
    assert status == 200 and len(answer["images"]) == 16


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("/image-to-image", {"prompt": "p", "strength": "1.5"}, "strength: must be between 0 and 1"),
        ("/image-to-image", {"prompt": "p", "num_images_per_prompt": "-5"}, "num_images_per_prompt: must be"),
        ("/image-to-image", {"prompt": "p", "guidance_scale": "nan"}, "guidance_scale: must be between"),
        ("/image-to-video", {"fps": "100000"}, "fps: must be between 1 and 120"),
        ("/image-to-video", {"motion_bucket_id": "-1"}, "motion_bucket_id: must be between 0 and 255"),
        ("/image-to-video", {"noise_aug_strength": "inf"}, "noise_aug_strength: must be between 0 and 1"),
        ("/upscale", {"prompt": "p", "num_inference_steps": "0"}, "num_inference_steps: must be between"),
        ("/segment-anything-2", {"point_coords": "[[[["}, "point_coords: must be a JSON array"),
        ("/segment-anything-2", {"box": "[" * 5000 + "]" * 5000}, "box: must be a JSON array"),
        ("/image-to-image", {"prompt": "p", "loras": "[" * 5000}, "loras: must be a JSON object"),
    ],
)
def test_multipart_fields_are_bounded(
    served: Served, path: str, fields: dict[str, str], message: str
) -> None:
    status, answer = post(served, path, image_form(**fields), MULTIPART)
    assert status == 400 and answer["error"]["message"].startswith(message)


def test_json_bodies_are_capped_below_uploads(served: Served, tmp_path: Path) -> None:
    big = {"prompt": "x" * (MAX_JSON_BODY_BYTES + 1024)}
    status, answer = post(served, "/text-to-image", big)
    assert (status, answer) == (
        413,
        {"error": {"message": f"request body exceeds {MAX_JSON_BODY_BYTES} bytes"}},
    )
    status, answer = post(served, "/v1/chat/completions", {**CHAT, "user": "x" * MAX_JSON_BODY_BYTES})
    assert status == 413 and answer["error"]["type"] == "invalid_request_error"
    # an upload may be larger: it is held to max_body_bytes (10 MiB by default), not the JSON cap
    image = tmp_path / "big.png"
    image.write_bytes((ASSETS / "image-64x48.png").read_bytes() + bytes(3 * 1024 * 1024))
    status, answer = post(
        served, "/image-to-text", encode_multipart({}, {"image": image}, BOUNDARY), MULTIPART
    )
    assert status == 200 and answer["text"] == f"echo: an image of {image.stat().st_size} bytes"
    status, answer = post(served, "/image-to-text", image_form(prompt="x" * 2_000_000), MULTIPART)
    assert status == 400  # a text field is held to 1 MiB by the form parser


def invalid(message: str, param: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [1, "x", None]},
            invalid(
                "Invalid type for 'messages[0]': expected an object, but got an integer instead.",
                "messages[0]",
                "invalid_type",
            ),
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "max_tokens": -1},
            invalid(
                "Invalid 'max_tokens': integer below minimum value. "
                "Expected a value >= 1, but got -1 instead.",
                "max_tokens",
                "integer_below_min_value",
            ),
        ),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "wizard", "content": "hi"}]},
            invalid(
                "Invalid value: 'wizard'. Supported values are: 'system', 'user', 'assistant', 'tool', "
                "'developer', 'function'.",
                "messages[0].role",
                "invalid_value",
            ),
        ),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            invalid(
                "Invalid type for 'messages[0].content': expected one of a string or array of objects, "
                "but got an integer instead.",
                "messages[0].content",
                "invalid_type",
            ),
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "temperature": 9},
            invalid(
                "Invalid 'temperature': decimal above maximum value. "
                "Expected a value <= 2, but got 9 instead.",
                "temperature",
                "decimal_above_max_value",
            ),
        ),
        (
            "/v1/completions",
            {"model": "m", "prompt": [1, "x", None]},
            invalid(
                "Invalid type for 'prompt': expected one of a string, array of strings, array of integers "
                "or array of arrays, but got an array instead.",
                "prompt",
                "invalid_type",
            ),
        ),
        (
            "/v1/completions",
            {"model": "m", "prompt": "p", "n": 10**6},
            invalid(
                "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 1000000 instead.",
                "n",
                "integer_above_max_value",
            ),
        ),
        ("/v1/completions", b"{", invalid("request body is not valid JSON", None, None)),  # type: ignore[arg-type]
    ],
)
def test_openai_routes_refuse_like_openai(served: Served, path: str, body: Any, expected: Any) -> None:
    status, answer = post(served, path, body)
    assert (status, answer) == (400, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**LLM, "max_tokens": -1}, "max_tokens: must be between 1 and 131072, got -1"),
        ({**LLM, "max_tokens": 0}, "max_tokens: must be between 1 and 131072, got 0"),
        ({**LLM, "temperature": "hot"}, "temperature: must be a number"),
        ({**LLM, "top_p": 0}, "top_p: must be in (0, 1], got 0"),
        ({**LLM, "top_k": 0}, "top_k: must be -1 (off) or at least 1, got 0"),
        ({**LLM, "model": 7}, "model: must be a string"),
        ({**LLM, "messages": [1, "x", None]}, "messages: each message needs a string role and content"),
    ],
)
def test_gateway_llm_refuses_with_its_shape(served: Served, body: dict[str, Any], message: str) -> None:
    status, answer = post(served, "/llm", body)
    assert (status, answer) == (400, {"error": {"message": message}})


def test_valid_llm_requests_still_stream(served: Served) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 2}
    status, answer = post(served, "/v1/chat/completions", body)
    assert status == 200 and answer.rstrip().endswith("data: [DONE]") and '"usage"' in answer
    status, answer = post(served, "/llm", {**LLM, "top_k": -1, "temperature": 0})
    assert status == 200 and answer["usage"]["completion_tokens"] == 3


def test_async_jobs_are_bounded(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipelines, "MAX_ASYNC_JOBS", 2)
    headers = {**MULTIPART, "Prefer": "respond-async"}
    statuses = [post(served, "/image-to-video", image_form(), headers)[0] for _ in range(3)]
    assert statuses == [202, 202, 503]


def test_a_wav_with_a_zero_frame_rate_is_not_a_500(served: Served, tmp_path: Path) -> None:
    sound = bytearray((ASSETS / "tone-1s-16khz.wav").read_bytes())
    sound[24:28] = bytes(4)  # the fmt chunk's sample rate
    audio = tmp_path / "zero-rate.wav"
    audio.write_bytes(bytes(sound))
    status, answer = post(
        served, "/audio-to-text", encode_multipart({}, {"audio": audio}, BOUNDARY), MULTIPART
    )
    assert status == 200 and answer["chunks"][0]["timestamp"] == [0.0, 1.0]
