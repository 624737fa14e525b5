"""`kind: livepeer`: requests checked against the gateway's real OpenAPI spec, responses and errors judged
as the gateway behaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from inferswarm.config import load_config
from inferswarm.protocols import PENDING, FailureCategory, Poll, RequestFailure, ResponseView, protocol_for
from inferswarm.protocols.livepeer import PIPELINES, LivepeerCapability
from tests.conftest import ASSETS
from tests.unit.protocols.spec import validate_request, validate_response

ROOT = Path(__file__).resolve().parents[3]
FILES = {"image": "image-64x48.png", "audio": "tone-1s-16khz.wav"}
MINIMAL: dict[str, dict[str, Any]] = {
    "text-to-image": {"prompt": "a cat"},
    "image-to-image": {"prompt": "make it blue"},
    "image-to-video": {},
    "upscale": {"prompt": "sharp"},
    "audio-to-text": {},
    "segment-anything-2": {},
    "image-to-text": {},
    "text-to-speech": {"text": "hello"},
    "llm": {"messages": [{"role": "user", "content": "hi"}]},
}


def capability(pipeline: str, **extra: Any) -> LivepeerCapability:
    spec = PIPELINES[pipeline]
    files = {spec.file_field: FILES[spec.file_field]} if spec.file_field else {}
    data = {
        "name": "c",
        "kind": "livepeer",
        "pipeline": pipeline,
        "params": MINIMAL[pipeline],
        "files": files,
    }
    return LivepeerCapability.model_validate({**data, **extra})


def prepared(cap: LivepeerCapability) -> tuple[str, dict[str, str], bytes]:
    request = protocol_for("livepeer").prepare(cap, ASSETS)
    assert request.method == "POST" and request.body is not None
    return request.path, {**request.headers, "Authorization": "Bearer t"}, request.body


def test_every_pipeline_is_covered() -> None:
    assert set(PIPELINES) == set(MINIMAL)


@pytest.mark.parametrize("pipeline", sorted(MINIMAL))
def test_minimal_request_passes_the_gateway_spec(pipeline: str) -> None:
    path, headers, body = prepared(capability(pipeline))
    assert path == f"/{pipeline}"
    validate_request(path, headers, body)


def test_every_request_in_the_shipped_config_passes_the_spec() -> None:
    config = load_config(ROOT / "configs" / "livepeer-gateway.yaml")
    assert {c.pipeline for c in config.capabilities} == set(PIPELINES)  # type: ignore[union-attr]
    for cap in config.capabilities:
        request = protocol_for(cap.kind).prepare(cap, config.assets_path)
        assert request.body is not None
        validate_request(request.path, {**request.headers, "Authorization": "Bearer t"}, request.body)


def test_the_spec_check_can_fail() -> None:
    """The validator is not a rubber stamp: a multipart request missing its required prompt is refused."""
    from tests.unit.protocols.spec import require_spec

    require_spec()
    path, headers, body = prepared(capability("image-to-image"))
    broken = body.replace(b'name="prompt"', b'name="promptx"')
    with pytest.raises(Exception, match="prompt"):
        validate_request(path, headers, broken)
    bad_type = body.replace(b"make it blue", b"make it blue").replace(
        b'name="model_id"\r\n\r\nstabilityai/sdxl-turbo', b'name="num_inference_steps"\r\n\r\nmany'
    )
    with pytest.raises(Exception, match="many"):  # "many" is not an integer
        validate_request(path, headers, bad_type)


def test_model_id_defaults_to_the_gateways_and_llm_gets_the_gateways_required_fields() -> None:
    _, _, body = prepared(capability("text-to-image"))
    assert json.loads(body)["model_id"] == "stabilityai/sdxl-turbo"
    _, _, body = prepared(capability("llm", model_id="my/model"))
    sent = json.loads(body)
    assert sent["model"] == "my/model" and sent["stream"] is False and sent["max_tokens"] == 256


def test_multipart_values_follow_the_gateway_convention() -> None:
    cap = capability("segment-anything-2", params={"point_coords": [[1, 2]], "multimask_output": False})
    _, headers, body = prepared(cap)
    from tests.unit.protocols.spec import parse_multipart

    fields, files = parse_multipart(headers["Content-Type"], body)
    assert fields["point_coords"] == "[[1,2]]" and fields["multimask_output"] == "false"
    assert files["image"] == (ASSETS / "image-64x48.png").read_bytes()


def test_streaming_and_async_headers() -> None:
    _, headers, _ = prepared(capability("llm", params={**MINIMAL["llm"], "stream": True}))
    assert headers["Accept"] == "text/event-stream" and headers["Accept-Encoding"] == "identity"
    cap = capability("image-to-video", async_mode=True)
    _, headers, _ = prepared(cap)
    assert headers["Prefer"] == "respond-async"
    protocol = protocol_for("livepeer")
    assert protocol.polls(cap) and not protocol.polls(capability("image-to-video"))
    poll = protocol.poll(cap, ResponseView(202, body=b'{"request_id": "r-1"}'), headers)
    assert isinstance(poll, Poll) and poll.request.path == "/image-to-video/result"


@pytest.mark.parametrize(
    ("pipeline", "extra", "problem"),
    [
        ("text-to-image", {"params": {"prompt": "a", "colour": "red"}}, "params.colour: not a field"),
        ("text-to-image", {"params": {"prompt": "a", "width": "512"}}, "params.width: must be a integer"),
        ("text-to-image", {"params": {}}, "params.prompt: required"),
        ("text-to-speech", {"params": {"text": ""}}, "params.text: required"),
        ("image-to-image", {"files": {}}, "exactly one file, `image`"),
        ("audio-to-text", {"params": {"return_timestamps": "yes"}}, "return_timestamps"),
        ("text-to-image", {"async_mode": True}, "only image-to-video"),
        ("llm", {"params": {"messages": [{"role": "user"}]}}, "messages[0]"),
    ],
)
def test_config_mistakes_are_refused(pipeline: str, extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        capability(pipeline, **extra)


GOOD_BODIES: dict[str, Any] = {
    "text-to-image": {"images": [{"url": "u", "seed": 1, "nsfw": False}]},
    "image-to-video": {"images": [{"url": "u.mp4", "seed": 1, "nsfw": False}]},
    "audio-to-text": {"text": "t", "chunks": [{"timestamp": [0, 1], "text": "t"}]},
    "segment-anything-2": {"masks": "[]", "scores": "[]", "logits": "[]"},
    "image-to-text": {"text": "t"},
    "text-to-speech": {"audio": {"url": "u"}},
    "llm": {
        "id": "x",
        "model": "m",
        "created": 1,
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    },
}


@pytest.mark.parametrize("pipeline", sorted(GOOD_BODIES))
def test_schema_bodies_pass_and_match_the_spec(pipeline: str) -> None:
    body = json.dumps(GOOD_BODIES[pipeline]).encode()
    validate_response(f"/{pipeline}", 200, body)
    assert protocol_for("livepeer").classify(capability(pipeline), ResponseView(200, body=body)) is None


@pytest.mark.parametrize(
    ("pipeline", "body", "detail"),
    [
        ("text-to-image", {"images": []}, "images is empty"),
        ("text-to-image", {"images": [{"url": "u", "seed": "1", "nsfw": False}]}, "images[0].seed"),
        ("audio-to-text", {"text": "t"}, "chunks"),
        ("segment-anything-2", {"masks": [], "scores": "", "logits": ""}, "masks"),
        ("text-to-speech", {"audio": "u"}, "audio.url"),
        ("llm", {"id": "x"}, "model"),
    ],
)
def test_a_200_that_breaks_the_schema_is_a_failure(pipeline: str, body: Any, detail: str) -> None:
    failure = protocol_for("livepeer").classify(
        capability(pipeline), ResponseView(200, body=json.dumps(body).encode())
    )
    assert failure is not None and failure.category is FailureCategory.BAD_BODY and detail in failure.detail


@pytest.mark.parametrize(
    ("status", "body", "category", "detail"),
    [
        (
            503,
            {"error": {"message": "Service Unavailable Error"}},
            FailureCategory.CAPACITY,
            "HTTP 503: Service Unavailable Error",
        ),
        (
            500,
            {"error": {"message": "Internal Server Error"}},
            FailureCategory.SERVER_ERROR,
            "HTTP 500: Internal Server Error",
        ),
        (
            400,
            {"error": {"message": "text field is required"}},
            FailureCategory.CLIENT_ERROR,
            "HTTP 400: text field is required",
        ),
        (
            422,
            {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]},
            FailureCategory.CLIENT_ERROR,
            "HTTP 422: body.prompt: Field required",
        ),
        (
            401,
            {"detail": {"msg": "Invalid bearer token."}},
            FailureCategory.CLIENT_ERROR,
            "HTTP 401: Invalid bearer token.",
        ),
    ],
)
def test_errors_are_classified_as_the_gateway_behaves(
    status: int, body: Any, category: FailureCategory, detail: str
) -> None:
    failure = protocol_for("livepeer").classify(
        capability("text-to-image"), ResponseView(status, body=json.dumps(body).encode())
    )
    assert failure is not None and failure.category is category and failure.detail == detail


def async_poll(**extra: Any) -> Poll:
    """The Poll for an accepted image-to-video job (submitted with the prepared headers plus a token)."""
    protocol = protocol_for("livepeer")
    cap = capability("image-to-video", async_mode=True, **extra)
    _, headers, _ = prepared(cap)
    poll = protocol.poll(cap, ResponseView(202, body=b'{"request_id": "r-1"}'), headers)
    assert isinstance(poll, Poll)
    return poll


def test_a_202_with_a_request_id_is_polled_at_the_result_path() -> None:
    poll = async_poll(poll_interval_s=0.25)
    request = poll.request
    assert (request.method, request.path) == ("POST", "/image-to-video/result")
    assert request.body is not None and json.loads(request.body) == {"request_id": "r-1"}
    assert "Prefer" not in request.headers  # the result request must not ask for async again
    assert request.headers["Content-Type"] == "application/json"  # not the submit's multipart type
    assert request.headers["Authorization"] == "Bearer t"  # the submit's credentials go along
    assert poll.interval_s == 0.25
    prefixed = async_poll(path="/gateway/image-to-video/")
    assert prefixed.request.path == "/gateway/image-to-video/result"


@pytest.mark.parametrize("body", [b"{}", b'{"request_id": ""}', b'{"request_id": 7}', b"not json", b"[]"])
def test_a_202_without_a_request_id_is_a_bad_body(body: bytes) -> None:
    cap = capability("image-to-video", async_mode=True)
    failure = protocol_for("livepeer").poll(cap, ResponseView(202, body=body), {})
    assert isinstance(failure, RequestFailure)
    assert (failure.category, failure.detail) == (FailureCategory.BAD_BODY, "202 without a request_id")


def test_only_an_async_202_is_polled() -> None:
    protocol = protocol_for("livepeer")
    accepted = ResponseView(202, body=b'{"request_id": "r-1"}')
    assert protocol.poll(capability("image-to-video"), accepted, {}) is None  # async mode off
    cap = capability("image-to-video", async_mode=True)
    done = json.dumps(GOOD_BODIES["image-to-video"]).encode()
    assert protocol.poll(cap, ResponseView(200, body=done), {}) is None  # answered at once: classify it


def judged(status: int, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return async_poll().judge(ResponseView(status, body=raw))


def test_the_poll_judge() -> None:
    assert judged(202, {"status": "processing"}) is PENDING
    assert judged(200, {"status": "processing"}) is PENDING  # not complete yet
    assert judged(200, {"status": "complete", "result": GOOD_BODIES["image-to-video"]}) is None


@pytest.mark.parametrize(
    ("status", "body", "category", "detail"),
    [
        (
            200,
            {
                "status": "complete",
                "result": {"images": [], "error": {"message": "Service Unavailable Error"}},
            },
            FailureCategory.CAPACITY,
            "async job failed: Service Unavailable Error",
        ),
        (
            200,
            {"status": "complete", "result": {"error": {"message": "CUDA out of memory"}}},
            FailureCategory.SERVER_ERROR,
            "async job failed: CUDA out of memory",
        ),
        (
            200,
            {"status": "complete", "result": "done"},
            FailureCategory.BAD_BODY,
            "async result is not an object",
        ),
        (
            200,
            {"status": "complete", "result": {"images": []}},
            FailureCategory.BAD_BODY,
            "image-to-video: images is empty",
        ),
        (200, b"<html>", FailureCategory.BAD_BODY, "poll answer is not JSON"),
        (500, {"error": {"message": "Internal Server Error"}}, FailureCategory.SERVER_ERROR, "HTTP 500"),
        (404, {"error": {"message": "request not found"}}, FailureCategory.CLIENT_ERROR, "HTTP 404"),
        (503, {}, FailureCategory.CAPACITY, "HTTP 503"),
    ],
)
def test_the_poll_judge_failures(status: int, body: Any, category: FailureCategory, detail: str) -> None:
    failure = judged(status, body)
    assert isinstance(failure, RequestFailure)
    assert failure.category is category and failure.detail.startswith(detail), failure


def test_describe_gives_the_report_its_units() -> None:
    protocol = protocol_for("livepeer")
    two = capability("text-to-image", params={"prompt": "a|b", "num_images_per_prompt": 2})
    assert protocol.describe(two, ASSETS)["outputs_per_request"] == 4
    assert protocol.describe(capability("audio-to-text"), ASSETS)["audio_s"] == pytest.approx(1.0)
