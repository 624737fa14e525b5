"""A tiny stdlib HTTP client for tests (the code under test uses Locust's client; tests use another)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlparse


def request(
    url: str, method: str = "POST", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def post_json(url: str, payload: Any) -> tuple[int, Any]:
    status, _, body = request(
        url, body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    return status, json.loads(body)
