"""Asking an `inferswarm agent` for its `GET /checks` answer: over one kept-alive connection, a few
times, keeping the answer with the shortest round trip (the best bound on the clock offset)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

from inferswarm.checks.context import AgentAnswer, CheckContext

CHECKS_PATH = "/checks"
CLOCK_SAMPLES = 3


def fetch_checks(url: str, timeout_s: float, samples: int = CLOCK_SAMPLES) -> AgentAnswer:
    parts = urllib.parse.urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    path = parts.path.rstrip("/") + CHECKS_PATH
    deadline = time.monotonic() + timeout_s
    best: AgentAnswer | None = None
    try:
        connection.connect()
        for _ in range(samples):
            if time.monotonic() >= deadline:
                break
            sent = time.time()
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(1024 * 1024)
            received = time.time()
            if response.status != 200:
                return AgentAnswer(None, f"GET {CHECKS_PATH}: HTTP {response.status} (an older agent?)")
            answer = json.loads(body)
            if not isinstance(answer, dict):
                return AgentAnswer(None, f"GET {CHECKS_PATH}: not a JSON object")
            sample = AgentAnswer(answer, None, sent, received)
            if best is None or (received - sent) < (best.received_epoch_s - best.sent_epoch_s):
                best = sample
    except (OSError, http.client.HTTPException) as exc:
        if best is None:
            if isinstance(exc, TimeoutError):
                return AgentAnswer(None, f"no answer within {timeout_s:g} s")
            return AgentAnswer(None, f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
    except ValueError:
        return AgentAnswer(None, f"GET {CHECKS_PATH}: not JSON")
    finally:
        connection.close()
    return best if best is not None else AgentAnswer(None, f"no answer within {timeout_s:g} s")


def agent_answer(ctx: CheckContext, name: str, url: str) -> AgentAnswer:
    """The agent's answer, fetched once per check run."""
    if name not in ctx.agent_answers:
        ctx.agent_answers[name] = fetch_checks(url, ctx.checks.timeout_s)
    return ctx.agent_answers[name]
