"""The run directory and its `run.json`: what ran, where, with which versions, and how it ended.

run.json is rewritten atomically (write then rename), so a reader never sees half a file, and it never
holds a secret: the config is dumped with credential-looking headers masked, and any secret value
that still appears anywhere is replaced as a last line of defence.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from inferswarm.config import RunConfig
from inferswarm.secrets import is_sensitive_header

MASK = "***"
RUN_JSON = "run.json"
CSV_PREFIX_NAME = "locust"


def make_run_dir(base: Path, name: str, now: datetime | None = None) -> Path:
    """Create `base/<UTC timestamp>-<name>/`; a numeric suffix keeps two runs in one second apart."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        suffix = f"-{attempt + 1}" if attempt else ""
        candidate = base / f"{stamp}-{name}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"cannot create a run directory under {base}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {
        "inferswarm": _version("inferswarm"),
        "locust": _version("locust"),
        "gevent": _version("gevent"),
        "python": platform.python_version(),
    }


def host_info() -> dict[str, Any]:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": psutil.virtual_memory().total,
    }


def masked_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data, credential-looking header values replaced by a mask."""
    data: dict[str, Any] = config.model_dump(mode="json")
    data["target"]["headers"] = {
        k: (MASK if is_sensitive_header(k) else v) for k, v in data["target"]["headers"].items()
    }
    for cap in data["capabilities"]:
        cap["headers"] = {k: (MASK if is_sensitive_header(k) else v) for k, v in cap["headers"].items()}
    return data


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every occurrence of a secret string anywhere in a JSON-like value."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def end_fields(
    data: dict[str, Any], status: str, exit_code: int | None, epoch_s: float | None = None
) -> dict[str, Any]:
    """The fields that close a run.json, its duration measured from the recorded start."""
    now = time.time() if epoch_s is None else epoch_s
    start = data.get("start_epoch_s")
    return {
        "status": status,
        "exit_code": exit_code,
        "ended_at": iso(now),
        "end_epoch_s": round(now, 3),
        "duration_s": round(now - start, 3) if isinstance(start, int | float) else None,
    }


class RunRecord:
    """Keeps run.json in step with the run: written at start, updated at the end."""

    def __init__(self, run_dir: Path, config: RunConfig, secrets: Iterable[str] = ()) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RUN_JSON
        self._secrets = list(secrets)
        self.data: dict[str, Any] = {
            "schema": 1,
            "name": config.name,
            "description": config.description,
            "config_file": str(config.source) if config.source else None,
            "config": masked_config(config),
            "versions": versions(),
            "host": host_info(),
            "command": [MASK if any(s and s in a for s in self._secrets) else a for a in sys.argv],
            "pid": os.getpid(),
            "status": "running",
            "started_at": None,
            "start_epoch_s": None,
            "ended_at": None,
            "end_epoch_s": None,
            "duration_s": None,
            "exit_code": None,
            "files": {},
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def start(self, epoch_s: float | None = None, **fields: Any) -> None:
        now = time.time() if epoch_s is None else epoch_s
        self.update(started_at=iso(now), start_epoch_s=round(now, 3), **fields)

    def end(self, status: str, exit_code: int | None, epoch_s: float | None = None, **fields: Any) -> None:
        self.update(**end_fields(self.data, status, exit_code, epoch_s), **fields)

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, scrub(self.data, self._secrets))


def read_run_json(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
