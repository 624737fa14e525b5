"""LLM routes: the gateway's `/llm` and OpenAI-compatible `/v1/chat/completions` and `/v1/completions`.

Streams are server-sent events with a knob for everything a client must handle: time to first token,
per-token delay, `[DONE]` or not (the gateway sends none; the runner and OpenAI servers do), an error
event inside the 200, and a stream cut short. A request holds a GPU slot from its first token to its
last, so concurrent streams queue, and beyond the queue the answer is 503 before the stream starts.

Requests are checked as the real services check them: `/llm` like the gateway (its Go decoder, then the
runner's sampling limits) with the gateway's `{"error": {"message"}}` 400s; the OpenAI-compatible routes
like the OpenAI API, 400 `{"error": {"message", "type": "invalid_request_error", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from inferswarm.emulator.gateway import Gateway
from inferswarm.emulator.http import (
    ApiError,
    Guard,
    OpenAIError,
    json_limit,
    json_object,
    read_body,
    require_content_type,
)
from inferswarm.emulator.settings import CapabilitySettings
from inferswarm.emulator.state import TargetState

Dialect = Literal["livepeer", "openai-chat", "openai-completions"]
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive"}
ROLES = ("system", "user", "assistant", "tool", "developer", "function")
MAX_TOKENS = 131_072
"""The largest max_tokens accepted (a model's context); the answer is never longer than output_tokens."""
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
INT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (1, MAX_TOKENS),
    "max_completion_tokens": (1, MAX_TOKENS),
    "n": (1, 128),
}


def sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def tokens_for(settings: CapabilitySettings, max_tokens: Any) -> int:
    limit = (
        max_tokens
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
        else None
    )
    return min(settings.output_tokens, limit) if limit else settings.output_tokens


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    text = (
        " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        if isinstance(messages, list)
        else str(body.get("prompt", ""))
    )
    return max(len(text.split()), 1)


class Completion:
    """One answer being generated: ids, token texts, and the chunk shapes of each dialect."""

    def __init__(self, dialect: Dialect, model: str, prompt: int, total: int) -> None:
        self.dialect = dialect
        self.model = model
        self.prompt = prompt
        self.total = total
        self.id = ("chatcmpl-" if dialect != "openai-completions" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    @staticmethod
    def token(index: int) -> str:
        return f"tok{index} "

    def usage(self, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": completion,
            "total_tokens": self.prompt + completion,
        }

    def chunk(self, index: int, text: str, finish: str | None) -> dict[str, Any]:
        if self.dialect == "livepeer":
            return {
                "id": self.id,
                "model": self.model,
                "created": self.created,
                "usage": self.usage(index),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": text},
                        "finish_reason": finish or "",
                    }
                ],
            }
        if self.dialect == "openai-chat":
            delta = {"role": "assistant", "content": text} if text else {}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
            kind = "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def whole(self) -> dict[str, Any]:
        text = "".join(self.token(i) for i in range(self.total))
        if self.dialect == "openai-completions":
            choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "stop"}
            kind = "text_completion"
        else:
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
            kind = "chat.completion"
        body = {
            "id": self.id,
            "model": self.model,
            "created": self.created,
            "usage": self.usage(self.total),
            "choices": [choice],
        }
        if self.dialect != "livepeer":
            body["object"] = kind
        return body


