"""Check results in seed 003's structured JSON, a console table and a markdown table.

    {"test_info": {"hostname", "timestamp", "test_type", "target", "inferswarm_version"},
     "tests": [{"name", "status", "details", "timing_ms", "timestamp"}, ...],
     "summary": {"passed", "failed", "warned", "skipped"}}

`details` is text: JSON text when the check has structured facts (as seed 003's gpu_detection), else a
sentence. PASS and WARN and SKIP do not fail a run; FAIL does.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"


TEST_KEYS = ("name", "status", "details", "timing_ms", "timestamp")
"""The keys of every entry of `tests` (seed 003's)."""
TEST_INFO_KEYS = ("hostname", "timestamp", "test_type", "target", "inferswarm_version")
CHECKS_JSON = "checks.json"
DETAILS_TABLE_CHARS = 100
"""Details longer than this are cut in the console and markdown tables (checks.json keeps them)."""


def iso_now(epoch_s: float | None = None) -> str:
    moment = datetime.now(UTC) if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="seconds")


def details_json(facts: Mapping[str, Any]) -> str:
    """Structured details as JSON text (seed 003 puts JSON in a string)."""
    return json.dumps(dict(facts), sort_keys=False, default=str)


@dataclass(frozen=True)
class Check:
    """One check's result."""

    name: str
    status: Status
    details: str
    timing_ms: float = 0.0
    timestamp: str = field(default_factory=iso_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "details": self.details,
            "timing_ms": round(self.timing_ms, 1),
            "timestamp": self.timestamp,
        }

    def one_line(self) -> str:
        return f"{self.name} {self.status.value}: {self.details}"


def _version() -> str:
    from inferswarm import __version__

    return __version__


@dataclass
class CheckReport:
    """Every check of one `inferswarm check` (or a run's preflight), in the order they ran."""

    target: str
    tests: list[Check] = field(default_factory=list)
    test_type: str = "client_side"
    hostname: str = field(default_factory=socket.gethostname)
    timestamp: str = field(default_factory=iso_now)

    def add(self, checks: Iterable[Check]) -> None:
        self.tests.extend(checks)

    def count(self, status: Status) -> int:
        return sum(1 for t in self.tests if t.status is status)

    @property
    def failed(self) -> list[Check]:
        return [t for t in self.tests if t.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        """No check failed (WARN and SKIP do not fail)."""
        return not self.failed

    def summary(self) -> dict[str, int]:
        return {
            "passed": self.count(Status.PASS),
            "failed": self.count(Status.FAIL),
            "warned": self.count(Status.WARN),
            "skipped": self.count(Status.SKIP),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_info": {
                "hostname": self.hostname,
                "timestamp": self.timestamp,
                "test_type": self.test_type,
                "target": self.target,
                "inferswarm_version": _version(),
            },
            "tests": [t.to_dict() for t in self.tests],
            "summary": self.summary(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        """The console table: status, name, milliseconds, details (cut), then the summary line."""
        return "\n".join(console_table(self.to_dict())) + "\n"


def _cut(text: str, width: int = DETAILS_TABLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _rows(data: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for test in data.get("tests") or []:
        if not isinstance(test, Mapping):
            continue
        ms = test.get("timing_ms")
        rows.append(
            (
                str(test.get("status", "?")),
                str(test.get("name", "?")),
                f"{ms:.1f}" if isinstance(ms, int | float) else "",
                _cut(str(test.get("details", ""))),
            )
        )
    return rows


def summary_line(data: Mapping[str, Any]) -> str:
    s = data.get("summary") or {}
    return (
        f"{s.get('passed', 0)} passed, {s.get('failed', 0)} failed, "
        f"{s.get('warned', 0)} warned, {s.get('skipped', 0)} skipped"
    )


def console_table(data: Mapping[str, Any]) -> list[str]:
    header = ("STATUS", "CHECK", "MS", "DETAILS")
    rows = _rows(data)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
        )
    return [*lines, summary_line(data)]


def markdown_table(data: Mapping[str, Any]) -> list[str]:
    """A summary.md section: "## Preflight checks", a table, the summary line. Empty without tests."""
    rows = _rows(data)
    if not rows:
        return []
    lines = ["", "## Preflight checks", "", "| status | check | ms | details |", "|---|---|---|---|"]
    for status, name, ms, details in rows:
        lines.append(f"| {status} | {name} | {ms} | {details.replace('|', '/')} |")
    return [*lines, "", summary_line(data) + f" (`{CHECKS_JSON}`)."]


def preflight_markdown(run_dir: Path) -> str:
    """summary.md's "Preflight checks" section from the run directory's checks.json ("" without one)."""
    try:
        data = json.loads((run_dir / CHECKS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    lines = markdown_table(data) if isinstance(data, dict) else []
    return "\n".join(lines) + "\n" if lines else ""
