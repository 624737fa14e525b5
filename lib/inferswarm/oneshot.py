"""One HTTP request outside Locust, under one deadline for connect, send and the whole answer.

Used where a single request is sent and judged by a capability's protocol (an orchestrator test job, a
preflight check): the standard library only, no connection kept between requests.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.parse
import uuid

from inferswarm.protocols.base import PreparedRequest

MAX_BODY_BYTES = 64 * 1024 * 1024
"""An answer is read up to this much (a video as base64 fits); beyond it the request fails."""
READ_CHUNK = 256 * 1024


class Deadline(Exception):
    """The whole answer did not arrive within the request's deadline."""


def request_body(request: PreparedRequest) -> bytes | None:
    """The body one request sends: `body`, or the first of `bodies` (sent in turn under load)."""
    if request.body is None and request.bodies:
        return request.bodies[0]
    return request.body


def send(
    url: str,
    request: PreparedRequest,
    timeout_s: float,
    max_body_bytes: int = MAX_BODY_BYTES,
    context: ssl.SSLContext | None = None,
) -> tuple[int, str, bytes]:
    """(status, content type, body) of `request` sent to the base URL `url`.

    Raises Deadline when the whole answer is not in within `timeout_s` (TimeoutError when one wait
    outlasts it), OSError or http.client.HTTPException when there is no answer, ValueError when the
    answer is larger than `max_body_bytes`.

    A server that answers before taking the whole body (a 413 for an upload it will not read) is heard:
    the answer is read even when sending the rest failed.
    """
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout_s, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    headers = dict(request.headers)
    if request.request_id_header:
        headers[request.request_id_header] = request.request_id_prefix + uuid.uuid4().hex
    try:
        path = (parts.path.rstrip("/") + request.path) or "/"
        try:
            connection.request(request.method, path, body=request_body(request), headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            if connection.sock is None:
                raise
        left = deadline - time.monotonic()
        if left <= 0:
            raise Deadline
        if connection.sock is not None:
            connection.sock.settimeout(left)
        response = connection.getresponse()
        body = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deadline
            if connection.sock is not None:
                connection.sock.settimeout(left)
            chunk = response.read1(READ_CHUNK) if hasattr(response, "read1") else response.read(READ_CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > max_body_bytes:
                raise ValueError(f"answer larger than {max_body_bytes // 2**20} MiB")
        return response.status, response.getheader("Content-Type", ""), bytes(body)
    finally:
        connection.close()