def type_name(value: Any) -> str:
    """OpenAI's words for a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param,
        "invalid_type",
    )


def missing(param: str) -> OpenAIError:
    return OpenAIError(400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def check_sampling(body: dict[str, Any]) -> None:
    """The OpenAI API's checks of the sampling fields, as OpenAIError."""
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid_type("stream", "a boolean", body["stream"])
    for name, (low, high) in INT_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not is_int(value):
            raise invalid_type(name, "an integer", value)
        if value < low:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                f"but got {value} instead.",
                name,
                "integer_below_min_value",
            )
        if value > high:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
                f"but got {value} instead.",
                name,
                "integer_above_max_value",
            )
    for name, (lo, hi) in NUMBER_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not is_number(value):
            raise invalid_type(name, "a decimal", value)
        if not lo <= value <= hi:
            side, limit, bound, sign = (
                ("below", "min", lo, ">=") if value < lo else ("above", "max", hi, "<=")
            )
            raise OpenAIError(
                400,
                f"Invalid '{name}': decimal {side} {limit}imum value. Expected a value {sign} {bound:g}, "
                f"but got {value:g} instead.",
                name,
                f"decimal_{side}_{limit}_value",
            )
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise invalid_type("stream_options", "an object", options)
        if not body.get("stream"):
            raise OpenAIError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
            )
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise invalid_type("stream_options.include_usage", "a boolean", usage)


def check_messages(messages: Any) -> None:
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise OpenAIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid_type(where, "an object", message)
        role = message.get("role")
        if role is None:
            raise missing(f"{where}.role")
        if not isinstance(role, str):
            raise invalid_type(f"{where}.role", "a string", role)
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            raise OpenAIError(
                400,
                f"Invalid value: '{role[:40]}'. Supported values are: {supported}.",
                f"{where}.role",
                "invalid_value",
            )
        content = message.get("content")
        if content is None and role != "assistant":
            raise missing(f"{where}.content")
        if content is not None and not (
            isinstance(content, str)
            or (isinstance(content, list) and all(isinstance(part, dict) for part in content))
        ):
            raise invalid_type(f"{where}.content", "one of a string or array of objects", content)


def check_prompt(prompt: Any) -> None:
    if prompt is None:
        raise missing("prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt) or all(is_int(p) for p in prompt):
            return
        if all(isinstance(p, list) and p and all(is_int(t) for t in p) for p in prompt):
            return
    raise invalid_type(
        "prompt", "one of a string, array of strings, array of integers or array of arrays", prompt
    )


def check_openai(dialect: Dialect, body: dict[str, Any]) -> None:
    """An OpenAI-compatible request, checked as the OpenAI API checks it."""
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str) or not model:
        raise invalid_type("model", "a non-empty string", model)
    if dialect == "openai-chat":
        check_messages(body.get("messages"))
    else:
        check_prompt(body.get("prompt"))
    check_sampling(body)


def check_livepeer(body: dict[str, Any]) -> None:
    """The gateway's `/llm` check is stricter than its spec; then its Go decoder and the runner's limits."""
    messages = body.get("messages")
    if (
        not all(k in body for k in ("model", "stream", "max_tokens"))
        or not isinstance(messages, list)
        or not messages
    ):
        raise ApiError(400, "missing required fields")
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise ApiError(400, "messages: each message needs a string role and content")
    if not isinstance(body["model"], str):
        raise ApiError(400, "model: must be a string")
    if not isinstance(body["stream"], bool):
        raise ApiError(400, "stream: must be a boolean")
    for name in ("max_tokens", "top_k"):
        if name in body and not is_int(body[name]):
            raise ApiError(400, f"{name}: must be an integer")
    for name in ("temperature", "top_p"):
        if name in body and not is_number(body[name]):
            raise ApiError(400, f"{name}: must be a number")
    if not 1 <= body["max_tokens"] <= MAX_TOKENS:
        raise ApiError(400, f"max_tokens: must be between 1 and {MAX_TOKENS}, got {body['max_tokens']}")
    temperature = body.get("temperature", 0.7)
    if not 0 <= temperature <= 2:
        raise ApiError(400, f"temperature: must be between 0 and 2, got {temperature:g}")
    top_p = body.get("top_p", 1.0)
    if not 0 < top_p <= 1:
        raise ApiError(400, f"top_p: must be in (0, 1], got {top_p:g}")
    top_k = body.get("top_k", -1)
    if top_k != -1 and not 1 <= top_k <= 1_000_000:
        raise ApiError(400, f"top_k: must be -1 (off) or at least 1, got {top_k}")


