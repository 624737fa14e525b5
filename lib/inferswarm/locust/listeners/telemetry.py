"""Telemetry inside Locust: every process samples itself; workers send batches to the master; the master
(or the local runner) also polls remote sources and owns the CSV, the live view and the console line.

Timing: samples are taken on the epoch-aligned grid `k * interval_s`, so with the default 1 s interval
each whole second of Locust's stats history has exactly one sample per series.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import gevent
from locust import stats as locust_stats
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.config import RunConfig
from inferswarm.load.arrivals import LATE_MS
from inferswarm.locust.sampling import GreenSampling
from inferswarm.protocols import protocol_for
from inferswarm.telemetry.edge_status import EdgeStatusPoller, status_url
from inferswarm.telemetry.remote import AgentPoller, GpuCheckPoller, Poller, PrometheusPoller
from inferswarm.telemetry.samples import Sample, from_wire, next_tick, node_name, to_wire
from inferswarm.telemetry.sampling import LocalSampling
from inferswarm.telemetry.store import LiveView, SaturationTracker, TelemetryCsv

log = logging.getLogger("inferswarm.telemetry")

MESSAGE = "inferswarm_telemetry"
WORKER_BATCH_S = 1.0  # workers send at most once a second, whatever the sampling interval
FLUSH_S = 1.0  # the CSV reaches the OS at most once a second (and at quit), like Locust's own CSVs


def _sleep_to_grid(interval_s: float) -> float:
    now = time.time()
    gevent.sleep(max(0.0, next_tick(now, interval_s) - now))
    return time.time()


def _spawn(fn: Callable[[], None], name: str) -> gevent.Greenlet[Any, Any]:
    def guarded() -> None:
        try:
            fn()
        except gevent.GreenletExit:
            raise
        except Exception:  # telemetry must never take the load test down with it
            log.exception("telemetry: %s stopped", name)

    return gevent.spawn(guarded)


def build_pollers(config: RunConfig, secret_headers: Mapping[str, str], host: str | None) -> list[Poller]:
    tc = config.telemetry
    timeout = min(max(tc.interval_s, 1.0), 5.0)
    pollers: list[Poller] = [AgentPoller(a.name, a.url, timeout) for a in tc.agents]
    pollers += [PrometheusPoller(p.name, p.url, timeout, p.format) for p in tc.prometheus]
    # The real status page samples CPU over one second before it answers (psutil interval=1).
    target_url = host or config.target.base_url
    pollers += [
        EdgeStatusPoller(e.name, status_url(e.url, target_url), min(timeout + 2.0, 5.0))
        for e in tc.edge_status
    ]
    if tc.gpu_check:
        cap = next(c for c in config.capabilities if c.name == tc.gpu_check)
        prepared = protocol_for(cap.kind).prepare(cap, config.assets_path)
        headers = {**config.target.headers, **prepared.headers, **secret_headers}
        base = (host or config.target.base_url).rstrip("/")
        pollers.append(
            GpuCheckPoller("target", base + prepared.path, timeout, prepared.method, prepared.body, headers)
        )
    return pollers


class WorkerTelemetry:
    """A worker samples its own host and ships the samples to the master in batches."""

    def __init__(
        self, environment: Environment, config: RunConfig, schedule_lag_ms: Callable[[], float] | None = None
    ) -> None:
        self.environment = environment
        self.interval_s = config.telemetry.interval_s
        self.sampling = GreenSampling(
            LocalSampling(node_name("worker"), config.telemetry.gpu, config.telemetry.per_core),
            schedule_lag_ms,
        )
        self._pending: list[Sample] = []
        self._last_send = 0.0
        self._greenlets: list[gevent.Greenlet[Any, Any]] = []

    def start(self) -> None:
        self.sampling.probe.start()
        self._greenlets.append(_spawn(self._loop, "worker sampling"))
        self.environment.events.quit.add_listener(self.stop)

    def _loop(self) -> None:
        while True:
            now = _sleep_to_grid(self.interval_s)
            self._pending += self.sampling.collect(now)
            if now - self._last_send >= WORKER_BATCH_S:
                self.send()

    def send(self) -> None:
        runner = self.environment.runner
        if not self._pending or not isinstance(runner, WorkerRunner):
            return
        batch, self._pending = self._pending, []
        try:
            runner.send_message(MESSAGE, {"samples": to_wire(batch)})
            self._last_send = time.time()
        except Exception as exc:  # the master went away: keep nothing unbounded, say it once
            log.warning("telemetry: could not send %d samples to the master: %s", len(batch), exc)

    def stop(self, **_: Any) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.sampling.probe.stop()
        self.send()


class TelemetryHub:
    """The local runner's or master's telemetry: its own samples, the workers', remote sources."""

    def __init__(
        self,
        environment: Environment,
        config: RunConfig,
        csv_path: Path,
        secret_headers: Mapping[str, str],
        on_saturation: Callable[[dict[str, Any]], None] | None = None,
        schedule_lag_ms: Callable[[], float] | None = None,
    ) -> None:
        self.environment = environment
        self.config = config
        tc = config.telemetry
        self.interval_s = tc.interval_s
        role = "master" if isinstance(environment.runner, MasterRunner) else "local"
        self.node = node_name(role)
        # A master sends nothing itself: only a local runner has a schedule of its own to fall behind.
        own_lag = schedule_lag_ms if role == "local" else None
        self.sampling = GreenSampling(LocalSampling(self.node, tc.gpu, tc.per_core), own_lag)
        self.pollers = build_pollers(config, secret_headers, environment.host)
        self.csv = TelemetryCsv(csv_path)
        self.live = LiveView()
        self.saturation = SaturationTracker(tc.saturation_cpu_pct, LATE_MS)
        self.load: deque[tuple[float, int, float, float]] = deque(maxlen=3600)
        self.on_saturation = on_saturation
        self._greenlets: list[gevent.Greenlet[Any, Any]] = []
        self._stopped = False
        self._warned: set[tuple[str, str]] = set()

    def start(self) -> None:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            runner.register_message(MESSAGE, self._on_message)
        self.sampling.probe.start()
        self._greenlets.append(_spawn(self._loop, "sampling"))
        for poller in self.pollers:
            self._greenlets.append(_spawn(partial(self._poll_loop, poller), f"poller {poller.name}"))
        options = self.environment.parsed_options
        if options is not None and options.headless and not options.only_summary:
            self._greenlets.append(_spawn(self._console_loop, "console summary"))

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "interval_s": self.interval_s,
            "node": self.node,
            "gpu": self.sampling.gpu_note,
            "sources": [{"name": p.name, "kind": p.source, "url": p.url} for p in self.pollers],
        }

    def add(self, samples: list[Sample], judge: bool = True) -> None:
        """Record samples; `judge`: also look for a saturated or late load generator in them."""
        if self._stopped or not samples:
            return
        flagged = self.saturation.check(samples) if judge else []
        self.csv.write(samples)
        self.live.add(samples)
        if flagged:
            self.csv.write(flagged)
            self.live.add(flagged)
            for s in flagged:
                if (s.node, s.metric) in self._warned:
                    continue
                self._warned.add((s.node, s.metric))
                if s.metric == "generator_behind":
                    log.warning(
                        "telemetry: load generator %s fell more than %g ms behind its send schedule: every "
                        "user of the ceiling was busy or its CPU was; those requests went out late",
                        s.node,
                        self.saturation.lag_threshold_ms,
                    )
                else:
                    log.warning(
                        "telemetry: load generator %s is above %g%% CPU: figures measured while it is "
                        "saturated understate the target; add workers",
                        s.node,
                        self.saturation.threshold_pct,
                    )
            if self.on_saturation is not None:
                self.on_saturation(self.saturation.summary())

    def _on_message(self, msg: Any, **_: Any) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
        self.add(from_wire(data.get("samples")))

    def _loop(self) -> None:
        flushed = 0.0
        while True:
            now = _sleep_to_grid(self.interval_s)
            self.add(self.sampling.collect(now))
            self._record_load(now)
            if now - flushed >= FLUSH_S:
                self.csv.flush()
                flushed = now

    def _record_load(self, now: float) -> None:
        runner = self.environment.runner
        if runner is None:
            return
        total = runner.stats.total
        self.load.append((now, runner.user_count, total.current_rps, total.current_fail_per_sec))

    def _poll_loop(self, poller: Poller) -> None:
        while True:
            _sleep_to_grid(self.interval_s)
            self.add(poller.poll())

    def _console_loop(self) -> None:
        while True:
            gevent.sleep(locust_stats.CONSOLE_STATS_INTERVAL_SEC)
            locust_stats.console_logger.info(
                summary_line(self.live.latest.values(), self.saturation.saturated)
            )

    def stop(self) -> None:
        """Final sample, flush and close; safe to call twice."""
        if self._stopped:
            return
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.sampling.probe.stop()
        try:
            # Kept in the timeline but not judged: its CPU share is over the few milliseconds since the
            # last sample, all of them shutdown work (final CSVs, stats), not load generation.
            self.add(self.sampling.collect(in_thread=False), judge=False)
        except Exception:
            log.exception("telemetry: final sample failed")
        self._stopped = True
        self.csv.close()


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f}"


