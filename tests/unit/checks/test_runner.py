"""The runner against a dead target: the connect check fails fast, everything that needs the target
SKIPs with the reason, secrets never show."""

from __future__ import annotations

import json
import time

from inferswarm.checks.model import Status
from inferswarm.checks.runner import run_checks
from inferswarm.config import parse_config
from inferswarm.emulator.launcher import free_port
from tests.conftest import base_config


def test_a_dead_target_fails_the_connect_check_and_skips_the_rest_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = parse_config(
        base_config(target={"base_url": url}, checks={"timeout_s": 3, "large_payload_bytes": 1000})
    )
    started = time.monotonic()
    report = run_checks(config, secrets={"Authorization": "Bearer s3cr3t-value"})
    assert time.monotonic() - started < 1.0
    statuses = {t.name: t.status for t in report.tests}
    assert statuses["network_connectivity"] is Status.FAIL
    for name in ("server_health", "request:text-to-image", "error_handling:text-to-image"):
        assert statuses[name] is Status.SKIP
        assert "target unreachable" in next(t.details for t in report.tests if t.name == name)
    assert not report.ok and report.summary()["failed"] == 1
    assert "s3cr3t" not in report.to_json()


def test_only_the_families_asked_for_run_in_order() -> None:
    config = parse_config(base_config(target={"base_url": f"http://127.0.0.1:{free_port()}"}))
    report = run_checks(config, only=["clock", "network"])
    assert [t.name for t in report.tests] == ["network_connectivity", "tls_handshake", "clock_offset"]
    assert json.loads(report.to_json())["summary"] == {"passed": 0, "failed": 1, "warned": 0, "skipped": 2}
