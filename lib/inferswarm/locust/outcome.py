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

_SLOTS_SKIPPED = "inferswarm_slots_skipped"


def slots_skipped(environment: Environment) -> EventHook:
    """The event a user fires when it skips slots it overran: `fire(name=str, slots=tuple[int, ...])`."""
    events: Any = environment.events
    hook = getattr(events, _SLOTS_SKIPPED, None)
    if hook is None:
        hook = EventHook()
        setattr(events, _SLOTS_SKIPPED, hook)
    return hook
