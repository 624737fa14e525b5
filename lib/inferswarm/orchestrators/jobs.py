"""One test job through the gateway: built and judged by the `livepeer` capability kind.

The request is the one a load test sends (same fields, files, content type), and so is the verdict: a
200 whose body does not match the pipeline's response schema is a failure here too. The round trip is
timed from the send to the end of the body read, under one deadline for the whole job.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from inferswarm.oneshot import Deadline as _Deadline
from inferswarm.oneshot import send as _send
from inferswarm.orchestrators.discovery import Cell
from inferswarm.protocols import LivepeerCapability, ResponseView, protocol_for
from inferswarm.protocols.base import PreparedRequest, RequestFailure
from inferswarm.secrets import Scrubber

MAX_MESSAGE_CHARS = 1000
"""An error's message (the gateway's body) is kept up to this length in the stat."""


@dataclass(frozen=True)
class JobResult:
    cell: Cell
    job: int
    start_epoch_s: float
    round_trip_s: float
    status: int
    ok: bool
    category: str
    error_code: str
    message: str
    bytes_received: int
    body: bytes

    def row(self) -> list[object]:
        """The run directory's job row (rundir.ORCH_JOB_COLUMNS)."""
        c = self.cell
        return [
            c.orchestrator,
            c.service_uri,
            c.pipeline,
            c.model,
            self.job,
            round(self.start_epoch_s, 6),
            round(self.round_trip_s, 6),
            self.status,
            self.ok,
            self.category,
            self.error_code,
            self.message,
            self.bytes_received,
        ]


def run_job(
    cell: Cell,
    job: int,
    capability: LivepeerCapability,
    request: PreparedRequest,
    url: str,
    timeout_s: float,
    scrub: Scrubber,
) -> JobResult:
    """Send `request` to `url` and judge the answer as the `livepeer` kind does."""
    protocol = protocol_for("livepeer")
    start_epoch = time.time()
    started = time.perf_counter()
    try:
        status, content_type, body = _send(url, request, timeout_s)
        view = ResponseView(status, content_type, body)
    except _Deadline:
        view = ResponseView(0, error=TimeoutError(f"no whole answer within {timeout_s:g} s"))
        body = b""
    except (OSError, http.client.HTTPException, ValueError) as exc:
        view = ResponseView(0, error=exc)
        body = b""
    elapsed = time.perf_counter() - started
    failure: RequestFailure | None = protocol.classify(capability, view)
    if failure is None:
        return JobResult(cell, job, start_epoch, elapsed, view.status, True, "", "", "", len(body), body)
    if view.status:
        # The real tester's error: the status code, and the gateway's body as the message.
        code = str(view.status)
        text = body.decode("utf-8", errors="replace").strip() or failure.detail
        if view.status == 200:
            text = failure.detail  # a 200 whose body breaks the schema: say what broke, not the body
    else:
        code = failure.category.value.upper()
        text = f"{failure.detail}: {view.error}" if view.error is not None else failure.detail
    message = scrub(text[:MAX_MESSAGE_CHARS])
    return JobResult(
        cell,
        job,
        start_epoch,
        elapsed,
        view.status,
        False,
        failure.category.value,
        code,
        message,
        len(body),
        body,
    )
