"""The console line built from the latest samples."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from inferswarm.config import parse_config
from inferswarm.locust.listeners.telemetry import TelemetryHub, summary_line
from inferswarm.telemetry.samples import sample
from tests.conftest import base_config


def test_summary_line_names_the_busiest_generator_and_each_gpu() -> None:
    latest = [
        sample(1, "master@m", "process", "pid1", "process_cpu_pct", 99.0),  # not a generator
        sample(1, "worker@w/2", "process", "pid2", "process_cpu_pct", 93.4),
        sample(1, "worker@w/3", "process", "pid3", "process_cpu_pct", 20.0),
        sample(1, "worker@w/2", "host", "host", "cpu_util_pct", 71.0),
        sample(1, "worker@w/2", "host", "host", "mem_util_pct", 40.2),
        sample(1, "agent@g", "nvml", "gpu0", "gpu_util_pct", 97),
        sample(1, "agent@g", "nvml", "gpu0", "gpu_mem_used_bytes", 30 * 2**30),
        sample(1, "agent@g", "nvml", "gpu0", "gpu_mem_total_bytes", 80 * 2**30),
        sample(1, "agent@g", "nvml", "gpu0", "gpu_power_w", 310.4),
        sample(1, "agent@g", "nvml", "gpu0/pid9", "gpu_process_mem_bytes", 2**30),
        sample(1, "worker@w/2", "process", "pid2", "loop_lag_ms", 12.6),
        sample(1, "dcgm-1", "dcgm", "source", "source_up", 0),
    ]
    line = summary_line(latest, saturated=True)
    assert line == (
        "telemetry: 5 nodes | generator cpu max 93% (worker@w/2) SATURATED | host cpu max 71% mem max 40% | "
        "gpu0 97% 30.0/80.0 GiB 310 W | loop lag max 13 ms | down: dcgm-1"
    )
    assert summary_line([], saturated=False) == "telemetry: 0 nodes"


def test_the_sample_taken_at_quit_is_recorded_but_never_judged(tmp_path: Path) -> None:
    """The quit sample's CPU share covers only the milliseconds since the last sample, all shutdown work
    (a run was once flagged saturated on a 98.9% quit reading after readings of 2%)."""
    config = parse_config(base_config(telemetry={"interval_s": 1.0}))
    environment = SimpleNamespace(runner=None, host=None, parsed_options=None)
    hub = TelemetryHub(environment, config, tmp_path / "telemetry.csv", {})  # type: ignore[arg-type]
    at_quit = [sample(3.07, hub.node, "process", "pid1", "process_cpu_pct", 98.9)]
    hub.sampling = SimpleNamespace(  # type: ignore[assignment]
        probe=SimpleNamespace(stop=lambda: None), collect=lambda in_thread: at_quit
    )
    hub.add([sample(float(t), hub.node, "process", "pid1", "process_cpu_pct", 2.0) for t in (1, 2)])
    hub.stop()
    assert not hub.saturation.saturated
    rows = (tmp_path / "telemetry.csv").read_text().splitlines()
    assert any(",process_cpu_pct,98.9," in row for row in rows)  # the timeline keeps it
    assert not any("generator_saturated" in row for row in rows)
    # a reading over a whole interval is judged as before
    judged = TelemetryHub(environment, config, tmp_path / "t2.csv", {})  # type: ignore[arg-type]
    judged.add(at_quit)
    assert judged.saturation.saturated
