"""One test job through the gateway: built and judged by the `livepeer` capability kind.

The request is the one a load test sends (same fields, files, content type), and so is the verdict: a
200 whose body does not match the pipeline's response schema is a failure here too. The round trip is
timed from the send to the end of the body read, under one deadline for the whole job.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from dataclasses import dataclass

from inferswarm.orchestrators.discovery import Cell
from inferswarm.protocols import LivepeerCapability, ResponseView, protocol_for
from inferswarm.protocols.base import PreparedRequest, RequestFailure
from inferswarm.secrets import Scrubber

MAX_BODY_BYTES = 64 * 1024 * 1024
"""A job's answer is read up to this much (a video as base64 fits); beyond it the job fails."""
MAX_MESSAGE_CHARS = 1000
"""An error's message (the gateway's body) is kept up to this length in the stat."""
READ_CHUNK = 256 * 1024


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


class _Deadline(Exception):
    pass


def _send(url: str, request: PreparedRequest, timeout_s: float) -> tuple[int, str, bytes]:
    """(status, content type, body) under one deadline for connect, send and the whole body."""
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        path = (parts.path.rstrip("/") + request.path) or "/"
        connection.request(request.method, path, body=request.body, headers=dict(request.headers))
        response = connection.getresponse()
        body = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Deadline
            if connection.sock is not None:
                connection.sock.settimeout(left)
            chunk = response.read1(READ_CHUNK) if hasattr(response, "read1") else response.read(READ_CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise ValueError(f"answer larger than {MAX_BODY_BYTES // 2**20} MiB")
        return response.status, response.getheader("Content-Type", ""), bytes(body)
    finally:
        connection.close()


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
