"""`inferswarm serve --orch-webhook-url`: refused in one line (exit 2) without a gateway section."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inferswarm.cli import main
from inferswarm.cli.parser import build_parser

ORCH = {"address": "0x" + "a" * 40, "service_uri": "https://127.0.0.1:8935", "pipelines": {"llm": {"m": {}}}}


def test_webhook_flag_needs_a_gateway_section(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config({"slots": 2}, "target.yaml")
    code = main(
        ["serve", "--config", str(config), "--orch-webhook-url", "http://127.0.0.1:7934/orchestrators"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--orch-webhook-url" in err and "gateway" in err


def test_webhook_flag_must_be_http(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config({"gateway": {"orchestrators": [ORCH]}}, "target.yaml")
    assert main(["serve", "--config", str(config), "--orch-webhook-url", "file:///etc/passwd"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be an http(s) URL" in err


def test_webhook_flag_parses() -> None:
    args = build_parser().parse_args(["serve", "--orch-webhook-url", "http://127.0.0.1:1/o"])
    assert args.orch_webhook_url == "http://127.0.0.1:1/o"
    assert build_parser().parse_args(["serve"]).orch_webhook_url is None
