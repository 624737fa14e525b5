"""Prometheus text exposition: parse scrapes of dcgm-exporter and node_exporter into inferswarm samples,
and write inferswarm samples as Prometheus text for `inferswarm agent`'s `/metrics`.

The parser covers the text format as exporters emit it: `# HELP`/`# TYPE` comments, optional labels
with escaped values, optional millisecond timestamps, and the special floats (NaN, +Inf, -Inf).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

from inferswarm.telemetry.samples import METRIC_UNITS, Sample, sample


class PromSample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None


class PrometheusParseError(ValueError):
    pass


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(text: str, pos: int, lineno: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    pos += 1  # past "{"
    while True:
        while pos < len(text) and text[pos] in " ,":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_NAME.match(text, pos)
        if not match or text[match.end() : match.end() + 2] != '="':
            raise PrometheusParseError(f"line {lineno}: bad label at column {pos + 1}")
        name, pos = match.group(), match.end() + 2
        value: list[str] = []
        while True:
            if pos >= len(text):
                raise PrometheusParseError(f"line {lineno}: unterminated label value")
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                value.append(_ESCAPES.get(text[pos + 1], "\\" + text[pos + 1]))
                pos += 2
            elif char == '"':
                pos += 1
                break
            else:
                value.append(char)
                pos += 1
        labels[name] = "".join(value)


def parse_text(text: str) -> list[PromSample]:
    """Every sample line of a scrape; raises PrometheusParseError naming the line on malformed input."""
    out: list[PromSample] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if not match:
            raise PrometheusParseError(f"line {lineno}: no metric name: {line[:60]!r}")
        name, pos = match.group(), match.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _labels(line, pos, lineno)
        fields = line[pos:].split()
        if not fields or len(fields) > 2:
            raise PrometheusParseError(f"line {lineno}: expected a value and an optional timestamp")
        try:
            value = float(fields[0])  # float() reads NaN, +Inf and -Inf as Prometheus writes them
            stamp = int(fields[1]) if len(fields) == 2 else None
        except ValueError:
            raise PrometheusParseError(f"line {lineno}: bad number in {line[:80]!r}") from None
        out.append(PromSample(name, labels, value, stamp))
    return out


# dcgm-exporter field -> (inferswarm metric, factor to the catalogue's unit)
DCGM_FIELDS: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("gpu_util_pct", 1.0),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("gpu_mem_ctrl_util_pct", 1.0),
    "DCGM_FI_DEV_FB_USED": ("gpu_mem_used_bytes", 1024.0 * 1024.0),  # MiB
    "DCGM_FI_DEV_GPU_TEMP": ("gpu_temp_c", 1.0),
    "DCGM_FI_DEV_POWER_USAGE": ("gpu_power_w", 1.0),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("gpu_energy_j", 1e-3),  # mJ
    "DCGM_FI_DEV_SM_CLOCK": ("gpu_sm_clock_mhz", 1.0),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("gpu_throttle_reasons", 1.0),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": ("gpu_throttle_reasons", 1.0),
}
_MIB = 1024.0 * 1024.0


def map_dcgm(scrape: Iterable[PromSample], now: float, node: str, source: str) -> list[Sample]:
    """dcgm-exporter metrics per GPU (label `gpu`), under the same names NVML sampling uses."""
    out: list[Sample] = []
    fb: dict[str, dict[str, float]] = {}
    for prom in scrape:
        gpu = prom.labels.get("gpu")
        if gpu is None or math.isnan(prom.value):
            continue
        device = f"gpu{gpu}"
        if prom.name in ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED"):
            fb.setdefault(device, {})[prom.name] = prom.value
        mapped = DCGM_FIELDS.get(prom.name)
        if mapped is not None:
            metric, factor = mapped
            value = prom.value * factor
            out.append(sample(now, node, source, device, metric, int(value) if value.is_integer() else value))
    for device, parts in fb.items():
        # total framebuffer = used + free (+ reserved where exported), as nvidia-smi counts it
        if "DCGM_FI_DEV_FB_USED" in parts and "DCGM_FI_DEV_FB_FREE" in parts:
            total = sum(parts.values()) * _MIB
            out.append(sample(now, node, source, device, "gpu_mem_total_bytes", int(total)))
    return out


class NodeExporterMapper:
    """node_exporter metrics as host samples. CPU utilization needs two scrapes (it is a rate)."""

    def __init__(self) -> None:
        self._cpu: dict[str, tuple[float, float]] = {}  # cpu -> (busy seconds, total seconds)

    def map(self, scrape: Iterable[PromSample], now: float, node: str, source: str) -> list[Sample]:
        def s(device: str, metric: str, value: float) -> Sample:
            return sample(now, node, source, device, metric, int(value) if value.is_integer() else value)

        cpu: dict[str, list[float]] = {}
        gauges: dict[str, float] = {}
        net = {"rx": 0.0, "tx": 0.0}
        disk = {"read": 0.0, "write": 0.0}
        seen_net = seen_disk = False
        for prom in scrape:
            if prom.name == "node_cpu_seconds_total" and "cpu" in prom.labels:
                busy_total = cpu.setdefault(prom.labels["cpu"], [0.0, 0.0])
                busy_total[1] += prom.value
                if prom.labels.get("mode") not in ("idle", "iowait"):
                    busy_total[0] += prom.value
            elif prom.name in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total"):
                if not prom.labels.get("device", "").startswith("lo"):
                    net["rx" if "receive" in prom.name else "tx"] += prom.value
                    seen_net = True
            elif prom.name in ("node_disk_read_bytes_total", "node_disk_written_bytes_total"):
                disk["read" if "read" in prom.name else "write"] += prom.value
                seen_disk = True
            elif not prom.labels:
                gauges[prom.name] = prom.value

        out: list[Sample] = []
        utils: list[float] = []
        per_core: list[Sample] = []
        for core in sorted(cpu, key=lambda c: int(c) if c.isdigit() else 0):
            busy, total = cpu[core]
            before = self._cpu.get(core)
            self._cpu[core] = (busy, total)
            if before is not None and total > before[1]:
                util = 100.0 * (busy - before[0]) / (total - before[1])
                utils.append(util)
                per_core.append(s(f"cpu{core}", "cpu_util_pct", round(util, 2)))
        if utils:
            out.append(s("host", "cpu_util_pct", round(sum(utils) / len(utils), 2)))
            out += per_core
        total_mem = gauges.get("node_memory_MemTotal_bytes")
        available = gauges.get("node_memory_MemAvailable_bytes")
        if total_mem is not None and available is not None:
            used = total_mem - available
            out += [
                s("host", "mem_used_bytes", used),
                s("host", "mem_total_bytes", total_mem),
                s("host", "mem_util_pct", round(100.0 * used / total_mem, 2) if total_mem else 0.0),
            ]
        if "node_memory_SwapTotal_bytes" in gauges and "node_memory_SwapFree_bytes" in gauges:
            out.append(
                s(
                    "host",
                    "swap_used_bytes",
                    gauges["node_memory_SwapTotal_bytes"] - gauges["node_memory_SwapFree_bytes"],
                )
            )
        if seen_net:
            out += [s("host", "net_rx_bytes", net["rx"]), s("host", "net_tx_bytes", net["tx"])]
        if seen_disk:
            out += [s("host", "disk_read_bytes", disk["read"]), s("host", "disk_write_bytes", disk["write"])]
        if "node_load1" in gauges:
            out.append(s("host", "load_1m", gauges["node_load1"]))
        return out


PREFIX = "inferswarm_"


def map_inferswarm(scrape: Iterable[PromSample], now: float, node: str, source: str) -> list[Sample]:
    """Samples written by `to_text` (an `inferswarm agent`'s /metrics), read back under their own names."""
    out: list[Sample] = []
    for prom in scrape:
        metric = prom.name.removeprefix(PREFIX)
        if not prom.name.startswith(PREFIX) or metric not in METRIC_UNITS or math.isnan(prom.value):
            continue
        ts = prom.timestamp_ms / 1000.0 if prom.timestamp_ms is not None else now
        value = int(prom.value) if prom.value.is_integer() else prom.value
        out.append(
            sample(
                ts,
                prom.labels.get("node", node),
                prom.labels.get("source", source),
                prom.labels.get("device", ""),
                metric,
                value,
            )
        )
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def to_text(samples: Iterable[Sample]) -> str:
    """Prometheus text for the latest samples, one family per metric with HELP/TYPE lines."""
    families: dict[str, list[Sample]] = {}
    for s in samples:
        families.setdefault(s.metric, []).append(s)
    lines: list[str] = []
    for metric in sorted(families):
        name = PREFIX + metric
        lines.append(f"# HELP {name} inferswarm telemetry {metric} ({METRIC_UNITS.get(metric, '')})")
        lines.append(f"# TYPE {name} gauge")
        for s in families[metric]:
            labels = ",".join(
                f'{k}="{_escape(v)}"'
                for k, v in (("node", s.node), ("source", s.source), ("device", s.device))
            )
            lines.append(f"{name}{{{labels}}} {s.value} {int(s.timestamp * 1000)}")
    return "\n".join(lines) + "\n"
