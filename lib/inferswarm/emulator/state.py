"""The reference target's running state: settings, the simulated GPU, counters, async jobs."""

from __future__ import annotations

import asyncio
import hmac
import os
import random
import time
from typing import Any

from fastapi import Request

from inferswarm.emulator.gpu import SimulatedGpu
from inferswarm.emulator.http import ApiError
from inferswarm.emulator.settings import TargetSettings


class TargetState:
    def __init__(self, settings: TargetSettings) -> None:
        self.settings = settings
        self.token: str | None = None
        if settings.auth_token_env:
            self.token = os.environ.get(settings.auth_token_env)
            if not self.token:
                raise ValueError(f"auth_token_env: environment variable {settings.auth_token_env} is not set")
        self.gpu = SimulatedGpu(settings.slots, settings.queue_depth)
        self.rng = random.Random(settings.seed)
        self.requests: dict[str, int] = {}
        self.client_disconnects = 0
        self.started = time.time()
        self.jobs = AsyncJobs(settings.async_job_ttl_s)

    def require_auth(self, request: Request) -> None:
        """The ai-runner's bearer check: 401 with WWW-Authenticate when the token is wrong or missing."""
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise ApiError(401, "Invalid bearer token.")

    async def work(self, capability: str) -> float:
        """Occupy the simulated GPU (or not) for one sampled service time; returns it in ms."""
        self.requests[capability] = self.requests.get(capability, 0) + 1
        cap = self.settings.for_capability(capability)
        service_s = max(cap.service_time.sample_s(self.rng), 0.0)
        if cap.gpu:
            async with self.gpu.slot():
                await asyncio.sleep(service_s)
        else:
            await asyncio.sleep(service_s)
        return round(service_s * 1000.0, 3)

    def chance(self, rate: float) -> bool:
        """True with probability `rate` (the seeded generator, so runs repeat)."""
        return rate > 0 and self.rng.random() < rate

    def maybe_fail(self, capability: str) -> None:
        """The configured error rate: a 500 masked exactly as the gateway masks it."""
        if self.chance(self.settings.for_capability(capability).error_rate):
            raise ApiError(500, "Internal Server Error")


class AsyncJobs:
    """The gateway's async mode: job id -> result (None while running), forgotten after a TTL."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.results: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def expire(self) -> None:
        now = time.monotonic()
        for job_id in [j for j, (t, r) in self.results.items() if r is not None and now - t > self.ttl_s]:
            del self.results[job_id]
