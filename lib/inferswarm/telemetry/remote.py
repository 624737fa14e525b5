"""Samples from other machines, polled by the master: an `inferswarm agent`, Prometheus exporters
(dcgm-exporter, node_exporter) and the target's own gpu-check capability.

Every poll also yields `source_up` (1 or 0), so a dead exporter shows as a gap with a reason rather
than as silence; a failing source is logged once when it goes down and once when it comes back.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from inferswarm.telemetry.prometheus import NodeExporterMapper, map_dcgm, map_inferswarm, parse_text
from inferswarm.telemetry.samples import Sample, from_wire, sample

log = logging.getLogger("inferswarm.telemetry")


class PollError(Exception):
    pass


def _fetch(
    url: str,
    timeout_s: float,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        raise PollError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PollError(f"{type(reason).__name__}: {reason}") from None


class Poller:
    """One remote source; subclasses turn a response into samples."""

    source = "remote"

    def __init__(self, name: str, url: str, timeout_s: float) -> None:
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self.down_reason: str | None = None

    def fetch(self, now: float) -> list[Sample]:
        raise NotImplementedError

    def poll(self, now: float | None = None) -> list[Sample]:
        now = time.time() if now is None else now
        try:
            samples = self.fetch(now)
        except (PollError, ValueError) as exc:
            if self.down_reason is None:
                log.warning("telemetry: %s (%s) is not answering: %s", self.name, self.url, exc)
            self.down_reason = str(exc)
            return [sample(now, self.name, self.source, "source", "source_up", 0)]
        if self.down_reason is not None:
            log.info("telemetry: %s (%s) is answering again", self.name, self.url)
            self.down_reason = None
        return [*samples, sample(now, self.name, self.source, "source", "source_up", 1)]


class AgentPoller(Poller):
    """`inferswarm agent`'s /telemetry, asking only for samples newer than the last it saw.

    The agent's clock may differ from ours; the offset is estimated from each round trip (the agent
    stamps its reply) and applied, so target samples land on the master's clock like everything else.
    """

    source = "agent"

    def __init__(self, name: str | None, url: str, timeout_s: float) -> None:
        super().__init__(name or f"agent@{urllib.parse.urlsplit(url).netloc}", url.rstrip("/"), timeout_s)
        self.fixed_name = name  # a configured name wins; otherwise the agent's own, once it answers
        self.since = 0.0
        self.offset_s = 0.0

    def fetch(self, now: float) -> list[Sample]:
        sent = time.time()
        body = _fetch(f"{self.url}/telemetry?since={self.since:.3f}", self.timeout_s)
        received = time.time()
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
            raise PollError("reply is not inferswarm agent telemetry JSON")
        agent_now = data.get("now")
        if isinstance(agent_now, int | float):
            self.offset_s = (sent + received) / 2 - float(agent_now)
        if self.fixed_name is None and isinstance(data.get("node"), str) and data["node"]:
            self.name = data["node"]
        samples = from_wire(data["samples"])
        if samples:
            self.since = max(s.timestamp for s in samples)
        shifted = [
            s._replace(node=self.name, timestamp=round(s.timestamp + self.offset_s, 3)) for s in samples
        ]
        offset = sample(
            now, self.name, self.source, "source", "clock_offset_ms", round(self.offset_s * 1000, 1)
        )
        return [*shifted, offset]


class PrometheusPoller(Poller):
    """A Prometheus text endpoint; dcgm-exporter, node_exporter and inferswarm metrics are understood."""

    def __init__(self, name: str | None, url: str, timeout_s: float, format: str = "auto") -> None:
        super().__init__(name or urllib.parse.urlsplit(url).netloc, url, timeout_s)
        self.format = format
        self.source = "prometheus" if format == "auto" else format
        self._node = NodeExporterMapper()

    def fetch(self, now: float) -> list[Sample]:
        scrape = parse_text(_fetch(self.url, self.timeout_s).decode("utf-8", errors="replace"))
        names = {p.name for p in scrape}
        fmt = self.format
        out: list[Sample] = []
        if fmt in ("auto", "dcgm") and any(n.startswith("DCGM_") for n in names):
            out += map_dcgm(scrape, now, self.name, "dcgm")
        if fmt in ("auto", "node") and any(n.startswith("node_") for n in names):
            out += self._node.map(scrape, now, self.name, "node_exporter")
        if fmt in ("auto", "inferswarm"):
            out += map_inferswarm(scrape, now, self.name, "prometheus")
        return out


def map_gpu_check(report: Any, now: float, node: str, source: str = "gpu-check") -> list[Sample]:
    """The gpu-check JSON (per-device memory and utilization) or the BYOC worker's short form."""
    if not isinstance(report, dict):
        raise PollError("gpu-check reply is not a JSON object")
    out: list[Sample] = []

    def add(device: str, metric: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(sample(now, node, source, device, metric, value))

    add("host", "gpu_count", report.get("gpu_count"))
    devices = report.get("devices")
    if isinstance(devices, dict):
        for key, dev in devices.items():
            if not isinstance(dev, dict):
                continue
            device = f"gpu{dev.get('device_id', key)}"
            mem = dev.get("memory")
            mem = mem if isinstance(mem, dict) else {}
            util = dev.get("utilization")
            util = util if isinstance(util, dict) else {}
            add(device, "gpu_mem_used_bytes", mem.get("used_bytes"))
            add(device, "gpu_mem_total_bytes", mem.get("total_bytes"))
            add(device, "gpu_util_pct", util.get("gpu_percent"))
            add(device, "gpu_mem_ctrl_util_pct", util.get("memory_percent"))
    vram_mb = report.get("vram_usage_mb")  # the BYOC worker's form: one number for the node
    if isinstance(vram_mb, int | float) and not isinstance(vram_mb, bool):
        add("all", "gpu_mem_used_bytes", int(vram_mb * 1024 * 1024))
    return out


class GpuCheckPoller(Poller):
    """Calls the target's gpu-check capability exactly as its Locust user does, at the telemetry interval."""

    source = "gpu-check"

    def __init__(
        self,
        name: str,
        url: str,
        timeout_s: float,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(name, url, timeout_s)
        self.method = method
        self.body = body
        self.headers = dict(headers)

    def fetch(self, now: float) -> list[Sample]:
        body = _fetch(self.url, self.timeout_s, self.method, self.body, self.headers)
        return map_gpu_check(json.loads(body), now, self.name)
