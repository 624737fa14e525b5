"""`inferswarm run`'s supervision pieces that need no Locust: the run directory and run.json's end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inferswarm.cli import main
from inferswarm.cli.run import finalize_run_json
from inferswarm.rundir import write_json_atomic
from tests.conftest import base_config


def test_run_json_ends_in_a_final_status_when_no_temporary_copy_can_be_written(tmp_path: Path) -> None:
    run_json = tmp_path / "run.json"
    write_json_atomic(run_json, {"status": "running", "start_epoch_s": 1.0, "ended_at": None})
    # The temporary copy's name is taken by a directory: writing it fails as a full disk would.
    blocker = tmp_path / f".run.json.{os.getpid()}.tmp"
    blocker.mkdir()
    finalize_run_json(tmp_path, -9, {"parent_signal": "SIGTERM"})
    data = json.loads(run_json.read_text())
    assert (data["status"], data["exit_code"], data["parent_signal"]) == ("killed", -9, "SIGTERM")
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocker.name, "run.json"]


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "run.json"
    with pytest.raises(OSError):
        write_json_atomic(target, {"a": 1})
    (tmp_path / "ro").mkdir()
    target = tmp_path / "ro" / "run.json"
    target.mkdir()  # os.replace onto a directory fails after the temporary copy was written
    with pytest.raises(OSError):
        write_json_atomic(target, {"a": 1})
    assert [p.name for p in (tmp_path / "ro").iterdir()] == ["run.json"]


@pytest.mark.parametrize("shape", ["file", "under-a-file"])
def test_an_out_that_cannot_hold_a_run_directory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: str
) -> None:
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    blocker = tmp_path / "results"
    blocker.write_text("not a directory")
    out = blocker if shape == "file" else blocker / "sub"
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"inferswarm: --out {out}: cannot create a run directory")
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:99999", "abc", "http://user:hunter2@127.0.0.1:8000", "ftp://127.0.0.1"]
)
def test_a_bad_host_is_one_line_and_exit_2_before_any_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--host", host]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("inferswarm: --host: "), err
    assert "hunter2" not in err[0]
    assert not (tmp_path / "out").exists()
