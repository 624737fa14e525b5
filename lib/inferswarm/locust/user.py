"""One Locust user class per configured capability: a thin shell over `CapabilityClient`.

`build_user_classes` makes a subclass per capability, named exactly like the capability, so
`locust ... text-to-image` and the web UI's class picker select it. Pacing comes from the load kind's
pacer (`inferswarm.load`), one per user; a user whose pacer says it is done stops itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser, tag, task
from locust.env import Environment
from locust.exception import StopUser

from inferswarm.config import RunConfig
from inferswarm.load import LoadKind, Pacer
from inferswarm.locust.arrivals import IDLE_S, ArrivalSchedule, Schedules
from inferswarm.locust.client import DEFAULT_MAX_BODY_BYTES, CapabilityClient
from inferswarm.locust.outcome import slots_skipped
from inferswarm.protocols import CapabilityBase, PreparedRequest, Protocol, protocol_for


class CapabilityUser(FastHttpUser):
    """Sends one capability's request in a loop; abstract until bound to a capability."""

    abstract = True
    capability: ClassVar[CapabilityBase]
    protocol: ClassVar[Protocol[Any]]
    prepared: ClassVar[PreparedRequest]
    load: ClassVar[LoadKind]
    request_timeout_s: ClassVar[float] = 60.0
    max_response_bytes: ClassVar[int] = DEFAULT_MAX_BODY_BYTES
    secret_values: ClassVar[tuple[str, ...]] = ()
    """The resolved `secret_headers` values: masked in failure messages (a server may echo them)."""
    tracks_slots: ClassVar[bool] = False
    schedule: ClassVar[ArrivalSchedule | None] = None
    """Open-loop load: the process's shared schedule this capability's users take send times from."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.pacer: Pacer = self.load.pacer(self.capability.name)
        self.capability_client = CapabilityClient(
            self.client,
            environment,
            self.capability,
            self.protocol,
            self.prepared,
            self.request_timeout_s,
            self.client.base_url or "",
            max_body_bytes=self.max_response_bytes,
            secrets=self.secret_values,
        )

    def on_start(self) -> None:
        self.pacer.start(time.time())

    def send(self) -> bool:
        """Send once (open loop: at the schedule's next send time); True when it counted as a success."""
        if self.schedule is not None:
            due = self.schedule.claim()
            if due is None:  # no rate yet (a worker before its master's first share) or any more
                gevent.sleep(IDLE_S)
                return False
            return self.capability_client.send(None, intended_s=due)
        return self.capability_client.send(self.pacer.slot if self.tracks_slots else None)

    def wait_time(self) -> float:
        wait = self.pacer.next_wait(time.time())
        if wait.skipped:
            slots_skipped(self.environment).fire(name=self.capability.name, slots=wait.skipped)
        if wait.stop:
            raise StopUser()
        return wait.seconds


def _make_task(capability: CapabilityBase) -> Any:
    def call(self: CapabilityUser) -> None:
        self.send()

    call.__name__ = f"call_{capability.name}"
    decorated = task(call)
    return tag(*capability.tags)(decorated) if capability.tags else decorated


def build_user_classes(
    config: RunConfig, secret_headers: Mapping[str, str], schedules: Schedules | None = None
) -> list[type[CapabilityUser]]:
    """Build every capability's user class. Requests are prepared here, once, so assets are read once.

    A load kind that fixes users per capability (cycle mode) gets a class only for those capabilities,
    each with its fixed number of users. An open-loop load kind's users take send times from `schedules`.
    """
    load = config.load
    fixed = load.users_per_capability(config.load_context())
    classes: list[type[CapabilityUser]] = []
    for capability in config.capabilities:
        if fixed is not None and capability.name not in fixed:
            continue
        protocol = protocol_for(capability.kind)
        prepared = protocol.prepare(capability, config.assets_path)
        headers = {**config.target.headers, **prepared.headers, **secret_headers}  # later ones win
        timeout = capability.request_timeout_s or config.target.request_timeout_s
        attrs: dict[str, Any] = {
            "abstract": False,
            "__module__": __name__,
            "__doc__": f"{capability.kind} {prepared.method} {prepared.path}",
            "host": config.target.base_url,
            "weight": capability.weight,
            "capability": capability,
            "protocol": protocol,
            "prepared": dataclasses.replace(prepared, headers=headers),
            "load": load,
            "tracks_slots": load.records_slots,
            "request_timeout_s": timeout,
            "max_response_bytes": config.target.max_response_bytes,
            "secret_values": tuple(secret_headers.values()),
            "network_timeout": timeout,
            "connection_timeout": config.target.connect_timeout_s,
            "tasks": [_make_task(capability)],
            "schedule": schedules.by_capability[capability.name] if schedules is not None else None,
        }
        if fixed is not None:
            attrs["fixed_count"] = fixed[capability.name]
        classes.append(type(capability.name, (CapabilityUser,), attrs))
    return classes
