"""LLM routes: the gateway's `/llm` and OpenAI-compatible `/v1/chat/completions` and `/v1/completions`.

Streams are server-sent events with a knob for everything a client must handle: time to first token,
per-token delay, `[DONE]` or not (the gateway sends none; the runner and OpenAI servers do), an error
event inside the 200, and a stream cut short. A request holds a GPU slot from its first token to its
last, so concurrent streams queue, and beyond the queue the answer is 503 before the stream starts.
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

from inferswarm.emulator.http import ApiError, Guard, json_object, read_body, require_content_type
from inferswarm.emulator.settings import CapabilitySettings
from inferswarm.emulator.state import TargetState

Dialect = Literal["livepeer", "openai-chat", "openai-completions"]
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive"}


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


def check_request(dialect: Dialect, body: dict[str, Any]) -> None:
    """The gateway's `/llm` check is stricter than its spec; OpenAI servers need a model and input."""
    if dialect == "livepeer":
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
    else:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise ApiError(400, "model: field required")
        if dialect == "openai-chat" and not (isinstance(body.get("messages"), list) and body["messages"]):
            raise ApiError(400, "messages: field required")
        if dialect == "openai-completions" and not isinstance(body.get("prompt"), str | list):
            raise ApiError(400, "prompt: field required")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "stream: must be a boolean")
    if "max_tokens" in body and (
        not isinstance(body["max_tokens"], int) or isinstance(body["max_tokens"], bool)
    ):
        raise ApiError(400, "max_tokens: must be an integer")


def register_llm(app: FastAPI, state: TargetState, limit: int, guarded: Guard[Any]) -> None:
    async def serve(request: Request, dialect: Dialect, knobs_name: str) -> Any:
        require_content_type(request, "application/json")
        body = json_object(await read_body(request, limit))
        check_request(dialect, body)
        knobs = state.settings.for_capability(knobs_name)
        state.requests[knobs_name] = state.requests.get(knobs_name, 0) + 1
        model = str(body.get("model") or "meta-llama/llama-3.1-8B-Instruct")
        completion = Completion(
            dialect, model, prompt_tokens(body), tokens_for(knobs, body.get("max_tokens"))
        )
        stack = AsyncExitStack()
        if knobs.gpu:
            await stack.enter_async_context(state.gpu.slot())  # 503 here, before any byte is sent
        try:
            state.maybe_fail(
                knobs_name
            )  # the time an LLM takes is ttft_ms and token_delay_ms, not service_time
        except BaseException:
            await stack.aclose()
            raise
        if not body.get("stream"):
            try:
                await asyncio.sleep(
                    knobs.ttft_ms / 1000 + knobs.token_delay_ms * (completion.total - 1) / 1000
                )
            finally:
                await stack.aclose()
            return JSONResponse(completion.whole())
        include_usage = dialect != "livepeer" and bool(
            (body.get("stream_options") or {}).get("include_usage")
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
