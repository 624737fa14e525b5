"""What the client tells listeners about each request, beyond Locust's own request event fields.

The client passes these keys in the request event's `context`; listeners read them with `.get`, so
requests fired by anything else (a plain Locust user in the same run) are simply not counted.
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment
from locust.event import EventHook

STATUS = "inferswarm_status"
"""The HTTP status the request ended with (0: no HTTP response; for a polled job, the last poll's)."""
SLOT = "inferswarm_slot"
"""The request's slot in its user's schedule (the cycle number in cycle mode); absent otherwise."""
OBSERVATIONS = "inferswarm_observations"
"""The protocol's observations of the answer, `[(metric, value), ...]` (`Protocol.observations`, e.g.
`("edge_ms", 12.5)` for an answer from a Groundlight edge); absent when there were none."""

RequestRow = tuple[
    str,
    float,
    float,
    float | None,
    float,
    int,
    bool,
    str,
    int,
    float | None,
    float | None,
    int | None,
    int,
    float | None,
]
"""One request as the client records it for the request log: the columns of
`inferswarm.rundir.REQUEST_COLUMN_TYPES` but `node` (the same for a whole process), in their order:
capability, intended_epoch_s, send_epoch_s, first_byte_ms, response_ms, status, ok, category,
bytes_received, ttft_ms, itl_ms, output_tokens, bytes_sent, server_ms. A plain tuple: it is built on the hot
path."""

_SLOTS_SKIPPED = "inferswarm_slots_skipped"
_REQUEST_ROWS = "inferswarm_request_rows"


def slots_skipped(environment: Environment) -> EventHook:
    """The event a user fires when it skips slots it overran: `fire(name=str, slots=tuple[int, ...])`."""
    events: Any = environment.events
    hook = getattr(events, _SLOTS_SKIPPED, None)
    if hook is None:
        hook = EventHook()
        setattr(events, _SLOTS_SKIPPED, hook)
    return hook


def request_rows(environment: Environment) -> list[RequestRow] | None:
    """The list the request log (`inferswarm.locust.listeners.request_log`) collects this process's rows
    in, if the log is on. The client appends to it; the log empties it in place, never replaces it."""
    rows: list[RequestRow] | None = getattr(environment, _REQUEST_ROWS, None)
    return rows


def keep_request_rows(environment: Environment, rows: list[RequestRow]) -> None:
    """Hand the client the list to append its rows to (called by the request log when it is set up)."""
    setattr(environment, _REQUEST_ROWS, rows)
