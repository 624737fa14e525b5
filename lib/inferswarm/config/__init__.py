"""The run config: one YAML file describes the target, the capabilities, the load, telemetry and output.

Validation is strict (unknown keys, wrong types, impossible values, missing assets are errors) and every
error becomes a `ConfigError` naming the file, the field path and the problem in one line.
"""

from __future__ import annotations

from inferswarm.config.errors import ConfigError, unknown_name, validation_error
from inferswarm.config.loading import (
    AGENTS_ENV,
    CAPABILITIES_ENV,
    LOAD_ENV,
    load_config,
    parse_config,
    read_yaml,
    resolve_secret_headers,
    with_capability_override,
    with_extra_agents,
    with_load_override,
)
from inferswarm.config.schema import (
    INTERVAL_MAX_S,
    INTERVAL_MIN_S,
    AgentSource,
    GoodputConfig,
    OutputConfig,
    PrometheusSource,
    ReportConfig,
    RunConfig,
    SaturationRule,
    SecretHeader,
    TargetConfig,
    TelemetryConfig,
    run_config_model,
)
from inferswarm.load import CycleLoad, RampLoad, StagesLoad, StageSpec

__all__ = [
    "AGENTS_ENV",
    "CAPABILITIES_ENV",
    "INTERVAL_MAX_S",
    "INTERVAL_MIN_S",
    "LOAD_ENV",
    "AgentSource",
    "ConfigError",
    "CycleLoad",
    "GoodputConfig",
    "OutputConfig",
    "PrometheusSource",
    "RampLoad",
    "ReportConfig",
    "RunConfig",
    "SaturationRule",
    "SecretHeader",
    "StageSpec",
    "StagesLoad",
    "TargetConfig",
    "TelemetryConfig",
    "load_config",
    "parse_config",
    "read_yaml",
    "resolve_secret_headers",
    "run_config_model",
    "unknown_name",
    "validation_error",
    "with_capability_override",
    "with_extra_agents",
    "with_load_override",
]
