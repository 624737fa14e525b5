"""`kind: json`: a JSON document built from `params`, sent with Content-Type application/json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from inferswarm.protocols.base import CapabilityBase, PreparedRequest, Protocol, register_protocol


class JsonCapability(CapabilityBase):
    kind: Literal["json"]
    params: dict[str, Any] = Field(default_factory=dict)
    content_type: str = "application/json"


@register_protocol
class JsonProtocol(Protocol[JsonCapability]):
    model = JsonCapability

    def prepare(self, capability: JsonCapability, assets_dir: Path) -> PreparedRequest:
        headers = {"Content-Type": capability.content_type, "Accept": "application/json"}
        headers.update(capability.headers)
        body = None
        if capability.method != "GET":
            body = json.dumps(capability.params, separators=(",", ":")).encode()
        return PreparedRequest(capability.method, capability.path, headers, body)
