"""The goodput section and the request-log switch: their bounds, and gates on goodput that could never be
judged refused when the config is loaded (one line; `inferswarm validate` exits 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli import main
from inferswarm.config import ConfigError, load_config
from tests.conftest import base_config


def test_defaults_log_every_request_and_have_no_goodput(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(base_config()))
    assert config.output.request_log is True and config.goodput is None


def test_a_goodput_gate_passes_with_a_goodput_section(write_config: Callable[..., Path]) -> None:
    data = base_config(goodput={"latency_ms": 2000, "ttft_ms": 500}, slo=["goodput_rps >= 10"])
    config = load_config(write_config(data))
    assert config.goodput is not None
    assert (config.goodput.latency_ms, config.goodput.ttft_ms, config.goodput.itl_ms) == (2000, 500, None)


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"slo": ["goodput_rps >= 10"]},
        "slo[0]",
        "goodput_rps needs a goodput section (e.g. goodput: {latency_ms: 2000})",
    ),
    (
        {"slo": ["p95_ms < 900", "text-to-image: goodput_ratio > 0.9"]},
        "slo[1]",
        "goodput_ratio needs a goodput section (e.g. goodput: {latency_ms: 2000})",
    ),
    (
        {"slo": ["goodput_rps >= 10"], "goodput": {"itl_ms": 50}, "output": {"request_log": False}},
        "slo[0]",
        "goodput_rps needs the request log, but output.request_log is false",
    ),
    ({"goodput": {}}, "goodput", "give at least one of latency_ms, ttft_ms, itl_ms"),
    ({"goodput": {"latency_ms": 0}}, "goodput.latency_ms", "greater than 0"),
    ({"goodput": {"ttft_ms": -5}}, "goodput.ttft_ms", "greater than 0"),
    ({"goodput": {"latncy_ms": 5}}, "goodput.latncy_ms", "unknown key"),
    ({"output": {"request_log": "yes"}}, "output.request_log", "bool"),
]


@pytest.mark.parametrize(
    ("extra", "field", "problem"), REFUSED, ids=[r[1] + ":" + r[2][:20] for r in REFUSED]
)
def test_refused_in_one_line(
    write_config: Callable[..., Path], extra: dict[str, Any], field: str, problem: str
) -> None:
    path = write_config(base_config(**extra))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert line.startswith(f"{path}: {field}: ") and "\n" not in line
    assert problem in line


def test_validate_exits_2_on_a_goodput_gate_without_goodput(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(base_config(slo=["goodput_rps >= 10"]))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slo[0]: goodput_rps needs a goodput section" in err[0]
