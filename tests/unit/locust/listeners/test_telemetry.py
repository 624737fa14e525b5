"""The console line built from the latest samples."""

from __future__ import annotations

from inferswarm.locust.listeners.telemetry import summary_line
from inferswarm.telemetry.samples import sample


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
