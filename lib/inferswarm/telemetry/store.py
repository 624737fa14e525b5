"""Where samples go on the master (or local runner): the long-form CSV, the live view, saturation.

The CSV is appended and flushed to the OS on every `flush()` (the wiring calls it each interval and at
quit), so a run killed hard keeps everything up to its last interval.
"""

from __future__ import annotations

import csv
import math
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from inferswarm.telemetry.samples import COLUMNS, Sample


def _cell(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(round(value, 6)) if math.isfinite(value) else ""


class TelemetryCsv:
    """`PREFIX_telemetry.csv`: timestamp,node,source,device,metric,value,unit (epoch s, ms precision)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._handle: IO[str] | None = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(COLUMNS)
        self._handle.flush()

    def write(self, samples: Iterable[Sample]) -> None:
        if self._handle is None:
            return
        for s in samples:
            self._writer.writerow(
                (f"{s.timestamp:.3f}", s.node, s.source, s.device, s.metric, _cell(s.value), s.unit)
            )
            self.rows += 1

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            self._handle.close()
            self._handle = None


Key = tuple[str, str, str, str]  # node, source, device, metric


class LiveView:
    """The latest value of every series, plus a bounded history for live charts."""

    def __init__(self, history_points: int = 3600) -> None:
        self.latest: dict[Key, Sample] = {}
        self.history: dict[Key, deque[tuple[float, float]]] = {}
        self._points = history_points

    def add(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            key = (s.node, s.source, s.device, s.metric)
            self.latest[key] = s
            series = self.history.get(key)
            if series is None:
                series = self.history[key] = deque(maxlen=self._points)
            series.append((s.timestamp, s.value))

    def nodes(self) -> list[str]:
        return sorted({key[0] for key in self.latest})

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [
            {
                "node": s.node,
                "source": s.source,
                "device": s.device,
                "metric": s.metric,
                "value": s.value,
                "unit": s.unit,
                "age_s": round(max(0.0, now - s.timestamp), 1),
            }
            for _, s in sorted(self.latest.items())
        ]

    def series(self, metrics: Iterable[str], since: float = 0.0) -> list[dict[str, Any]]:
        wanted = set(metrics)
        out = []
        for key, points in sorted(self.history.items()):
            if key[3] not in wanted:
                continue
            kept = [p for p in points if p[0] > since]
            if kept:
                out.append(
                    {
                        "node": key[0],
                        "source": key[1],
                        "device": key[2],
                        "metric": key[3],
                        "t": [p[0] for p in kept],
                        "v": [p[1] for p in kept],
                    }
                )
        return out


class SaturationTracker:
    """Flags load-generating processes whose CPU passed the threshold, or whose open-loop sends fell more
    than `lag_threshold_ms` behind their schedule: their numbers are suspect."""

    def __init__(self, threshold_pct: float, lag_threshold_ms: float = 10.0) -> None:
        self.threshold_pct = threshold_pct
        self.lag_threshold_ms = lag_threshold_ms
        self.nodes: dict[str, dict[str, Any]] = {}
        self.behind: dict[str, dict[str, Any]] = {}
        """Per generator node that fell behind its send schedule: when, how often, the worst lag."""

    def check(self, samples: Iterable[Sample]) -> list[Sample]:
        """Returns a `generator_saturated` sample per saturated reading (`generator_behind` per reading of a
        schedule lag past its threshold), and records it.

        The master sends no load, so only local runners and workers count as generators.
        """
        flagged: list[Sample] = []
        for s in samples:
            if s.metric == "schedule_lag_ms" and s.value > self.lag_threshold_ms:
                self._record(self.behind, s, "peak_lag_ms")
                flagged.append(s._replace(metric="generator_behind", value=1, unit="flag"))
                continue
            if s.metric != "process_cpu_pct" or s.node.startswith("master@") or s.value <= self.threshold_pct:
                continue
            self._record(self.nodes, s, "peak_cpu_pct")
            flagged.append(s._replace(metric="generator_saturated", value=1, unit="flag"))
        return flagged

    @property
    def saturated(self) -> bool:
        return bool(self.nodes)

    @staticmethod
    def _record(nodes: dict[str, dict[str, Any]], s: Sample, peak: str) -> None:
        entry = nodes.setdefault(
            s.node, {"first_epoch_s": s.timestamp, "last_epoch_s": s.timestamp, "samples": 0, peak: s.value}
        )
        entry["last_epoch_s"] = max(entry["last_epoch_s"], s.timestamp)
        entry["samples"] += 1
        entry[peak] = max(entry[peak], s.value)

    def summary(self) -> dict[str, Any]:
        return {
            "threshold_cpu_pct": self.threshold_pct,
            "saturated": self.saturated,
            "nodes": self.nodes,
            "lag_threshold_ms": self.lag_threshold_ms,
            "behind_schedule": self.behind,
        }
