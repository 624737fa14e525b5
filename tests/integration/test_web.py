"""The Locust web UI path: capabilities appear in the class picker and can be chosen by name."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from inferswarm.cli import ReferenceTarget, free_port, wait_for_http
from tests.conftest import base_config
from tests.integration.http import request
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration


def test_class_picker_runs_only_the_chosen_capability(
    start_target: Callable[[dict[str, Any]], ReferenceTarget],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    target = start_target({})
    config = write_config(
        base_config(
            target={"base_url": target.url},
            capabilities=[
                {
                    "name": "prompt-enhance",
                    "kind": "json",
                    "path": "/prompt-enhance",
                    "params": {"prompt": "x"},
                },
                {"name": "gpu-check", "kind": "json", "path": "/gpu-check"},
            ],
            load={"shape": "ramp", "step_users": 2, "step_duration_s": 30, "max_users": 2, "per_user_rps": 5},
        )
    )
    port = free_port()
    out = tmp_path / "results"
    proc = inferswarm(
        "run", str(config), "--web", "--out", str(out), "--", "--web-port", str(port), "--class-picker"
    )
    try:
        ui = f"http://127.0.0.1:{port}"
        assert wait_for_http(f"{ui}/", 30), "web UI did not come up"
        _, _, page = request(f"{ui}/", "GET")
        assert b'"gpu-check"' in page and b'"prompt-enhance"' in page and b'"RampShape"' in page

        form = urlencode([("user_classes", "gpu-check"), ("shape_class", "RampShape"), ("host", target.url)])
        status, _, body = request(
            f"{ui}/swarm", body=form.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 200 and json.loads(body)["success"] is True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, _, raw = request(f"{ui}/stats/requests", "GET")
            names = {s["name"]: s["num_requests"] for s in json.loads(raw)["stats"]}
            if names.get("gpu-check", 0) >= 5:
                break
            time.sleep(0.5)
        assert names.get("gpu-check", 0) >= 5 and "prompt-enhance" not in names
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    run_dir = only_run_dir(out)
    assert {r["Name"] for r in read_csv(run_dir / "locust_stats.csv")} == {"gpu-check", "Aggregated"}
    run = read_json(run_dir / "run.json")
    assert run["headless"] is False and run["status"] == "interrupted"
    assert read_csv(run_dir / "locust_stages.csv")[0]["users"] == "2"
