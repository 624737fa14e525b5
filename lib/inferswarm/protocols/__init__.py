"""Capability kinds, keyed by the capability's `kind`.

Adding a kind is one new module: a capability model (a `CapabilityBase` subclass with a `kind` Literal)
and a `Protocol[ThatModel]` subclass decorated with `@register_protocol`, imported below so it registers.
The config's union of capability models is built from this registry. See docs/architecture.md.
"""

from __future__ import annotations

from inferswarm.protocols import (  # noqa: F401  (register)
    byoc,
    groundlight,
    json_body,
    livepeer,
    multipart,
    openai,
    tensor,
)
from inferswarm.protocols.base import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    Pending,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    SuccessCriteria,
    Verdict,
    classify,
    protocol_for,
    protocols,
    register_protocol,
    response_view,
)
from inferswarm.protocols.byoc import ByocCapability
from inferswarm.protocols.groundlight import GroundlightCapability
from inferswarm.protocols.json_body import JsonCapability
from inferswarm.protocols.livepeer import LivepeerCapability
from inferswarm.protocols.multipart import MultipartCapability
from inferswarm.protocols.openai import OpenAICapability
from inferswarm.protocols.tensor import TensorCapability

__all__ = [
    "PENDING",
    "ByocCapability",
    "CapabilityBase",
    "FailureCategory",
    "GroundlightCapability",
    "JsonCapability",
    "LivepeerCapability",
    "MultipartCapability",
    "OpenAICapability",
    "Pending",
    "Poll",
    "PreparedRequest",
    "Protocol",
    "RequestFailure",
    "ResponseView",
    "SuccessCriteria",
    "TensorCapability",
    "Verdict",
    "classify",
    "protocol_for",
    "protocols",
    "register_protocol",
    "response_view",
]
