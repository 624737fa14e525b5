"""Wire protocols, keyed by the capability's `kind`.

Adding a protocol is one new module (a capability model with a `kind` Literal and a `Protocol`
subclass) plus one entry in `Capability` and `_PROTOCOLS` below.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from inferswarm.protocols.base import (
    AsyncJob,
    CapabilityBase,
    FailureCategory,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    SuccessCriteria,
    classify,
)
from inferswarm.protocols.byoc import ByocCapability, ByocProtocol
from inferswarm.protocols.json_body import JsonCapability, JsonProtocol
from inferswarm.protocols.livepeer import LivepeerCapability, LivepeerProtocol
from inferswarm.protocols.multipart import MultipartCapability, MultipartProtocol
from inferswarm.protocols.openai import OpenAICapability, OpenAIProtocol

Capability = Annotated[
    JsonCapability | MultipartCapability | LivepeerCapability | OpenAICapability | ByocCapability,
    Field(discriminator="kind"),
]

_PROTOCOLS: dict[str, Protocol] = {
    p.kind: p
    for p in (JsonProtocol(), MultipartProtocol(), LivepeerProtocol(), OpenAIProtocol(), ByocProtocol())
}

KINDS: tuple[str, ...] = tuple(sorted(_PROTOCOLS))


def protocol_for(kind: str) -> Protocol:
    try:
        return _PROTOCOLS[kind]
    except KeyError:
        raise KeyError(f"unknown protocol kind {kind!r}; valid kinds: {', '.join(KINDS)}") from None


__all__ = [
    "KINDS",
    "AsyncJob",
    "Capability",
    "CapabilityBase",
    "FailureCategory",
    "PreparedRequest",
    "Protocol",
    "RequestFailure",
    "ResponseView",
    "SuccessCriteria",
    "classify",
    "protocol_for",
]