def summary_line(latest: Any, saturated: bool) -> str:
    """One console line: nodes, the busiest generator, host CPU/memory, each GPU, worst loop lag."""
    samples: list[Sample] = list(latest)
    nodes = {s.node for s in samples}
    parts = [f"telemetry: {len(nodes)} node{'s' if len(nodes) != 1 else ''}"]
    gens = [s for s in samples if s.metric == "process_cpu_pct" and not s.node.startswith("master@")]
    if gens:
        top = max(gens, key=lambda s: s.value)
        parts.append(f"generator cpu max {top.value:.0f}% ({top.node})" + (" SATURATED" if saturated else ""))
    cpu = [s.value for s in samples if s.metric == "cpu_util_pct" and s.device == "host"]
    mem = [s.value for s in samples if s.metric == "mem_util_pct" and s.device == "host"]
    if cpu:
        parts.append(f"host cpu max {max(cpu):.0f}% mem max {max(mem or [0]):.0f}%")
    by_gpu: dict[tuple[str, str], dict[str, float]] = {}
    for s in samples:
        if s.metric.startswith("gpu_") and s.device.startswith("gpu") and "/" not in s.device:
            by_gpu.setdefault((s.node, s.device), {})[s.metric] = s.value
    for (_, device), m in sorted(by_gpu.items())[:8]:
        text = f"{device} {m.get('gpu_util_pct', float('nan')):.0f}%"
        if "gpu_mem_used_bytes" in m and "gpu_mem_total_bytes" in m:
            text += f" {_gib(m['gpu_mem_used_bytes'])}/{_gib(m['gpu_mem_total_bytes'])} GiB"
        if "gpu_power_w" in m:
            text += f" {m['gpu_power_w']:.0f} W"
        parts.append(text)
    lag = [s.value for s in samples if s.metric == "loop_lag_ms"]
    if lag:
        parts.append(f"loop lag max {max(lag):.0f} ms")
    down = sorted({s.node for s in samples if s.metric == "source_up" and s.value == 0})
    if down:
        parts.append("down: " + ", ".join(down))
    return " | ".join(parts)
