"""`inferswarm report` refuses a directory that is not a run directory, and writes nothing into it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inferswarm.cli import main
from tests.conftest import REPO


def test_a_directory_of_configs_is_refused_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    before = sorted(p.name for p in configs.iterdir())
    assert main(["report", str(configs), "--no-png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"inferswarm: {configs}: not a run directory (no run.json or locust_stats.csv): "
        "give the directory `inferswarm run` printed"
    ]
    assert sorted(p.name for p in configs.iterdir()) == before
