"""An incremental parser for server-sent events (the WHATWG `text/event-stream` format).

Bytes arrive in arbitrary pieces: a line, an event or a UTF-8 character may be split across reads.
Lines end in LF, CRLF or a lone CR; `data:` lines of one event are joined with "\n"; lines starting with
":" are comments (keep-alives); an event is dispatched at a blank line. What is left when the stream
ends without a blank line is kept in `pending`, so a caller can tell a cut-short stream from a clean end.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None


@dataclass
class SseParser:
    _buffer: bytearray = field(default_factory=bytearray)
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None
    _fields_seen: bool = False
    comments: int = 0

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse what `chunk` completes; returns the events dispatched, in order."""
        self._buffer += chunk
        events: list[Event] = []
        start = 0
        buf = self._buffer
        while True:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start)
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr + 1 == len(buf):
                    break  # a CR at the very end may be half of a CRLF: wait for the next byte
                end, nxt = cr, cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            event = self._line(bytes(buf[start:end]).decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = nxt
        del buf[:start]
        return events

    def close(self) -> list[Event]:
        """The stream ended. A final line without its terminator still counts as a line (a lone CR too)."""
        events: list[Event] = []
        if self._buffer:
            tail = bytes(self._buffer).rstrip(b"\r").decode("utf-8", errors="replace")
            self._buffer.clear()
            event = self._line(tail)
            if event is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bool:
        """True when an event has started but was never dispatched (the stream was cut inside it)."""
        return self._fields_seen or bool(self._buffer.strip())

    def _line(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._fields_seen = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields change nothing a load tester measures
        return None

    def _dispatch(self) -> Event | None:
        data, event, event_id = self._data, self._event, self._id
        self._data, self._event, self._fields_seen = [], "", False
        if not data:
            return None
        return Event("\n".join(data), event or "message", event_id)
