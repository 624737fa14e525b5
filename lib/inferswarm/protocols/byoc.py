"""`kind: byoc`: Livepeer "bring your own container" capabilities through a gateway.

`POST /process/request/<worker path>` with a `Livepeer` header: standard base64 of the JSON job
description `{"capability", "request", "parameters", "timeout_seconds"}`, where `request` and
`parameters` are themselves JSON *strings* and `timeout_seconds` must be non-zero. The capability is
chosen by the header, not by the path; the body goes to the worker unchanged.

The gateway answers errors as text/plain. When every orchestrator failed (5xx, including "No capacity
available for capability", or a network error) it writes nothing: an empty 200, which is a failure.
A 400 "No orchestrators found for capability" means no orchestrator offers it: capacity, not a bad request.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from inferswarm.protocols.base import (
    CapabilityBase,
    FailureCategory,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    check_body,
    classify_exception,
    classify_http_error,
    register_protocol,
)
from inferswarm.strict import MAX_TIMEOUT_S

HEADER = "Livepeer"
# 400 texts of the gateway that mean "nobody can serve this capability right now".
NO_ORCHESTRATOR_TEXTS = ("No orchestrators found", "Unable to find orchestrators")


class ByocCapability(CapabilityBase):
    kind: Literal["byoc"]
    capability: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    """The registered capability name (e.g. `agent-net`), sent in the Livepeer header."""
    path: str = Field(pattern=r"^/process/request/[^\s]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    """The JSON body handed to the worker."""
    request: dict[str, Any] = Field(default_factory=dict)
    """The job's `request` object (sent as a JSON string)."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The job's `parameters` object (sent as a JSON string), e.g. `{"orchestrators": {"exclude": [...]}}`."""
    timeout_seconds: int = Field(default=30, ge=1, le=int(MAX_TIMEOUT_S))
    orch_search_timeout: str | None = Field(default=None, pattern=r"^[0-9.]+(ms|s|m)$")
    """`Livepeer-Orch-Search-Timeout` (a Go duration such as `1s`)."""


def job_header(capability: ByocCapability) -> str:
    """The `Livepeer` header's value."""
    job = {
        "capability": capability.capability,
        "request": json.dumps(capability.request, separators=(",", ":")),
        "parameters": json.dumps(capability.parameters, separators=(",", ":")),
        "timeout_seconds": capability.timeout_seconds,
    }
    return base64.b64encode(json.dumps(job, separators=(",", ":")).encode()).decode("ascii")


def decode_job_header(value: str) -> dict[str, Any]:
    """The inverse of `job_header` (with the inner strings parsed), for tests and the reference target."""
    job = json.loads(base64.b64decode(value, validate=True))
    if not isinstance(job, dict):
        raise ValueError("job is not a JSON object")
    return job


@register_protocol
class ByocProtocol(Protocol[ByocCapability]):
    model = ByocCapability

    def prepare(self, capability: ByocCapability, assets_dir: Path) -> PreparedRequest:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            HEADER: job_header(capability),
        }
        if capability.orch_search_timeout:
            headers["Livepeer-Orch-Search-Timeout"] = capability.orch_search_timeout
        headers.update(capability.headers)
        body = json.dumps(capability.params, separators=(",", ":")).encode()
        return PreparedRequest("POST", capability.path, headers, body)

    def classify(self, capability: ByocCapability, response: ResponseView) -> RequestFailure | None:
        if response.error is not None and response.status == 0:
            return classify_exception(response.error)
        if response.status == 200 and not response.body.strip():
            return RequestFailure(FailureCategory.CAPACITY, "empty 200: every orchestrator failed")
        if response.status == 400 and any(t.encode() in response.body for t in NO_ORCHESTRATOR_TEXTS):
            return RequestFailure(FailureCategory.CAPACITY, "HTTP 400: no orchestrator for the capability")
        failure = classify_http_error(response, capability.success.status)
        if failure is not None:
            return failure
        return check_body(response.body, capability.success)

    def describe(self, capability: ByocCapability, assets_dir: Path) -> dict[str, Any]:
        return {"byoc_capability": capability.capability}
