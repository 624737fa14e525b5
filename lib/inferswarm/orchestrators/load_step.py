"""The optional load step: a whole `inferswarm run` per orchestrator through the gateway pinned to it.

A test job says an orchestrator answers; a short closed-loop load says how much it takes. The step is
an ordinary run (its own run directory under the matrix run's `load/`, Locust's CSVs, report and
results.json) made from the orchestrator's cells that answered their test job, one `livepeer`
capability each, so its numbers mean exactly what they mean in any other run. A stop of the matrix run
stops the step the way Ctrl+C stops a run: its files are written, then the matrix run ends.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferswarm.lifeline import die_with_parent
from inferswarm.orchestrators.config import OrchestratorsConfig
from inferswarm.orchestrators.discovery import Cell
from inferswarm.rundir import ORCH_LOAD_DIR, read_run_json

STOP_GRACE_S = 120.0
"""After a stop, how long the step may take to write its files before it is killed."""


@dataclass(frozen=True)
class LoadResult:
    status: str
    requests: int | None = None
    failures: int | None = None
    failure_ratio: float | None = None
    rps: float | None = None
    success_rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    run_dir: str = ""
    note: str = ""


def capability_name(cell: Cell, taken: set[str]) -> str:
    """`<pipeline>:<model>` as a capability name (letters, digits, `_.:-`, at most 64), unique."""
    base = re.sub(r"[^A-Za-z0-9_.:-]", "_", f"{cell.pipeline}:{cell.model}")[:60]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def run_config(config: OrchestratorsConfig, orchestrator: str, cells: list[Cell], url: str) -> dict[str, Any]:
    """The run config of one orchestrator's load step."""
    assert config.load is not None
    taken: set[str] = set()
    capabilities = []
    for cell in cells:
        job = config.pipeline(cell.pipeline)
        assert job is not None
        capability = job.capability(cell.model)
        capabilities.append(
            {
                "name": capability_name(cell, taken),
                "kind": "livepeer",
                "pipeline": cell.pipeline,
                "model_id": cell.model,
                "params": capability.params,
                "files": capability.files,
            }
        )
    target: dict[str, Any] = {"base_url": url, "request_timeout_s": config.gateway.request_timeout_s}
    if config.gateway.token_env:
        target["secret_headers"] = [
            {
                "header": "Authorization",
                "env": config.gateway.token_env,
                "prefix": "Bearer ",
                "optional": True,
            }
        ]
    stage: dict[str, Any] = {"duration_s": config.load.duration_s, "users": config.load.users}
    if config.load.spawn_rate is not None:
        stage["spawn_rate"] = config.load.spawn_rate
    return {
        "name": f"load-{orchestrator.removeprefix('0x')[:12]}",
        "description": f"load step of the orchestrator matrix {config.name!r} on {orchestrator}",
        "target": target,
        "assets_dir": str(config.assets_path),
        "capabilities": capabilities,
        "load": {"shape": "stages", "stages": [stage]},
    }


def run_load_step(
    config: OrchestratorsConfig,
    orchestrator: str,
    cells: list[Cell],
    url: str,
    matrix_dir: Path,
    stop: threading.Event,
    environ: dict[str, str] | None,
) -> LoadResult:
    """Run one orchestrator's load step as a child `inferswarm run`; its headline figures."""
    base = matrix_dir / ORCH_LOAD_DIR
    base.mkdir(parents=True, exist_ok=True)
    document = run_config(config, orchestrator, cells, url)
    config_file = base / f"{document['name']}.yaml"
    config_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    before = {p.name for p in base.iterdir()}
    command = [sys.executable, "-m", "inferswarm.cli", "run", str(config_file), "--out", str(base)]
    with (base / f"{document['name']}.log").open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,  # a Ctrl+C for the matrix reaches it once, through us
            preexec_fn=die_with_parent(),
        )
        while proc.poll() is None:
            if stop.wait(0.25):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    made = sorted(p for p in base.iterdir() if p.is_dir() and p.name not in before)
    if not made:
        return LoadResult("failed", note=f"`inferswarm run` exited {proc.returncode} without a run directory")
    return read_load_result(made[-1], proc.returncode, matrix_dir)


def read_load_result(run_dir: Path, exit_code: int, matrix_dir: Path) -> LoadResult:
    record = read_run_json(run_dir) or {}
    status = str(record.get("status") or "failed")
    relative = str(run_dir.relative_to(matrix_dir))
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        total = results["summary"]["total"]
    except (OSError, ValueError, KeyError, TypeError):
        return LoadResult(status, run_dir=relative, note=f"no results.json (exit {exit_code})")

    def number(key: str) -> Any:
        value = total.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    note = "" if exit_code in (0, 3) else f"exit {exit_code}"
    return LoadResult(
        status,
        number("requests"),
        number("failures"),
        number("failure_ratio"),
        number("rps"),
        number("success_rps"),
        number("p50_ms"),
        number("p95_ms"),
        relative,
        note,
    )


def load_row(
    orchestrator: str, service_uri: str, cells: list[Cell], config: OrchestratorsConfig, result: LoadResult
) -> list[object]:
    """The run directory's load row (rundir.ORCH_LOAD_COLUMNS)."""
    assert config.load is not None

    def blank(value: object) -> object:
        return "" if value is None else value

    return [
        orchestrator,
        service_uri,
        len(cells),
        config.load.users,
        config.load.duration_s,
        result.status,
        blank(result.requests),
        blank(result.failures),
        blank(result.failure_ratio),
        blank(result.rps),
        blank(result.success_rps),
        blank(result.p50_ms),
        blank(result.p95_ms),
        result.run_dir,
        result.note,
    ]
