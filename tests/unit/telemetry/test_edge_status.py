"""A Groundlight edge endpoint's `/status/metrics.json` as telemetry: the document's mapping, a poll
over loopback HTTP of a real-shaped document, the reference target's own page, and the config."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inferswarm.config import ConfigError, parse_config
from inferswarm.locust.listeners.telemetry import build_pollers
from inferswarm.telemetry.edge_status import EdgeStatusPoller, map_edge_status, status_url
from inferswarm.telemetry.remote import PollError
from tests.conftest import base_config
from tests.unit.emulator.conftest import instant_settings, serve

GIB = 2**30
# The shape groundlight/edge-endpoint's status monitor returns (app/metrics/system_metrics.py and
# metricreporting.py): `memory_available_bytes` is psutil's total; JSON-string sub-documents.
REAL_SHAPED: dict[str, Any] = {
    "device_info": {
        "device_id": "device-abc",
        "device_metadata": {},
        "now": "2026-01-01T00:00:00",
        "cpucores": 16,
        "inference_flavor": "GPU",
        "cpu_utilization": 37.5,
        "memory_utilization": 25.0,
        "memory_available_bytes": 64 * GIB,
    },
    "activity_metrics": {"last_activity_time": None, "num_detectors_lifetime": 2},
    "detector_details": json.dumps({"det_a": {"mode": "BINARY"}}),
    "k3s_stats": {
        "deployments": "['edge/edge-endpoint']",
        "pod_statuses": json.dumps(
            {"edge-endpoint-0": "Running", "inferencemodel-primary-det-a": "Running", "inf-b": "Pending"}
        ),
        "container_images": "{}",
    },
    "failed_escalations": {},
}


def test_device_info_becomes_host_samples() -> None:
    got = {
        (s.node, s.source, s.device, s.metric): (s.value, s.unit)
        for s in map_edge_status(REAL_SHAPED, 5.0, "edge")
    }
    key = ("edge", "edge-status", "host")
    assert got == {
        (*key, "cpu_util_pct"): (37.5, "%"),
        (*key, "mem_util_pct"): (25, "%"),
        (*key, "mem_total_bytes"): (64 * GIB, "bytes"),
        (*key, "mem_used_bytes"): (16 * GIB, "bytes"),
        (*key, "edge_pods_total"): (3, "count"),
        (*key, "edge_pods_running"): (2, "count"),
    }


def test_failed_readings_are_skipped_and_a_wrong_document_is_an_error() -> None:
    # SafeMetricsDict puts {"error": ...} where one reading failed; the others still count
    info = {**REAL_SHAPED["device_info"], "cpu_utilization": {"error": "boom"}, "memory_utilization": True}
    doc = {"device_info": info, "k3s_stats": {"pod_statuses": {"error": "no cluster"}}}
    assert [(s.metric, s.value) for s in map_edge_status(doc, 1.0, "e")] == [("mem_total_bytes", 64 * GIB)]
    for bad in ([], {"device_info": "x"}, {"status": "ok"}):
        with pytest.raises(PollError):
            map_edge_status(bad, 1.0, "e")


@pytest.fixture
def status_page() -> Iterator[tuple[str, dict[str, bytes]]]:
    pages = {"/status/metrics.json": json.dumps(REAL_SHAPED).encode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b'{"detail": "Not Found"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        thread.join(5)


def test_poll_over_loopback_and_a_source_that_goes_down(status_page: tuple[str, dict[str, bytes]]) -> None:
    base, pages = status_page
    poller = EdgeStatusPoller(None, status_url(base, "http://unused:1"), timeout_s=5)
    assert poller.url == f"{base}/status/metrics.json" and poller.name == f"edge@{base[7:]}"
    got = {(s.metric, s.value) for s in poller.poll(100.0)}
    assert got >= {("cpu_util_pct", 37.5), ("mem_util_pct", 25), ("source_up", 1)}
    assert len(got) == 7
    pages["/status/metrics.json"] = b"<html>status</html>"
    assert [(s.metric, s.value) for s in poller.poll(101.0)] == [("source_up", 0)]
    del pages["/status/metrics.json"]
    assert [(s.metric, s.value) for s in poller.poll(102.0)] == [("source_up", 0)]
    assert poller.down_reason == "HTTP 404"


def test_the_reference_targets_status_page() -> None:
    settings = instant_settings(
        edge={"detectors": [{"id": "det_a", "mode": "BINARY", "online_after_s": 0}], "ready_after_s": 0}
    )
    with serve(settings) as target:
        samples = EdgeStatusPoller("edge", status_url("/status/metrics.json", target.url), 5).poll()
    got = {s.metric: s.value for s in samples}
    assert 0 <= got["cpu_util_pct"] <= 100 and 0 < got["mem_util_pct"] <= 100
    assert got["mem_total_bytes"] > 0 and 0 < got["mem_used_bytes"] < got["mem_total_bytes"]
    assert got["source_up"] == 1


def test_sources_from_config() -> None:
    data = base_config(
        target={"base_url": "http://127.0.0.1:30101"},
        telemetry={
            "edge_status": [
                {},
                {"url": "http://edge-box:30101", "name": "edge-box"},
                {"url": "http://edge-box:8123/status/metrics.json"},
            ]
        },
    )
    pollers = build_pollers(parse_config(data), {}, "http://127.0.0.1:4444")
    assert [(p.name, p.url, p.source) for p in pollers] == [
        ("edge@127.0.0.1:4444", "http://127.0.0.1:4444/status/metrics.json", "edge-status"),  # --host
        ("edge-box", "http://edge-box:30101/status/metrics.json", "edge-status"),
        ("edge@edge-box:8123", "http://edge-box:8123/status/metrics.json", "edge-status"),
    ]
    assert all(p.timeout_s == 3.0 for p in pollers)  # the real page takes a second to sample CPU
    for bad, problem in (("ftp://x/status", "must start with http"), ("/a b", "spaces")):
        with pytest.raises(ConfigError, match=problem) as caught:
            parse_config(base_config(telemetry={"edge_status": [{"url": bad}]}))
        assert caught.value.field == "telemetry.edge_status[0].url"