def check_request(dialect: Dialect, body: dict[str, Any]) -> None:
    if dialect == "livepeer":
        check_livepeer(body)
    else:
        check_openai(dialect, body)


def register_llm(
    app: FastAPI, state: TargetState, limit: int, guarded: Guard[Any], gateway: Gateway | None = None
) -> None:
    """The LLM routes. With a gateway, `/llm` (not the OpenAI-compatible routes, which no go-livepeer
    gateway serves) is admitted by an emulated orchestrator first, which it holds to the stream's end."""

    async def serve(request: Request, dialect: Dialect, knobs_name: str) -> Any:
        try:
            require_content_type(request, "application/json")
            body = json_object(await read_body(request, json_limit(limit)))
            check_request(dialect, body)
        except ApiError as exc:
            if dialect == "livepeer" or isinstance(exc, OpenAIError):
                raise
            raise OpenAIError(exc.status, exc.message) from None  # the OpenAI shape on its routes
        knobs = state.settings.for_capability(knobs_name)
        state.requests[knobs_name] = state.requests.get(knobs_name, 0) + 1
        model = str(body.get("model") or "meta-llama/llama-3.1-8B-Instruct")
        completion = Completion(
            dialect, model, prompt_tokens(body), tokens_for(knobs, body.get("max_tokens"))
        )
        stack = AsyncExitStack()
        try:
            if gateway is not None and dialect == "livepeer":
                await stack.enter_async_context(gateway.job("llm", model))
            if knobs.gpu:
                await stack.enter_async_context(state.gpu.slot())  # 503 here, before any byte is sent
            state.maybe_fail(
                knobs_name
            )  # the time an LLM takes is ttft_ms and token_delay_ms, not service_time
        except BaseException as exc:
            # The exception goes to the contexts entered so far (the gateway records the job's outcome).
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if not body.get("stream"):
            try:
                await asyncio.sleep(
                    knobs.ttft_ms / 1000 + knobs.token_delay_ms * (completion.total - 1) / 1000
                )
            finally:
                await stack.aclose()
            return JSONResponse(completion.whole())
        options = body.get("stream_options")  # an object when given: check_openai saw to it
        include_usage = (
            dialect != "livepeer" and isinstance(options, dict) and bool(options.get("include_usage"))
        )
        done = knobs.sse_done if dialect == "livepeer" else True
        fault = (
            "error"
            if state.chance(knobs.stream_error_rate)
            else "truncate"
            if state.chance(knobs.truncate_rate)
            else None
        )
        return StreamingResponse(
            stream(completion, knobs, stack, done, include_usage, fault),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    async def stream(
        completion: Completion,
        knobs: CapabilitySettings,
        stack: AsyncExitStack,
        done: bool,
        include_usage: bool,
        fault: str | None,
    ) -> AsyncIterator[bytes]:
        try:
            await asyncio.sleep(knobs.ttft_ms / 1000)
            half = max(completion.total // 2, 1)
            for index in range(completion.total):
                if index:
                    await asyncio.sleep(knobs.token_delay_ms / 1000)
                if fault is not None and index == half:
                    if fault == "error":
                        yield sse({"error": "CUDA out of memory (simulated)"})
                    return  # a truncated stream just ends, with no finish_reason
                yield sse(completion.chunk(index + 1, completion.token(index), None))
            yield sse(completion.chunk(completion.total, "", "stop"))
            if include_usage:
                yield sse(
                    {
                        "id": completion.id,
                        "object": "chat.completion.chunk",
                        "created": completion.created,
                        "model": completion.model,
                        "choices": [],
                        "usage": completion.usage(completion.total),
                    }
                )
            if done:
                yield sse("[DONE]")
        finally:
            await stack.aclose()

    @guarded("/llm")
    async def llm(request: Request) -> Any:
        return await serve(request, "livepeer", "llm")

    @guarded("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await serve(request, "openai-chat", "openai")

    @guarded("/v1/completions")
    async def completions(request: Request) -> Any:
        return await serve(request, "openai-completions", "openai")
