"""`inferswarm agent`: this machine's host and GPU samples over HTTP, for a master to poll.

  GET /telemetry?since=<epoch s>  samples newer than `since` (JSON; without `since`, the latest set)
  GET /metrics                    the latest set as Prometheus text (scrape it like any exporter)
  GET /health

Samples are taken by one background thread on the `interval_s` grid and kept for `keep_s` seconds, so
a master that polls late (or reconnects) still gets every sample in between.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from inferswarm.telemetry.prometheus import to_text
from inferswarm.telemetry.samples import Sample, next_tick, node_name, to_wire
from inferswarm.telemetry.sampling import LocalSampling


class AgentSampler:
    def __init__(
        self, node: str | None = None, interval_s: float = 1.0, keep_s: float = 600.0, nvml_module: Any = None
    ) -> None:
        self.node = node or node_name("agent")
        self.interval_s = interval_s
        self.sampling = LocalSampling(self.node, nvml_module=nvml_module, process=False)
        self._sets: deque[tuple[float, list[Sample]]] = deque(maxlen=max(2, int(keep_s / interval_s)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inferswarm-agent-sampler", daemon=True)

    def start(self) -> None:
        self.sample_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sample_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        samples = self.sampling.collect(now)
        with self._lock:
            self._sets.append((round(now, 3), samples))

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            if self._stop.wait(max(0.0, next_tick(now, self.interval_s) - now)):
                return
            self.sample_once()

    def latest(self) -> list[Sample]:
        with self._lock:
            return list(self._sets[-1][1]) if self._sets else []

    def since(self, since: float) -> list[Sample]:
        with self._lock:
            return [s for ts, samples in self._sets if ts > since for s in samples]


def create_app(sampler: AgentSampler) -> Any:
    from fastapi import FastAPI, Query
    from fastapi.responses import PlainTextResponse

    app = FastAPI(title="inferswarm agent", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "node": sampler.node, "gpu": sampler.sampling.gpu_note}

    @app.get("/telemetry")
    def telemetry(since: float | None = Query(default=None, ge=0)) -> dict[str, Any]:
        samples = sampler.latest() if since is None else sampler.since(since)
        return {
            "node": sampler.node,
            "now": round(time.time(), 3),
            "interval_s": sampler.interval_s,
            "columns": ["timestamp", "node", "source", "device", "metric", "value", "unit"],
            "samples": to_wire(samples),
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return to_text(sampler.latest())

    return app


def serve(host: str, port: int, interval_s: float, node: str | None, log_level: str = "info") -> None:
    import uvicorn

    sampler = AgentSampler(node, interval_s)
    sampler.start()
    try:
        uvicorn.run(create_app(sampler), host=host, port=port, log_level=log_level, access_log=False)
    finally:
        sampler.stop()
