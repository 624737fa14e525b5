"""Stream outcomes and metrics from recorded timestamps, per dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inferswarm.protocols.llm_stream import StreamRecord


def gw_chunk(text: str, n: int, finish: str = "") -> str:
    return json.dumps(
        {
            "id": "x",
            "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n},
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
        }
    )


def play(record: StreamRecord, events: list[tuple[float, str]], end: float) -> StreamRecord:
    for at, data in events:
        record.on_event(data, at)
    record.on_end(end)
    return record


def test_gateway_stream_without_done_ends_at_finish_reason() -> None:
    # sent at 10.0; first token 0.25 s later, then every 0.05 s; finish chunk with empty content
    events = [(10.25 + 0.05 * i, gw_chunk(f"t{i}", i + 1)) for i in range(5)]
    events.append((10.5, gw_chunk("", 5, "stop")))
    record = play(StreamRecord(10.0, "livepeer"), events, 10.5)
    assert record.problem() is None and record.complete and not record.saw_done
    assert record.ttft_ms == pytest.approx(250.0)
    assert record.itl_ms == pytest.approx(50.0)
    assert record.e2e_ms == pytest.approx(500.0)
    assert record.output_tokens == 5 and record.token_source == "usage"
    assert record.tokens_per_s == pytest.approx(10.0)


def test_runner_stream_with_done_and_chunk_counting() -> None:
    chunk = json.dumps({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]})
    record = play(StreamRecord(0.0, "openai-chat"), [(0.1, chunk), (0.2, chunk), (0.3, "[DONE]")], 0.3)
    assert record.problem() is None and record.saw_done
    assert record.output_tokens == 2 and record.token_source == "chunks"


def test_openai_usage_chunk_after_finish_counts() -> None:
    finish = json.dumps({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    text = json.dumps({"choices": [{"index": 0, "text": "ab", "finish_reason": None}]})
    usage = json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 9, "total_tokens": 10}}
    )
    record = play(
        StreamRecord(0.0, "openai-completions"),
        [(0.1, text), (0.2, finish), (0.25, usage), (0.3, "[DONE]")],
        0.3,
    )
    assert record.problem() is None and record.output_tokens == 9 and record.token_source == "usage"


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (
            [(0.1, gw_chunk("a", 1)), (0.2, json.dumps({"error": "CUDA out of memory"}))],
            "error in stream: CUDA out of memory",
        ),
        ([(0.1, gw_chunk("a", 1)), (0.2, gw_chunk("b", 2))], "stream ended before finish_reason or [DONE]"),
        ([(0.1, "not json")], "event data is not JSON"),
        ([(0.1, gw_chunk("", 0, "stop"))], "stream finished without any content"),
        ([(0.1, json.dumps({"error": {"message": "boom"}}))], "error in stream: boom"),
    ],
)
def test_failures(events: list[tuple[float, Any]], problem: str) -> None:
    assert play(StreamRecord(0.0, "livepeer"), events, 0.3).problem() == problem


def test_single_token_has_no_itl() -> None:
    record = play(
        StreamRecord(0.0, "livepeer"), [(0.1, gw_chunk("a", 1)), (0.2, gw_chunk("", 1, "stop"))], 0.2
    )
    assert record.problem() is None and record.itl_ms is None and record.ttft_ms == pytest.approx(100.0)
