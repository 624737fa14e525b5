"""The `checks:` section of a run config: defaults that change nothing, strict values."""

from __future__ import annotations

from typing import Any

import pytest

from inferswarm.checks.config import CHECK_NAMES, PREFLIGHT_DEFAULT
from inferswarm.config import ConfigError, parse_config
from tests.conftest import base_config


def test_a_config_without_the_section_gets_the_defaults() -> None:
    checks = parse_config(base_config()).checks
    assert checks.enabled == list(CHECK_NAMES) and checks.preflight == list(PREFLIGHT_DEFAULT)
    assert (checks.timeout_s, checks.tcp_samples, checks.health_path) == (5.0, 5, "/health")
    assert (checks.require_gpu, checks.malformed, checks.large_payload_bytes) == (False, True, None)
    assert "requests" not in checks.preflight  # a run's default preflight sends no capability request


def test_the_section_is_read() -> None:
    given: dict[str, Any] = {
        "enabled": ["network", "requests"],
        "preflight": [],
        "timeout_s": 2,
        "tcp_samples": 3,
        "require_gpu": True,
        "large_payload_bytes": 1_000_000,
        "health_path": "/healthz",
    }
    checks = parse_config(base_config(checks=given)).checks
    assert checks.enabled == ["network", "requests"] and checks.preflight == []
    assert (checks.timeout_s, checks.tcp_samples, checks.large_payload_bytes) == (2, 3, 1_000_000)


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"enabled": ["netwrok"]}, "checks.enabled"),
        ({"enabled": ["http", "http"]}, "checks.enabled"),
        ({"timeout_s": 0}, "checks.timeout_s"),
        ({"tcp_samples": 0}, "checks.tcp_samples"),
        ({"health_path": "health"}, "checks.health_path"),
        ({"large_payload_bytes": 0}, "checks.large_payload_bytes"),
        ({"tcp_sample": 5}, "checks"),
    ],
)
def test_bad_values_name_the_field(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(base_config(checks=given))
    assert caught.value.field.startswith(field), caught.value.one_line()
