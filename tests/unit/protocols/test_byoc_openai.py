"""BYOC's job header and failure modes; OpenAI-compatible request bodies."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from inferswarm.protocols import FailureCategory, ResponseView, protocol_for
from inferswarm.protocols.byoc import ByocCapability, decode_job_header
from inferswarm.protocols.openai import OpenAICapability
from tests.conftest import ASSETS


def byoc(**extra: object) -> ByocCapability:
    data = {"name": "gpu", "kind": "byoc", "capability": "agent-net", "path": "/process/request/gpu-check"}
    return ByocCapability.model_validate({**data, **extra})


def test_job_header_round_trip() -> None:
    cap = byoc(
        request={"run": "echo"}, parameters={"orchestrators": {"exclude": ["0xabc"]}}, timeout_seconds=12
    )
    prepared = protocol_for("byoc").prepare(cap, ASSETS)
    header = prepared.headers["Livepeer"]
    raw = json.loads(base64.b64decode(header, validate=True))
    # request and parameters are JSON *strings* holding JSON, as the gateway unmarshals them
    assert isinstance(raw["request"], str) and isinstance(raw["parameters"], str)
    assert json.loads(raw["request"]) == {"run": "echo"}
    assert json.loads(raw["parameters"]) == {"orchestrators": {"exclude": ["0xabc"]}}
    assert raw["capability"] == "agent-net" and raw["timeout_seconds"] == 12
    assert decode_job_header(header) == raw
    empty = json.loads(base64.b64decode(protocol_for("byoc").prepare(byoc(), ASSETS).headers["Livepeer"]))
    assert empty["request"] == "{}" and empty["parameters"] == "{}"  # never omitted (400 on gateway HEAD)


def test_timeout_seconds_must_be_non_zero_and_path_must_be_process_request() -> None:
    with pytest.raises(ValidationError, match="timeout_seconds"):
        byoc(timeout_seconds=0)
    with pytest.raises(ValidationError, match="path"):
        byoc(path="/gpu-check")


@pytest.mark.parametrize(
    ("status", "body", "category", "detail"),
    [
        (200, b"", FailureCategory.CAPACITY, "empty 200: every orchestrator failed"),
        (200, b"  \n", FailureCategory.CAPACITY, "empty 200: every orchestrator failed"),
        (
            400,
            b"No orchestrators found for capability agent-net\n",
            FailureCategory.CAPACITY,
            "HTTP 400: no orchestrator for the capability",
        ),
        (
            400,
            b"no timeout_seconds set with request\n",
            FailureCategory.CLIENT_ERROR,
            "HTTP 400: no timeout_seconds set with request",
        ),
        (
            500,
            b"job not able to be processed\n",
            FailureCategory.SERVER_ERROR,
            "HTTP 500: job not able to be processed",
        ),
        (200, b"not json", FailureCategory.BAD_BODY, "invalid JSON"),
    ],
)
def test_byoc_failures(status: int, body: bytes, category: FailureCategory, detail: str) -> None:
    failure = protocol_for("byoc").classify(byoc(), ResponseView(status, "text/plain", body))
    assert failure is not None and failure.category is category and failure.detail == detail


def test_byoc_success_needs_the_configured_fields() -> None:
    cap = byoc(success={"json_fields": ["gpu_count"]})
    assert protocol_for("byoc").classify(cap, ResponseView(200, body=b'{"gpu_count": 0}')) is None
    assert protocol_for("byoc").classify(cap, ResponseView(200, body=b'{"status": "ok"}')) is not None


def test_openai_bodies() -> None:
    chat = OpenAICapability.model_validate(
        {
            "name": "chat",
            "kind": "openai",
            "model": "m",
            "params": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        }
    )
    prepared = protocol_for("openai").prepare(chat, ASSETS)
    body = json.loads(prepared.body or b"")
    assert prepared.path == "/v1/chat/completions"
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert protocol_for("openai").stream_dialect(chat) == "openai-chat"
    completions = OpenAICapability.model_validate(
        {
            "name": "c",
            "kind": "openai",
            "api": "completions",
            "model": "m",
            "params": {"prompt": "p"},
            "stream": False,
        }
    )
    assert protocol_for("openai").prepare(completions, ASSETS).path == "/v1/completions"
    assert protocol_for("openai").stream_dialect(completions) is None
    with pytest.raises(ValidationError, match=r"params\.messages"):
        OpenAICapability.model_validate({"name": "c", "kind": "openai", "model": "m"})
