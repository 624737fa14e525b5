"""Tensor runs against the reference target's tensor server: a sizes sweep with a known simulated compute
time per size, the overhead arithmetic per request, and seed 003's multipart /execute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

FIXED_MS, PER_MB_MS = 8.0, 4.0


def run(tmp_path: Path, capabilities: list[dict[str, Any]], load: dict[str, Any]) -> Path:
    target = tmp_path / "target.yaml"
    target.write_text(
        yaml.safe_dump(
            {
                "slots": 8,
                "queue_depth": 8,
                "tensor": {
                    "models": [{"name": "double", "operation": "double"}],
                    "gpu_ms_fixed": FIXED_MS,
                    "gpu_ms_per_mb": PER_MB_MS,
                },
            }
        )
    )
    config = tmp_path / "tensor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tensor-test",
                "target": {"base_url": "http://127.0.0.1:9", "request_timeout_s": 10},
                "capabilities": capabilities,
                "load": load,
            }
        )
    )
    proc = inferswarm("run", str(config), "--serve-target", str(target), "--out", str(tmp_path / "out"))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    return only_run_dir(tmp_path / "out")


def test_a_sizes_sweep_separates_compute_from_overhead_per_request(tmp_path: Path) -> None:
    run_dir = run(
        tmp_path,
        [
            {
                "name": "double",
                "kind": "tensor",
                "model": "double",
                "binary": True,
                "operation": "double",
                "input": {"datatype": "FP32", "shape": [32, 32]},
                "sizes": [[32, 32], [512, 512]],
                "server_timing": {"header": "Server-Timing", "metric": "compute"},
            }
        ],
        {"shape": "sizes", "users": 1, "step_duration_s": 2},
    )
    # each size ran alone, in its own stage
    stages = read_csv(run_dir / "locust_stages.csv")
    assert [s["name"] for s in stages] == ["32x32", "512x512"]
    log = pq.read_table(run_dir / "locust_requests.parquet").to_pandas()
    assert set(log["capability"]) == {"double@32x32", "double@512x512"}
    for name, frame in log.groupby("capability"):
        stage = stages[0] if name == "double@32x32" else stages[1]
        sent = frame["send_epoch_s"]
        assert (
            sent.min() >= float(stage["start_epoch_s"]) - 0.5
            and sent.max() <= float(stage["end_epoch_s"]) + 0.5
        )
    assert log["ok"].all()
    # the server said its time on every request: the simulated GPU time plus the real numpy time
    elements = {"double@32x32": 32 * 32, "double@512x512": 512 * 512}
    for name, frame in log.groupby("capability"):
        simulated = FIXED_MS + PER_MB_MS * elements[name] * 4 / 2**20
        assert frame["server_ms"].notna().all()
        assert abs(float(frame["server_ms"].median()) - simulated) < 1.0, (name, frame["server_ms"].median())
        assert (frame["bytes_sent"] > elements[name] * 4).all()  # the binary tensor and its JSON header
    results = read_json(run_dir / "results.json")
    sizes = {s["capability"]: s for s in results["tensor"]["sizes"]}
    for name, frame in log.groupby("capability"):
        overhead = frame["response_ms"] - frame["server_ms"]
        figures = sizes[name]
        assert figures["successes"] == len(frame) and figures["timed_by_server"] == len(frame)
        assert figures["overhead_p50_ms"] == pytest.approx(float(np.median(overhead)), abs=1e-3)
        assert figures["server_p50_ms"] == pytest.approx(float(frame["server_ms"].median()), abs=1e-3)
        assert figures["overhead_p50_ms"] >= 0 and figures["cpu_baseline_ms"] > 0
    stats = {r["Name"]: r for r in read_csv(run_dir / "locust_stats.csv")}
    assert int(stats["double@512x512:server_ms"]["Request Count"]) == len(
        log[log["capability"] == "double@512x512"]
    )
    assert "## Tensor sizes" in (run_dir / "summary.md").read_text()
    assert "tensor_overhead" in results["figures"]


def test_seed_003s_execute_route_with_its_json_timing_header(tmp_path: Path) -> None:
    run_dir = run(
        tmp_path,
        [
            {
                "name": "execute",
                "kind": "tensor",
                "protocol": "multipart",
                "path": "/execute",
                "operation": "double",
                "input": {"datatype": "FP32", "shape": [64, 64]},
                "expect_bytes": "auto",
                "server_timing": {"json_header": "X-Genie-Server-Timing", "key": "total_ms"},
            }
        ],
        {"shape": "stages", "stages": [{"duration_s": 2, "users": 1}]},
    )
    results = read_json(run_dir / "results.json")
    assert (
        results["summary"]["execute"]["failure_ratio"] == 0 and results["summary"]["execute"]["requests"] > 5
    )
    [size] = results["tensor"]["sizes"]
    assert size["timed_by_server"] == size["successes"] > 0
    assert size["server_p50_ms"] >= FIXED_MS
    assert (
        json.loads((run_dir / "run.json").read_text())["capabilities_info"]["execute"]["protocol"]
        == "multipart"
    )
