"""Leaderboard AI stats: one per cell, signed over the exact bytes sent, posted once.

Contract (PROTOCOLS.md section 4): `POST <api>/post_stats` with `Authorization: hex(HMAC-SHA256(secret,
body))`, no scheme, no timestamp; 403 for a bad signature, 400 for a bad region or body, 200 `ok`.
The body is serialised once and those bytes are signed, written to the run directory and sent: nothing
re-serialises a stat. A 5xx or a refused connection is retried with backoff (the stat did not land); a
4xx is reported and not retried (it would be refused again); a timeout after the body went out is not
retried either, since the leaderboard has no idempotency key and the stat may have landed: a stat is
never posted twice.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferswarm.orchestrators.config import LeaderboardConfig, redact
from inferswarm.orchestrators.jobs import JobResult

MAX_PAYLOAD_CHARS = 64 * 1024
"""A captured response payload is cut to this length (base64 media can be megabytes)."""


class LeaderboardError(Exception):
    """The leaderboard cannot be used as configured (one line)."""


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CellStat:
    """A cell's stat: the object, its exact body bytes, and what the leaderboard never sees."""

    stat: dict[str, Any]
    body: bytes
    jobs: int
    successes: int
    rtt_of: str


def make_stat(
    region: str,
    results: Sequence[JobResult],
    input_parameters: dict[str, Any],
    capture_response: bool,
    scrub: Any,
) -> CellStat:
    """The leaderboard's AI stat for one cell's jobs (at least one)."""
    cell = results[0].cell
    ok = [r for r in results if r.ok]
    timed = ok or list(results)
    errors = Counter((r.error_code, r.message) for r in results if not r.ok)
    payload = ""
    if capture_response:
        payload = scrub(results[-1].body[:MAX_PAYLOAD_CHARS].decode("utf-8", errors="replace"))
    stat: dict[str, Any] = {
        "region": region,
        "orchestrator": cell.orchestrator,
        "pipeline": cell.pipeline,
        "model": cell.model,
        "model_is_warm": cell.warm,
        "success_rate": len(ok) / len(results),
        "round_trip_time": sum(r.round_trip_s for r in timed) / len(timed),
        "errors": [{"error_code": c, "message": m, "count": n} for (c, m), n in errors.items()],
        "timestamp": int(results[0].start_epoch_s),
        "input_parameters": json.dumps(input_parameters, sort_keys=True, separators=(",", ":")),
        "response_payload": payload,
    }
    body = json.dumps(stat, separators=(",", ":"), ensure_ascii=False).encode()
    return CellStat(stat, body, len(results), len(ok), "successes" if ok else "failures")


@dataclass(frozen=True)
class PostOutcome:
    status: str
    """posted | dry_run | failed"""
    http_status: int | None = None
    attempts: int = 0
    error: str = ""


class Poster:
    """Posts stats to the leaderboard with the configured retries; the secret stays in here."""

    def __init__(self, config: LeaderboardConfig, secret: str | None, stop: threading.Event) -> None:
        self.config = config
        self._secret = (secret or "").encode()
        self._stop = stop

    @property
    def base(self) -> str:
        return (self.config.url or "").rstrip("/")

    def check_region(self, region: str) -> str | None:
        """Why `region` cannot be posted to (one line), or None; asks `GET <api>/regions`."""
        url = f"{self.base}/regions"
        try:
            with urllib.request.urlopen(url, timeout=self.config.timeout_s) as response:
                document = json.loads(response.read(4 * 1024 * 1024))
        except urllib.error.HTTPError as exc:
            return f"{redact(url)}: HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"{redact(url)}: no usable answer ({getattr(exc, 'reason', exc)})"
        regions = document.get("regions") if isinstance(document, dict) else None
        if not isinstance(regions, list):
            return f"{redact(url)}: the answer has no `regions` list"
        ids = sorted({str(r.get("id")) for r in regions if isinstance(r, dict)})
        if region not in ids:
            return f"region {region!r} is not one of the leaderboard's regions ({', '.join(ids)})"
        return None

    def post(self, body: bytes) -> PostOutcome:
        if not self.config.posts:
            return PostOutcome("dry_run")
        url = f"{self.base}/post_stats"
        headers = {"Content-Type": "application/json", "Authorization": sign(self._secret, body)}
        wait = self.config.backoff_s
        attempts = 0
        while True:
            attempts += 1
            status, error, retry = self._attempt(url, body, headers)
            if status == 200:
                return PostOutcome("posted", status, attempts)
            if not retry or attempts > self.config.retries or self._stop.is_set():
                return PostOutcome("failed", status, attempts, error)
            # Waits are cut short by a stop: the run is ending, this stat is reported as failed.
            if self._stop.wait(wait):
                return PostOutcome("failed", status, attempts, f"{error}; stopped before retrying")
            wait *= 2

    def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str, bool]:
        """(HTTP status or None, error text, whether to retry)."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                response.read(64 * 1024)
                return response.status, "", False
        except urllib.error.HTTPError as exc:
            text = exc.read(2000).decode("utf-8", errors="replace").strip()
            error = f"HTTP {exc.code}: {text[:200]}" if text else f"HTTP {exc.code}"
            return exc.code, error, exc.code >= 500
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting and sending: the leaderboard never got the
            # whole body, so sending it again cannot store it twice.
            return None, f"not delivered ({exc.reason})", True
        except (OSError, http.client.HTTPException) as exc:
            # After the body went out (no answer, a dropped connection): it may have been stored.
            reason = str(exc) or type(exc).__name__
            return None, f"no answer after sending ({reason}); not retried: the stat may be stored", False


def stat_row(stat: CellStat, service_uri: str, outcome: PostOutcome) -> list[object]:
    """The run directory's stat row (rundir.ORCH_STAT_COLUMNS)."""
    s = stat.stat
    return [
        s["region"],
        s["orchestrator"],
        service_uri,
        s["pipeline"],
        s["model"],
        s["model_is_warm"],
        stat.jobs,
        stat.successes,
        s["success_rate"],
        round(s["round_trip_time"], 6),
        stat.rtt_of,
        json.dumps(s["errors"], ensure_ascii=False),
        s["timestamp"],
        outcome.status,
        "" if outcome.http_status is None else outcome.http_status,
        outcome.attempts,
        outcome.error,
    ]
