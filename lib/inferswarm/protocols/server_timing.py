"""The server's own compute time, read off an answer: what is left of the response time is overhead
(network, queueing in front of the server, (de)serialization outside its clock).

Three places a server says it:
- the standard `Server-Timing` header (W3C): `compute;dur=12.3, db;dur=4;desc="..."`. With `metric` set,
  that metric's `dur`; without, the metric named `compute`, else the only metric that has a `dur`. Never a
  sum: servers nest metrics (`total` next to its parts), so a sum would count time twice.
- a header holding a JSON object (seed 003's `X-Genie-Server-Timing: {"deserialize_ms", "execute_ms",
  "serialize_ms", "total_ms"}`): the number under `key` (default `total_ms`).
- a field of the JSON answer, by dotted path (`timings.infer_ms`, list items by index).

Every reader returns milliseconds, or None when the value is absent, garbage, negative or not finite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import model_validator

from inferswarm.protocols.base import value_at
from inferswarm.strict import StrictModel

DEFAULT_METRIC = "compute"
DEFAULT_KEY = "total_ms"
MAX_HEADER_CHARS = 8192
"""Longer header values are not parsed (a server-timing value is a handful of metrics)."""


def _ms(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _split(text: str, separator: str) -> list[str]:
    """`text` split at `separator`, except inside double-quoted strings (a `desc` may hold commas)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def server_timing_metrics(value: str) -> dict[str, float]:
    """Each metric of a `Server-Timing` value that has a valid `dur`, by name (the first of a repeated
    name wins, as browsers show it)."""
    metrics: dict[str, float] = {}
    if len(value) > MAX_HEADER_CHARS:
        return metrics
    for metric in _split(value, ","):
        name, *params = _split(metric, ";")
        name = name.strip()
        if not name or name in metrics:
            continue
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "dur":
                ms = _ms(raw.strip().strip('"'))
                if ms is not None:
                    metrics[name] = ms
                break
    return metrics


def from_server_timing(value: str, metric: str | None = None) -> float | None:
    """The chosen metric's duration in a `Server-Timing` value (see the module's doc for the default)."""
    metrics = server_timing_metrics(value)
    if metric is not None:
        return metrics.get(metric)
    if DEFAULT_METRIC in metrics:
        return metrics[DEFAULT_METRIC]
    return next(iter(metrics.values())) if len(metrics) == 1 else None


def from_json_header(value: str, key: str = DEFAULT_KEY) -> float | None:
    """The number under `key` in a header holding a JSON object."""
    if len(value) > MAX_HEADER_CHARS:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return _ms(document.get(key)) if isinstance(document, dict) else None


def from_field(document: Any, dotted: str) -> float | None:
    """The number at a dotted path in a parsed JSON answer."""
    found, node = value_at(document, dotted)
    return _ms(node) if found else None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, its name matched in any case."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class ServerTimingSpec(StrictModel):
    """Where the server says its own time: exactly one of `header` (a Server-Timing-style header, with
    `metric`), `json_header` (a header holding JSON, with `key`) or `field` (a dotted path in the JSON
    answer)."""

    header: str | None = None
    metric: str | None = None
    json_header: str | None = None
    key: str | None = None
    field: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> ServerTimingSpec:
        places = [p for p in ("header", "json_header", "field") if getattr(self, p) is not None]
        if len(places) != 1:
            raise ValueError(
                "server_timing needs exactly one of header, json_header or field"
                + (f" (got {', '.join(places)})" if places else "")
            )
        if self.metric is not None and self.header is None:
            raise ValueError("server_timing.metric goes with header (a Server-Timing header)")
        if self.key is not None and self.json_header is None:
            raise ValueError("server_timing.key goes with json_header")
        for name in (self.header, self.json_header):
            if name is not None and not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"server_timing: {name!r} is not a header name")
        return self

    @property
    def needs_document(self) -> bool:
        return self.field is not None

    def read(self, headers: Mapping[str, str], document: Any = None) -> float | None:
        """The server's time in ms from an answer's headers (or its parsed JSON, for `field`)."""
        if self.header is not None:
            value = header(headers, self.header)
            return None if value is None else from_server_timing(value, self.metric)
        if self.json_header is not None:
            value = header(headers, self.json_header)
            return None if value is None else from_json_header(value, self.key or DEFAULT_KEY)
        assert self.field is not None
        return from_field(document, self.field)
