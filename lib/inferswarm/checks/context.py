"""What every check family is given: the config, the target, the secret headers, and what earlier
checks found out (a target that does not answer makes the checks that need it SKIP, not wait)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferswarm.checks.config import ChecksConfig
from inferswarm.checks.model import Check, Status, iso_now
from inferswarm.config.schema import RunConfig
from inferswarm.secrets import Scrubber


@dataclass(frozen=True)
class AgentAnswer:
    """An agent's `GET /checks` answer (None with `error` when there was none) and its timing."""

    answer: dict[str, Any] | None
    error: str | None
    sent_epoch_s: float = 0.0
    received_epoch_s: float = 0.0


@dataclass
class CheckContext:
    config: RunConfig
    base_url: str
    secret_headers: Mapping[str, str]
    scrub: Scrubber
    agents: list[tuple[str, str]] = field(default_factory=list)
    """(name, URL) of every `inferswarm agent` to ask about GPUs and the clock."""
    agent_answers: dict[str, AgentAnswer] = field(default_factory=dict)
    """Each agent's /checks answer, fetched once for the GPU and clock checks."""
    unreachable: str | None = None
    """Why the target cannot be reached (set by an earlier check); checks that need it SKIP."""

    @property
    def checks(self) -> ChecksConfig:
        return self.config.checks

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(self.base_url)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def https(self) -> bool:
        return urllib.parse.urlsplit(self.base_url).scheme == "https"

    def headers(self, own: Mapping[str, str]) -> dict[str, str]:
        """What the load test would send: the target's headers, the request's own, the secrets last."""
        return {**self.config.target.headers, **own, **self.secret_headers}

    def skip_unreachable(self, name: str) -> Check | None:
        if self.unreachable is None:
            return None
        return Check(name, Status.SKIP, self.scrub(f"target unreachable: {self.unreachable}"))


class Timer:
    """Times one check; `check()` makes its result, stamped with when it started, details scrubbed."""

    def __init__(self, name: str, scrub: Callable[[str], str]) -> None:
        self.name = name
        self.scrub = scrub
        self.started_iso = iso_now()
        self._start = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0

    def check(self, status: Status, details: str, timing_ms: float | None = None) -> Check:
        ms = self.ms if timing_ms is None else timing_ms
        return Check(self.name, status, self.scrub(details), ms, self.started_iso)
