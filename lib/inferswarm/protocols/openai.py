"""`kind: openai`: OpenAI-compatible LLM servers (vLLM, TGI, llama.cpp server, ai-runner's OpenAI routes).

`api: chat` posts `{model, messages, ...}` to `/v1/chat/completions`, `api: completions` posts
`{model, prompt, ...}` to `/v1/completions`. Streaming asks for `stream_options.include_usage`, so the
token count comes from the server's own usage block when it sends one (and from the chunks otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from inferswarm.protocols.base import (
    CapabilityBase,
    FailureCategory,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    classify_exception,
    classify_http_error,
    register_protocol,
)

_DEFAULT_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


class OpenAICapability(CapabilityBase):
    kind: Literal["openai"]
    api: Literal["chat", "completions"] = "chat"
    path: str = Field(default="", pattern=r"^(/.*)?$")
    """Default `/v1/chat/completions` or `/v1/completions`."""
    model: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    """The request body besides `model` and `stream`: `messages` (chat) or `prompt` (completions), and
    sampling fields such as `max_tokens` and `temperature`, passed as they are."""
    stream: bool = True
    include_usage: bool = True
    """Ask for the usage chunk at the end of a stream (`stream_options.include_usage`)."""

    @model_validator(mode="before")
    @classmethod
    def _default_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("path"):
            data = {**data, "path": _DEFAULT_PATHS.get(str(data.get("api", "chat")), "/v1/chat/completions")}
        return data

    @model_validator(mode="after")
    def _body_fits_api(self) -> OpenAICapability:
        for key in ("model", "stream", "stream_options"):
            if key in self.params:
                raise ValueError(f"params.{key}: set by the capability's own fields")
        if self.api == "chat":
            messages = self.params.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("params.messages: a non-empty list is required for api: chat")
        elif not isinstance(self.params.get("prompt"), str | list):
            raise ValueError("params.prompt: required for api: completions")
        return self


def _check_response(api: str, body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body is not an object"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "choices is missing or empty"
    if api == "chat":
        message = choices[0].get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return "choices[0].message.content is missing"
    elif not isinstance(choices[0].get("text"), str):
        return "choices[0].text is missing"
    return None


@register_protocol
class OpenAIProtocol(Protocol[OpenAICapability]):
    model = OpenAICapability

    def prepare(self, capability: OpenAICapability, assets_dir: Path) -> PreparedRequest:
        body: dict[str, Any] = {"model": capability.model, **capability.params, "stream": capability.stream}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if capability.stream:
            if capability.include_usage:
                body["stream_options"] = {"include_usage": True}
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        headers.update(capability.headers)
        data = json.dumps(body, separators=(",", ":")).encode()
        return PreparedRequest("POST", capability.path, headers, data)

    def stream_dialect(self, capability: OpenAICapability) -> str | None:
        if not capability.stream:
            return None
        return "openai-chat" if capability.api == "chat" else "openai-completions"

    def classify(self, capability: OpenAICapability, response: ResponseView) -> RequestFailure | None:
        if response.error is not None and response.status == 0:
            return classify_exception(response.error)
        failure = classify_http_error(response, capability.success.status)
        if failure is not None or capability.stream:
            return failure
        try:
            document = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            return RequestFailure(FailureCategory.BAD_BODY, "invalid JSON")
        problem = _check_response(capability.api, document)
        return RequestFailure(FailureCategory.BAD_BODY, problem) if problem else None

    def describe(self, capability: OpenAICapability, assets_dir: Path) -> dict[str, Any]:
        return {"pipeline": "llm", "model": capability.model, "streaming": capability.stream}
