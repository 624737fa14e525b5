"""`inferswarm agent`: this machine's host and GPU samples over HTTP, for a master to poll.

  GET /telemetry?since=<epoch s>  samples newer than `since` (JSON; without `since`, the latest set)
  GET /metrics                    the latest set as Prometheus text (scrape it like any exporter)
  GET /checks                     seed 003's server-side checks: GPUs (NVML), host load, this clock
  GET /health

Samples are taken by one background thread on the `interval_s` grid and kept for `keep_s` seconds, so
a master that polls late (or reconnects) still gets every sample in between.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from typing import Any

from inferswarm.checks.model import Check, Status, details_json, iso_now
from inferswarm.nvml import NvmlUnavailable, as_text, error_text, open_nvml
from inferswarm.telemetry.prometheus import to_text
from inferswarm.telemetry.samples import Sample, next_tick, node_name, to_wire
from inferswarm.telemetry.sampling import LocalSampling


class AgentSampler:
    def __init__(
        self, node: str | None = None, interval_s: float = 1.0, keep_s: float = 600.0, nvml_module: Any = None
    ) -> None:
        self.node = node or node_name("agent")
        self.interval_s = interval_s
        self.nvml_module = nvml_module
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


BUSY_CPU_PCT = 90.0
"""Host CPU above this before a test: something else is using the target machine (a WARN)."""


def gpu_facts(nvml_module: Any = None) -> dict[str, Any]:
    """What NVML says about this machine's GPUs; never raises (`nvml` holds the error)."""
    facts: dict[str, Any] = {"visible": False, "count": 0, "names": [], "driver_version": None, "nvml": "ok"}
    try:
        nvml = open_nvml(nvml_module)
        count = int(nvml.nvmlDeviceGetCount())
    except NvmlUnavailable as exc:
        facts["nvml"] = str(exc)
        return facts
    except Exception as exc:  # NVMLError while counting devices
        facts["nvml"] = f"NVML error: {error_text(exc)}"
        return facts
    names = []
    for index in range(count):
        try:
            names.append(as_text(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(index))))
        except Exception as exc:  # one broken device must not hide the others
            names.append(f"<gpu{index}: {error_text(exc)}>")
    try:
        facts["driver_version"] = as_text(nvml.nvmlSystemGetDriverVersion())
    except Exception:  # not every binding (or fake) has it; unknown rather than invented
        facts["driver_version"] = None
    facts.update(visible=count > 0, count=count, names=names)
    return facts


def load_facts(samples: list[Sample]) -> dict[str, Any]:
    """Host CPU and memory use from the sampler's latest set, and the load averages."""
    host = {s.metric: s.value for s in samples if s.device == "host"}
    try:
        loadavg: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        loadavg = None
    return {"cpu_pct": host.get("cpu_util_pct"), "mem_pct": host.get("mem_util_pct"), "loadavg": loadavg}


def server_checks(sampler: AgentSampler) -> dict[str, Any]:
    """The `/checks` answer: this machine's GPUs and load, and seed 003's server-side checks."""
    started = time.perf_counter()
    gpu = gpu_facts(sampler.nvml_module)
    gpu_ms = (time.perf_counter() - started) * 1000.0
    latest = sampler.latest()
    load = load_facts(latest)
    nvml_ok = gpu["nvml"] == "ok"
    checks = [
        Check("nvml_readable", Status.PASS if nvml_ok else Status.WARN, gpu["nvml"], gpu_ms),
        Check(
            "gpu_detection",
            Status.PASS if gpu["visible"] else Status.WARN,
            details_json({"gpu_count": gpu["count"], "names": gpu["names"], "driver": gpu["driver_version"]}),
            gpu_ms,
        ),
    ]
    cpu = load["cpu_pct"]
    busy = isinstance(cpu, int | float) and cpu > BUSY_CPU_PCT
    checks.append(
        Check(
            "host_load",
            Status.WARN if busy else Status.PASS,
            details_json({**load, **({"warning": "the machine is busy before the test"} if busy else {})}),
        )
    )
    checks.append(
        Check(
            "telemetry_sampling",
            Status.PASS if latest else Status.WARN,
            f"{len(latest)} samples in the latest set every {sampler.interval_s:g} s"
            if latest
            else "no sample taken yet",
        )
    )
    return {
        "hostname": socket.gethostname(),
        "node": sampler.node,
        "timestamp": iso_now(),
        "gpu": gpu,
        "load": load,
        "checks": [c.to_dict() for c in checks],
        "time_epoch_s": time.time(),  # last: as close to the answer leaving as this process can read it
    }


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

    @app.get("/checks")
    def checks() -> dict[str, Any]:
        return server_checks(sampler)

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
