"""Telemetry from a real Prometheus exporter: Debian's prometheus-node-exporter on a loopback port,
scraped by the Prometheus source alone and inside a real run, compared with what /proc says."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inferswarm.emulator.launcher import free_port, wait_for_http
from inferswarm.telemetry.remote import PrometheusPoller
from tests.conftest import base_config
from tests.integration.runs import inferswarm, only_run_dir, read_csv, read_json

pytestmark = pytest.mark.integration

BINARY = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    if BINARY is None:
        pytest.skip("prometheus-node-exporter is not installed here (.ci/run installs Debian's package)")
    port = free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.netdev",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{url}/metrics", 15, proc), "node_exporter did not answer"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_real_exporters_text_parses_into_host_samples(node_exporter: str) -> None:
    poller = PrometheusPoller("node", f"{node_exporter}/metrics", 5)
    first = {(s.device, s.metric): s.value for s in poller.poll()}
    time.sleep(1.1)
    second = {(s.device, s.metric): s.value for s in poller.poll()}
    assert first[("source", "source_up")] == second[("source", "source_up")] == 1
    # the same machine, read by the exporter and by psutil: memory and load agree
    total = psutil.virtual_memory().total
    assert second[("host", "mem_total_bytes")] == pytest.approx(total, rel=0.01)
    assert 0 < second[("host", "mem_used_bytes")] < total
    assert second[("host", "load_1m")] == pytest.approx(os.getloadavg()[0], abs=1.0)
    # CPU utilisation is a rate: none from the first scrape, every core's from the second
    assert ("host", "cpu_util_pct") not in first
    assert 0 <= second[("host", "cpu_util_pct")] <= 100
    cores = [d for d, m in second if m == "cpu_util_pct" and d.startswith("cpu")]
    assert len(cores) == psutil.cpu_count()
    assert second[("host", "net_rx_bytes")] > 0


def test_a_run_records_the_exporters_samples(node_exporter: str, tmp_path: Path) -> None:
    from inferswarm.emulator.launcher import ReferenceTarget

    with ReferenceTarget(None) as target:
        config = tmp_path / "c.yaml"
        import yaml

        config.write_text(
            yaml.safe_dump(
                base_config(
                    target={"base_url": target.url, "request_timeout_s": 10},
                    capabilities=[{"name": "gpu-check", "kind": "json", "path": "/gpu-check", "params": {}}],
                    load={"shape": "stages", "per_user_rps": 5, "stages": [{"duration_s": 3, "users": 1}]},
                    telemetry={"prometheus": [{"url": f"{node_exporter}/metrics", "name": "gpu-server"}]},
                )
            )
        )
        proc = inferswarm("run", str(config), "--out", str(tmp_path / "out"), "--no-preflight")
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "out")
    rows = [r for r in read_csv(run_dir / "locust_telemetry.csv") if r["node"] == "gpu-server"]
    metrics = {r["metric"] for r in rows if r["source"] == "node_exporter"}
    assert {"cpu_util_pct", "mem_used_bytes", "load_1m"} <= metrics
    assert {s["kind"] for s in read_json(run_dir / "run.json")["telemetry"]["sources"]} == {"prometheus"}
