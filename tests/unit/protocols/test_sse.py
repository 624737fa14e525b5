"""The SSE parser on the shapes real servers send, fed in every possible split."""

from __future__ import annotations

import pytest

from inferswarm.protocols.sse import Event, SseParser

GATEWAY = b'data: {"a": 1}\n\ndata: {"a": 2}\n\n'


def feed_in_pieces(data: bytes, size: int) -> tuple[list[Event], SseParser]:
    parser = SseParser()
    events: list[Event] = []
    for start in range(0, len(data), size):
        events += parser.feed(data[start : start + size])
    events += parser.close()
    return events, parser


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_events_survive_any_split(size: int) -> None:
    events, parser = feed_in_pieces(GATEWAY, size)
    assert [e.data for e in events] == ['{"a": 1}', '{"a": 2}'] and not parser.pending


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    data = newline.join([b"data: one", b"", b"data: two", b"", b""])
    for size in (1, 4, len(data)):
        events, _ = feed_in_pieces(data, size)
        assert [e.data for e in events] == ["one", "two"]


def test_multiline_data_comments_event_names_and_ids() -> None:
    data = (
        b": keep-alive\n\nevent: insufficient balance\nid: 7\n"
        b'data: {"balance": 0}\n\ndata:line1\ndata: line2\n\n'
    )
    parser = SseParser()
    events = parser.feed(data)
    assert events == [
        Event('{"balance": 0}', "insufficient balance", "7"),
        Event("line1\nline2", "message", "7"),  # the last event id persists, as the spec says
    ]
    assert parser.comments == 1


def test_utf8_split_inside_a_character() -> None:
    data = "data: héllo ✓\n\n".encode()
    events, _ = feed_in_pieces(data, 1)
    assert events[0].data == "héllo ✓"


def test_a_stream_cut_inside_an_event_is_pending() -> None:
    parser = SseParser()
    assert parser.feed(b'data: {"a": 1}\n\ndata: {"a"') == [Event('{"a": 1}')]
    assert parser.pending
    cut = SseParser()
    cut.feed(b'data: {"a": 1}\n')  # the data line is complete, the blank line never came
    assert cut.pending and cut.close() == []


def test_blank_lines_without_data_dispatch_nothing() -> None:
    parser = SseParser()
    assert parser.feed(b"\n\n\nretry: 10\n\n") == [] and not parser.pending
