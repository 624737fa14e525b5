"""A Groundlight edge endpoint's own status page as a telemetry source: `GET /status/metrics.json`.

The status monitor (groundlight/edge-endpoint `app/metrics/system_metrics.py`) reports the edge box's
`device_info`: `cpu_utilization` (psutil, % of all cores), `memory_utilization` (%), and
`memory_available_bytes`, which despite its name is psutil's *total* memory. Any field may instead be
`{"error": "..."}` (its `SafeMetricsDict` keeps the rest of the payload when one reading fails), so a
missing or non-numeric field is skipped, never trusted. `k3s_stats.pod_statuses` (a JSON string of pod
name -> phase) gives how many of the endpoint's pods are running.

Samples land under the catalogue's host names (`cpu_util_pct`, `mem_util_pct`, `mem_used_bytes`,
`mem_total_bytes`, device `host`) so the report's utilization figures and the live view show the edge
box beside the load generators, plus `edge_pods_running` / `edge_pods_total`.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from inferswarm.telemetry.remote import Poller, PollError, _fetch
from inferswarm.telemetry.samples import Sample, sample

STATUS_PATH = "/status/metrics.json"
SOURCE = "edge-status"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def map_edge_status(document: Any, now: float, node: str) -> list[Sample]:
    """Samples from a `/status/metrics.json` document; raises PollError when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("device_info"), dict):
        raise PollError("reply is not an edge status document (no device_info object)")
    info: dict[str, Any] = document["device_info"]
    out: list[Sample] = []

    def add(metric: str, value: float) -> None:
        out.append(sample(now, node, SOURCE, "host", metric, int(value) if value.is_integer() else value))

    cpu = _number(info.get("cpu_utilization"))
    if cpu is not None:
        add("cpu_util_pct", cpu)
    mem_pct = _number(info.get("memory_utilization"))
    total = _number(info.get("memory_available_bytes"))  # psutil's total, whatever the name says
    if mem_pct is not None:
        add("mem_util_pct", mem_pct)
    if total is not None:
        add("mem_total_bytes", total)
        if mem_pct is not None:
            add("mem_used_bytes", float(round(total * mem_pct / 100.0)))
    k3s = document.get("k3s_stats")
    pods_text = k3s.get("pod_statuses") if isinstance(k3s, dict) else None
    if isinstance(pods_text, str):
        try:
            pods = json.loads(pods_text)
        except ValueError:
            pods = None
        if isinstance(pods, dict):
            add("edge_pods_total", float(len(pods)))
            add("edge_pods_running", float(sum(1 for phase in pods.values() if phase == "Running")))
    return out


def status_url(url: str, base_url: str) -> str:
    """`url` as given (absolute), or a path resolved against the run's target; a bare host gets
    `/status/metrics.json`."""
    if url.startswith("/"):
        return base_url.rstrip("/") + url
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, STATUS_PATH, parts.query, ""))
    return url


class EdgeStatusPoller(Poller):
    """The edge endpoint's `/status/metrics.json`, polled by the master at the telemetry interval."""

    source = SOURCE

    def __init__(self, name: str | None, url: str, timeout_s: float) -> None:
        super().__init__(name or f"edge@{urllib.parse.urlsplit(url).netloc}", url, timeout_s)

    def fetch(self, now: float) -> list[Sample]:
        return map_edge_status(json.loads(_fetch(self.url, self.timeout_s)), now, self.name)
