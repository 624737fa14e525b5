"""The Locust web UI path: capabilities appear in the class picker and can be chosen by name; the
telemetry tab, live chart page and its JSON are served while the run goes on."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from inferswarm.emulator.launcher import ReferenceTarget, free_port, wait_for_http
from tests.conftest import base_config
from tests.integration.http import request
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration


def check_telemetry_pages(ui: str) -> None:
    """The Telemetry tab, the live chart page, its JSON, its chart library (served locally) and the CSV."""
    _, _, page = request(f"{ui}/", "GET")
    assert b'"inferswarm-telemetry"' in page and b"Telemetry" in page

    _, _, raw = request(f"{ui}/stats/requests", "GET")
    (tab,) = json.loads(raw)["extended_stats"]
    assert tab["key"] == "inferswarm-telemetry"
    cpu = [r for r in tab["data"] if r["metric"] == "cpu_util_pct" and r["device"] == "host"]
    assert cpu and cpu[0]["node"].startswith("local@") and 0 <= cpu[0]["value"] <= 100

    status, _, html = request(f"{ui}/inferswarm/telemetry", "GET")
    assert status == 200 and b'<script src="/inferswarm/plotly.min.js">' in html
    assert b"https://" not in html  # no CDN: the page works on an air-gapped lab network
    status, _, js = request(f"{ui}/inferswarm/plotly.min.js", "GET")
    assert status == 200 and len(js) > 1_000_000 and b"plotly" in js[:2000].lower()

    _, _, raw = request(f"{ui}/inferswarm/telemetry.json?since=0", "GET")
    data = json.loads(raw)
    assert any(n.startswith("local@") for n in data["nodes"])
    assert {s["metric"] for s in data["series"]} >= {"cpu_util_pct", "process_cpu_pct", "mem_util_pct"}
    assert max(data["load"]["users"]) == 2 and len(data["load"]["t"]) == len(data["load"]["rps"])
    # asking again from the newest time returns only what is newer
    _, _, raw = request(f"{ui}/inferswarm/telemetry.json?since={data['now']}", "GET")
    assert all(t > data["now"] for s in json.loads(raw)["series"] for t in s["t"])

    status, _, csv_body = request(f"{ui}/inferswarm/telemetry.csv", "GET")
    assert status == 200 and csv_body.startswith(b"timestamp,node,source,device,metric,value,unit\n")
    check_charts_render(ui, has_gpu=any(s["metric"] == "gpu_util_pct" for s in data["series"]))


def check_charts_render(ui: str, has_gpu: bool) -> None:
    """The chart page in a real headless Chromium: its script runs and draws the four charts."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return  # .ci/run installs Chromium; without it the page's HTTP side is still checked above
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{ui}/inferswarm/telemetry",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert dom.count('class="main-svg"') >= 8  # plotly draws two SVG layers per chart
    for title in ("Throughput and users", "GPU utilization (%) and power (W)", "Host CPU and load-generator"):
        assert title in dom
    assert "requests/s" in dom and "node(s): local@" in dom
    assert ("no GPU samples" in dom) is not has_gpu


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
        check_telemetry_pages(ui)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    run_dir = only_run_dir(out)
    names_in_csv = {r["Name"] for r in read_csv(run_dir / "locust_stats.csv")}
    assert names_in_csv == {"gpu-check", "gpu-check:ok", "Aggregated"}
    run = read_json(run_dir / "run.json")
    assert run["headless"] is False and run["status"] == "interrupted"
    assert read_csv(run_dir / "locust_stages.csv")[0]["users"] == "2"
