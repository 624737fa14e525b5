"""Seed 001's option names as `inferswarm run` options: the load override they build, their validation
(one line, exit 2, before any run directory), and one short run through `main`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from inferswarm.cli import main
from inferswarm.cli.parser import build_parser
from inferswarm.cli.run import OptionError, seed_override
from inferswarm.config import LOAD_ENV
from tests.conftest import REPO

CONFIGS = REPO / "configs"
RAMP = str(CONFIGS / "edge-ramp.yaml")


def override(*options: str, shape: str = "ramp", base: str | None = None) -> dict[str, object] | None:
    args = build_parser().parse_args(["run", "c.yaml", *options])
    text = seed_override(args, shape, base)
    return None if text is None else json.loads(text)


def test_each_option_maps_onto_its_load_field() -> None:
    assert override() is None
    got = override(
        "--max-clients", "20", "--step-size", "2", "--time-between-ramp", "45", "--requests-per-second", "2.5"
    )
    assert got == {
        "shape": "ramp",
        "max_users": 20,
        "step_users": 2,
        "step_duration_s": 45.0,
        "per_user_rps": 2.5,
    }
    assert override("--duration", "12", shape="fps") == {"shape": "fps", "duration_s": 12.0}
    assert override("--ready-timeout", "90", shape="readiness") == {"shape": "readiness", "timeout_s": 90.0}
    # over INFERSWARM_LOAD: its keys stay, the options win
    merged = override("--max-clients", "4", base='{"max_users": 9, "hold_s": 5}')
    assert merged == {"max_users": 4, "hold_s": 5, "shape": "ramp"}


@pytest.mark.parametrize(
    ("options", "shape", "problem"),
    [
        (["--max-clients", "ten"], "ramp", "--max-clients: 'ten' is not a whole number"),
        (["--max-clients", "2.5"], "ramp", "--max-clients: '2.5' is not a whole number"),
        (["--time-between-ramp", "soon"], "ramp", "--time-between-ramp: 'soon' is not a number"),
        (["--step-size", "2"], "fps", "--step-size: only for ramp runs; this config's load is 'fps'"),
        (["--duration", "5"], "ramp", "--duration: only for fps runs; this config's load is 'ramp'"),
        (
            ["--step-size", "2", "-x", "3"],
            "ramp",
            "--step-size: cannot be combined with the cycle options -x",
        ),
    ],
)
def test_bad_options_are_refused(options: list[str], shape: str, problem: str) -> None:
    with pytest.raises(OptionError) as caught:
        override(*options, shape=shape)
    assert str(caught.value) == problem


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--max-clients", "0"], "inferswarm: --max-clients: load.max_users: "),
        (["--requests-per-second", "-1"], "inferswarm: --requests-per-second: load.per_user_rps: "),
        (["--max-clients", "1", "--step-size", "2"], "inferswarm: --max-clients, --step-size: load: "),
        (["--duration", "3"], "inferswarm: --duration: only for fps runs"),
    ],
)
def test_validation_through_main_is_one_line_exit_2_and_no_run_directory(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    expected: str,
) -> None:
    monkeypatch.delenv(LOAD_ENV, raising=False)
    monkeypatch.setenv("GROUNDLIGHT_API_TOKEN", "t")
    assert main(["run", RAMP, "--out", str(tmp_path / "out"), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert not (tmp_path / "out").exists()


def test_a_short_ramp_run_takes_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOAD_ENV, raising=False)
    monkeypatch.setenv("GROUNDLIGHT_API_TOKEN", "t")
    out = tmp_path / "out"
    options = [
        "--max-clients",
        "2",
        "--step-size",
        "1",
        "--time-between-ramp",
        "1.5",
        "--requests-per-second",
        "4",
    ]
    code = main(
        [
            "run",
            RAMP,
            "--out",
            str(out),
            "--serve-target",
            str(CONFIGS / "edge-target.yaml"),
            "--no-report",
            *options,
        ]
    )
    assert code == 0, capsys.readouterr().err[-3000:]
    [run_dir] = list(out.iterdir())
    with (run_dir / "locust_stages.csv").open(newline="") as handle:
        stages = list(csv.DictReader(handle))
    assert [(s["name"], s["users"]) for s in stages] == [("step 1", "1"), ("step 2", "2")]
    load = json.loads((run_dir / "run.json").read_text())["config"]["load"]
    assert (load["max_users"], load["step_users"], load["step_duration_s"], load["per_user_rps"]) == (
        2,
        1,
        1.5,
        4.0,
    )
