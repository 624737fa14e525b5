"""A simulated GPU: a fixed number of slots, a bounded wait queue, and rejection beyond both.

This is what makes the reference target saturate like a real inference server: throughput grows with
concurrency until every slot is busy, then latency grows (queueing) until the queue is full, then the
target answers 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


class CapacityExceeded(Exception):
    """Every slot is busy and the queue is full."""


@dataclass
class GpuCounters:
    admitted: int = 0
    rejected: int = 0
    completed: int = 0
    peak_in_system: int = 0
    busy_slot_s: float = 0.0


class SimulatedGpu:
    def __init__(self, slots: int, queue_depth: int) -> None:
        self.slots = slots
        self.queue_depth = queue_depth
        self._semaphore = asyncio.Semaphore(slots)
        self._in_system = 0  # running + waiting
        self._running = 0
        self.counters = GpuCounters()
        self._started = time.monotonic()

    @property
    def in_system(self) -> int:
        return self._in_system

    @property
    def running(self) -> int:
        return self._running

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the block; raises CapacityExceeded without waiting when full."""
        if self._in_system >= self.slots + self.queue_depth:
            self.counters.rejected += 1
            raise CapacityExceeded
        self._in_system += 1
        self.counters.admitted += 1
        self.counters.peak_in_system = max(self.counters.peak_in_system, self._in_system)
        try:
            async with self._semaphore:
                self._running += 1
                began = time.monotonic()
                try:
                    yield
                finally:
                    self._running -= 1
                    self.counters.busy_slot_s += time.monotonic() - began
                    self.counters.completed += 1
        finally:
            self._in_system -= 1

    def snapshot(self) -> dict[str, float | int]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            "slots": self.slots,
            "queue_depth": self.queue_depth,
            "running": self._running,
            "waiting": self._in_system - self._running,
            "admitted": self.counters.admitted,
            "rejected": self.counters.rejected,
            "completed": self.counters.completed,
            "peak_in_system": self.counters.peak_in_system,
            "mean_slot_utilization": round(self.counters.busy_slot_s / (elapsed * self.slots), 4),
        }
