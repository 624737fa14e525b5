"""One Locust user class per configured capability.

`CapabilityUser` is a thin shell over FastHttpUser: it sends the capability's prepared request under a
fixed stats name (the capability's name) and lets the capability's protocol classify the response.
`build_user_classes` makes a subclass per capability, named exactly like the capability, so
`locust ... text-to-image` and the web UI's class picker select it by that name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import gevent
from locust import FastHttpUser, constant, constant_throughput, tag, task

from inferswarm.config import RunConfig
from inferswarm.protocols import PreparedRequest, Protocol, ResponseView, protocol_for
from inferswarm.protocols.base import CapabilityBase
from inferswarm.runstats import status_counts


def response_view(response: Any) -> ResponseView:
    """Adapt a FastHttpSession response (or its error stand-in) for classification."""
    error = getattr(response, "error", None)
    status = int(getattr(response, "status_code", 0) or 0)
    if status == 0:
        return ResponseView(status=0, error=error or ConnectionError("no response"))
    headers = getattr(response, "headers", None) or {}
    body = response.content or b""
    return ResponseView(status=status, content_type=headers.get("content-type", ""), body=body)


class CapabilityUser(FastHttpUser):
    """Sends one capability's request in a loop; abstract until bound to a capability."""

    abstract = True
    capability: ClassVar[CapabilityBase]
    protocol: ClassVar[Protocol]
    prepared: ClassVar[PreparedRequest]
    request_timeout_s: ClassVar[float] = 60.0

    def send(self) -> None:
        prepared = self.prepared
        # A whole-request deadline: network_timeout alone only bounds each socket read. The session
        # catches the TimeoutError and reports it like any transport failure.
        with gevent.Timeout(
            self.request_timeout_s, TimeoutError(f"no response in {self.request_timeout_s}s")
        ):
            response = self.client.request(
                prepared.method,
                prepared.path,
                name=self.capability.name,
                data=cast(Any, prepared.body),  # the session sends bytes as they are
                headers=dict(prepared.headers),
                catch_response=True,
            )
        with response:
            view = response_view(response)
            status_counts[(self.capability.name, view.status)] += 1
            failure = self.protocol.classify(self.capability, view)
            if failure is None:
                response.success()
            else:
                response.failure(failure)


def _make_task(capability: CapabilityBase) -> Any:
    def call(self: CapabilityUser) -> None:
        self.send()

    call.__name__ = f"call_{capability.name}"
    decorated = task(call)
    return tag(*capability.tags)(decorated) if capability.tags else decorated


def build_user_classes(config: RunConfig, secret_headers: Mapping[str, str]) -> list[type[CapabilityUser]]:
    """Build every capability's user class. Requests are prepared here, once, so assets are read once."""
    wait_time = (
        constant_throughput(config.load.per_user_rps) if config.load.per_user_rps is not None else constant(0)
    )
    classes: list[type[CapabilityUser]] = []
    for capability in config.capabilities:
        protocol = protocol_for(capability.kind)
        prepared = protocol.prepare(capability, config.assets_path)
        headers = {**config.target.headers, **prepared.headers, **secret_headers}
        timeout = capability.request_timeout_s or config.target.request_timeout_s
        attrs: dict[str, Any] = {
            "abstract": False,
            "__module__": __name__,
            "__doc__": f"{capability.kind} {capability.method} {capability.path}",
            "host": config.target.base_url,
            "weight": capability.weight,
            "wait_time": wait_time,
            "capability": capability,
            "protocol": protocol,
            "prepared": PreparedRequest(prepared.method, prepared.path, headers, prepared.body),
            "request_timeout_s": timeout,
            "network_timeout": timeout,
            "connection_timeout": config.target.connect_timeout_s,
            "tasks": [_make_task(capability)],
        }
        classes.append(type(capability.name, (CapabilityUser,), attrs))
    return classes
