"""Prometheus text parsing and the dcgm-exporter / node_exporter / inferswarm mappings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from inferswarm.telemetry.prometheus import (
    NodeExporterMapper,
    PrometheusParseError,
    map_dcgm,
    map_inferswarm,
    parse_text,
    to_text,
)
from inferswarm.telemetry.samples import METRIC_UNITS, Sample

DATA = Path(__file__).with_name("data")
DCGM = (DATA / "dcgm-exporter.prom").read_text()
NODE = (DATA / "node-exporter.prom").read_text()
MIB = 1024 * 1024


def values(samples: list[Sample]) -> dict[tuple[str, str], float]:
    return {(s.device, s.metric): s.value for s in samples}


def test_parses_every_sample_line_with_labels() -> None:
    scrape = parse_text(DCGM)
    assert len(scrape) == 24  # 12 families x 2 GPUs; comments skipped
    first = scrape[0]
    assert first.name == "DCGM_FI_DEV_SM_CLOCK" and first.value == 1980 and first.timestamp_ms is None
    assert first.labels["gpu"] == "0" and first.labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert first.labels["pci_bus_id"] == "00000000:18:00.0"
    node = parse_text(NODE)
    assert math.isnan(node[-1].value) and node[-1].labels == {"collector": "netclass"}
    assert [p.value for p in node if p.name == "node_memory_MemTotal_bytes"] == [33_445_339_136]


def test_escapes_timestamps_and_special_values() -> None:
    text = 'm{path="C:\\\\dir",q="say \\"hi\\"",nl="a\\nb",} +Inf 1700000000123\nplain -3.5e-1\nneg -Inf\n'
    a, b, c = parse_text(text)
    assert a.labels == {"path": "C:\\dir", "q": 'say "hi"', "nl": "a\nb"}
    assert a.value == math.inf and a.timestamp_ms == 1_700_000_000_123
    assert (b.name, b.labels, b.value) == ("plain", {}, -0.35)
    assert c.value == -math.inf


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ok 1\n{x} 1\n", "line 2: no metric name"),
        ('m{a="1" 2\n', "line 1: bad label"),
        ('m{a="unterminated} 2\n', "line 1: unterminated label value"),
        ("m one\n", "line 1: bad number"),
        ("m\n", "line 1: expected a value"),
        ("m 1 2 3\n", "line 1: expected a value"),
    ],
)
def test_malformed_lines_are_named(text: str, problem: str) -> None:
    with pytest.raises(PrometheusParseError, match=problem):
        parse_text(text)


def test_dcgm_maps_to_nvml_names_and_units() -> None:
    samples = map_dcgm(parse_text(DCGM), 1000.0, "gpu-node-1", "dcgm")
    got = values(samples)
    assert got[("gpu0", "gpu_util_pct")] == 97 and got[("gpu1", "gpu_util_pct")] == 0
    assert got[("gpu0", "gpu_mem_ctrl_util_pct")] == 41
    assert got[("gpu0", "gpu_mem_used_bytes")] == 77221 * MIB
    # total framebuffer = used + free + reserved
    assert got[("gpu0", "gpu_mem_total_bytes")] == (77221 + 3411 + 623) * MIB
    assert got[("gpu1", "gpu_mem_total_bytes")] == (0 + 80632 + 623) * MIB
    assert got[("gpu0", "gpu_temp_c")] == 58 and got[("gpu0", "gpu_power_w")] == pytest.approx(512.347)
    assert got[("gpu0", "gpu_energy_j")] == pytest.approx(182_734_559.812)  # from mJ
    assert got[("gpu0", "gpu_sm_clock_mhz")] == 1980 and got[("gpu0", "gpu_throttle_reasons")] == 4
    assert ("gpu0", "DCGM_FI_DEV_XID_ERRORS") not in got  # unmapped fields are not invented names
    assert {s.metric for s in samples} <= set(METRIC_UNITS)
    assert all(s.unit == METRIC_UNITS[s.metric] and s.node == "gpu-node-1" for s in samples)


def test_node_exporter_cpu_needs_two_scrapes() -> None:
    mapper = NodeExporterMapper()
    first = values(mapper.map(parse_text(NODE), 1.0, "n", "node_exporter"))
    assert ("host", "cpu_util_pct") not in first  # a rate needs a previous scrape
    assert first[("host", "mem_total_bytes")] == 33_445_339_136
    assert first[("host", "mem_used_bytes")] == 33_445_339_136 - 24_696_061_952
    assert first[("host", "mem_util_pct")] == pytest.approx(26.16, abs=0.01)
    assert first[("host", "swap_used_bytes")] == 2**30
    assert first[("host", "net_rx_bytes")] == 987_654_321 + 1_200_000  # loopback excluded
    assert first[("host", "net_tx_bytes")] == 123_456_789
    assert first[("host", "disk_read_bytes")] == 4_567_800_000 and first[("host", "load_1m")] == 1.37

    later = (
        NODE.replace('cpu="0",mode="idle"} 1000', 'cpu="0",mode="idle"} 1060')
        .replace('cpu="0",mode="user"} 300', 'cpu="0",mode="user"} 330')
        .replace('cpu="0",mode="system"} 85', 'cpu="0",mode="system"} 95')
        .replace('cpu="1",mode="idle"} 1200', 'cpu="1",mode="idle"} 1290')
        .replace('cpu="1",mode="user"} 150', 'cpu="1",mode="user"} 160')
    )
    second = values(mapper.map(parse_text(later), 2.0, "n", "node_exporter"))
    assert second[("cpu0", "cpu_util_pct")] == 40.0  # 40 busy of 100 s
    assert second[("cpu1", "cpu_util_pct")] == 10.0
    assert second[("host", "cpu_util_pct")] == 25.0


def test_agent_metrics_round_trip() -> None:
    original = [
        Sample(1700000000.5, "agent@gpu-1", "nvml", "gpu0", "gpu_util_pct", 88, "%"),
        Sample(1700000000.5, "agent@gpu-1", "nvml", "gpu0/pid7", "gpu_process_mem_bytes", 2**33, "bytes"),
        Sample(1700000000.5, "agent@gpu-1", "host", "host", "load_1m", 2.25, "load"),
        Sample(1700000000.5, 'we"ird\\node', "host", "host", "mem_util_pct", 50.5, "%"),
    ]
    text = to_text(original)
    assert "# TYPE inferswarm_gpu_util_pct gauge" in text
    back = map_inferswarm(parse_text(text), 0.0, "fallback", "prometheus")
    assert sorted(back) == sorted(original)
