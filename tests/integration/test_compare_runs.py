"""`inferswarm compare` on real runs: two runs of one config against the reference target compare clean;
a run against the same target with its service time raised 20 % is a regression."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli import main
from inferswarm.emulator.launcher import ReferenceTarget
from tests.conftest import base_config
from tests.integration.runs import inferswarm, only_run_dir

pytestmark = pytest.mark.integration


def target_settings(mean_ms: float) -> dict[str, Any]:
    # more slots than users: nothing queues, so latency is the service time plus the loopback's overhead
    return {
        "slots": 8,
        "queue_depth": 8,
        "seed": 7,
        "capabilities": {
            "prompt-enhance": {"service_time": {"distribution": "lognormal", "mean_ms": mean_ms, "cv": 0.1}}
        },
    }


def one_run(target: ReferenceTarget, write_config: Callable[..., Path], out: Path) -> Path:
    config = base_config(
        target={"base_url": target.url, "request_timeout_s": 10},
        capabilities=[
            {"name": "prompt-enhance", "kind": "json", "path": "/prompt-enhance", "params": {"prompt": "a"}}
        ],
        load={"shape": "ramp", "step_users": 2, "step_duration_s": 4, "max_users": 4},
        report={"warmup_s": 1},
    )
    proc = inferswarm("run", str(write_config(config, f"{out.name}.yaml")), "--out", str(out), "--no-report")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    return only_run_dir(out)


def rows_of(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    document = json.loads((out / "compare.json").read_text())
    return {(r["scope"], r["metric"]): r for r in document["rows"]}


def test_same_config_is_clean_and_a_slower_target_regresses(
    start_target: Callable[[dict[str, Any]], ReferenceTarget],
    write_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = start_target(target_settings(200))
    first = one_run(target, write_config, tmp_path / "a")
    second = one_run(target, write_config, tmp_path / "b")
    target.stop()
    slower = one_run(start_target(target_settings(240)), write_config, tmp_path / "slower")

    assert main(["compare", str(first), str(second), "--out", str(tmp_path / "same")]) == 0
    same = rows_of(tmp_path / "same")
    assert not [key for key, row in same.items() if row["regression"]]
    p50 = same[("prompt-enhance", "p50_ms")]
    assert p50["basis"] == "success" and p50["test"].startswith("bootstrap (2 steps)")
    assert abs(p50["change"]) < 0.1

    capsys.readouterr()
    assert main(["compare", str(first), str(slower), "--out", str(tmp_path / "slow")]) == 3
    slow = rows_of(tmp_path / "slow")
    # the median is the figure a hundred requests per run pin down; the tails carry the loopback's hiccups
    row = slow[("prompt-enhance", "p50_ms")]
    assert row["regression"] and row["p_value"] < 0.01 and row["test"] == "bootstrap (2 steps)", row
    assert 0.1 < row["change"] < 0.35 and row["ci"][0] > 0, row
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["scope", "metric"] and "verdict" in out[0]
    assert out[-1].startswith("compare: ") and out[-1].endswith(str(tmp_path / "slow" / "compare.html"))
