"""Reading one streamed LLM response: when each token arrived, how it ended, how many tokens it had.

Timestamps are recorded once, as events arrive (`perf_counter` seconds); every metric is derived from
them afterwards, with its unit in its name. Three dialects share the logic:

- `livepeer`: the AI gateway's `/llm`. Chunks carry `choices[0].delta.content`, `finish_reason` is ""
  until the last chunk, `usage` is cumulative. The gateway sends no `[DONE]`; the runner does.
- `openai-chat` / `openai-completions`: `/v1/chat/completions` (`delta.content`) and `/v1/completions`
  (`text`); `finish_reason` is null until the end; `usage` comes in a last chunk with no choices when the
  client asks for it (`stream_options.include_usage`); the stream ends with `[DONE]`.

A stream is complete at a chunk with a non-empty `finish_reason` or at `[DONE]`; a `data: {"error": ...}`
event inside a 200 stream is a failure; a body that ends before either is a truncated stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Dialect = Literal["livepeer", "openai-chat", "openai-completions"]
DONE = "[DONE]"
MAX_ERROR_CHARS = 120


@dataclass
class StreamRecord:
    """What happened during one streamed response."""

    started_s: float
    """perf_counter when the request was sent."""
    dialect: Dialect
    token_times_s: list[float] = field(default_factory=list)
    """perf_counter of every chunk that carried non-empty content."""
    finished_s: float | None = None
    """When the finish signal (finish_reason or [DONE]) arrived."""
    ended_s: float | None = None
    """When the body ended."""
    finish_reason: str | None = None
    saw_done: bool = False
    usage_tokens: int | None = None
    error: str | None = None
    malformed: str | None = None
    events: int = 0

    # -- feeding -------------------------------------------------------------------------------------
    def on_event(self, data: str, now_s: float) -> None:
        self.events += 1
        if self.complete or self.error is not None:
            if data.strip() == DONE:
                self.saw_done = True
            elif self.complete:
                self._usage_only(data)  # OpenAI's usage chunk comes after the finish chunk
            return
        if data.strip() == DONE:
            self.saw_done = True
            self.finished_s = now_s
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.malformed = "event data is not JSON"
            return
        if not isinstance(chunk, dict):
            self.malformed = "event data is not a JSON object"
            return
        if "error" in chunk:
            self.error = _error_text(chunk["error"])
            return
        self._usage(chunk)
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return
        choice = choices[0] if isinstance(choices[0], dict) else {}
        if _content(choice, self.dialect):
            self.token_times_s.append(now_s)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            self.finished_s = now_s

    def on_end(self, now_s: float) -> None:
        self.ended_s = now_s

    def _usage(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            tokens = usage.get("completion_tokens")
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                self.usage_tokens = tokens

    def _usage_only(self, data: str) -> None:
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        if isinstance(chunk, dict):
            if "error" in chunk:
                self.error = _error_text(chunk["error"])
            else:
                self._usage(chunk)

    # -- outcome -------------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.finished_s is not None

    def problem(self) -> str | None:
        """Why this stream is a failure, or None."""
        if self.error is not None:
            return f"error in stream: {self.error}"
        if self.malformed is not None:
            return self.malformed
        if not self.complete:
            return "stream ended before finish_reason or [DONE]"
        if not self.token_times_s:
            return "stream finished without any content"
        return None

    # -- metrics (valid for a complete stream with content) -------------------------------------------
    @property
    def end_s(self) -> float:
        return self.ended_s if self.ended_s is not None else (self.finished_s or self.started_s)

    @property
    def ttft_ms(self) -> float | None:
        if not self.token_times_s:
            return None
        return (self.token_times_s[0] - self.started_s) * 1000.0

    @property
    def itl_ms(self) -> float | None:
        """Mean gap between consecutive content chunks (needs two)."""
        times = self.token_times_s
        if len(times) < 2:
            return None
        return (times[-1] - times[0]) * 1000.0 / (len(times) - 1)

    @property
    def e2e_ms(self) -> float:
        return (self.end_s - self.started_s) * 1000.0

    @property
    def token_source(self) -> Literal["usage", "chunks"]:
        return "usage" if self.usage_tokens is not None else "chunks"

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else len(self.token_times_s)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens over the whole request (send to last byte)."""
        seconds = self.end_s - self.started_s
        return self.output_tokens / seconds if seconds > 0 else None


def _content(choice: dict[str, Any], dialect: Dialect) -> bool:
    if dialect == "openai-completions":
        text = choice.get("text")
        return isinstance(text, str) and text != ""
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return isinstance(content, str) and content != ""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:MAX_ERROR_CHARS]
