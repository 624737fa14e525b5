"""Telemetry: GPU (NVML), host and process samples from every node and from the target, on the load's clock.

- `samples`: the one long-form sample shape and the metric catalogue every source maps into.
- `nvml_sampler`, `host`: samplers for this machine; `prometheus`, `remote`: samples from elsewhere
  (an `inferswarm agent`, dcgm-exporter / node_exporter scrapes, the target's gpu-check).
- `store`: the long-form CSV writer, the live view and generator-saturation tracking.
- `locust_wiring`: the Locust side (sampling greenlets, worker→master messages, web UI, console line).
- `agent`: the small HTTP service that exposes this machine's samples to a master.
"""
