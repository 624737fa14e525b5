"""Seed 001's DETECTOR_MODE and `--image-width/--image-height` as `inferswarm run` options: the
capability override they build (INFERSWARM_CAPABILITIES), its validation (one line, exit 2, before any
run directory), `validate` showing it, a worker's fingerprint, and one short run through `main`."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferswarm.cli import main
from inferswarm.cli.parser import build_parser
from inferswarm.cli.run import ChildExit, capability_override
from inferswarm.config import (
    CAPABILITIES_ENV,
    LOAD_ENV,
    ConfigError,
    load_config,
    with_capability_override,
    with_load_override,
)
from inferswarm.locust.distributed import differences, fingerprint
from tests.conftest import ASSETS, REPO

CONFIGS = REPO / "configs"
FPS = str(CONFIGS / "edge-fps.yaml")
TOKEN = "token-for-the-tests"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOAD_ENV, raising=False)
    monkeypatch.delenv(CAPABILITIES_ENV, raising=False)
    monkeypatch.setenv("GROUNDLIGHT_API_TOKEN", TOKEN)


def built(*options: str) -> dict[str, Any] | None:
    text = capability_override(build_parser().parse_args(["run", "c.yaml", *options]))
    return None if text is None else json.loads(text)


def groundlight(name: str, mode: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "groundlight", "detector_id": f"det_{name}", "mode": mode, **fields}


def edge_config(*capabilities: dict[str, Any], load: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "edge",
        "target": {"base_url": "http://127.0.0.1:9"},
        "assets_dir": str(ASSETS),
        "capabilities": list(capabilities),
        "load": load or {"shape": "fps", "duration_s": 2},
    }


def test_the_options_build_the_override_and_replace_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert built() is None
    assert built("--detector-mode", "COUNT") == {"kind": "groundlight", "select": {"mode": "COUNT"}}
    assert built("--image-width", "320") == {"kind": "groundlight", "set": {"image_size": {"width": 320}}}
    assert built("--detector-mode", "BINARY", "--image-width", "320", "--image-height", "240") == {
        "kind": "groundlight",
        "select": {"mode": "BINARY"},
        "set": {"image_size": {"width": 320, "height": 240}},
    }
    monkeypatch.setenv(CAPABILITIES_ENV, '{"kind": "groundlight", "select": {"mode": "BINARY"}}')
    assert built() == {"kind": "groundlight", "select": {"mode": "BINARY"}}
    assert built("--image-height", "100") == {"kind": "groundlight", "set": {"image_size": {"height": 100}}}


def test_the_override_selects_by_mode_and_sets_the_image_size(write_config: Callable[..., Path]) -> None:
    path = write_config(
        edge_config(
            groundlight("b", "BINARY", image_size={"width": 100, "height": 50}),
            groundlight("c1", "COUNT"),
            groundlight("c2", "COUNT", image_format="png"),
            {"name": "other", "kind": "json", "path": "/x", "params": {}},
        )
    )
    config = load_config(path)
    counted = with_capability_override(
        config, '{"kind": "groundlight", "select": {"mode": "COUNT"}, "set": {"image_size": {"width": 320}}}'
    )
    assert [(c.name, c.mode, c.image_size.width, c.image_size.height) for c in counted.capabilities] == [  # type: ignore[attr-defined]
        ("c1", "COUNT", 320, 480),
        ("c2", "COUNT", 320, 480),
    ]
    assert counted.capabilities[1].image_format == "png"  # type: ignore[attr-defined]
    # only the size: every capability stays, only the groundlight ones change (one side kept)
    sized = with_capability_override(config, '{"kind": "groundlight", "set": {"image_size": {"height": 60}}}')
    sizes = [getattr(c, "image_size", None) for c in sized.capabilities]
    assert [(s.width, s.height) for s in sizes if s is not None] == [(100, 60), (640, 60), (640, 60)]
    assert sized.capabilities[3].name == "other"
    assert (
        with_capability_override(config, None) is config and with_capability_override(config, " ") is config
    )


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("{", ": not valid JSON"),
        ("[1]", ": must be a JSON object"),
        ('{"kind": "groundlight", "pick": 1}', ": pick: unknown key (known: kind, select, set)"),
        ('{"select": {"mode": "COUNT"}}', ": kind: give the capability kind the override is for"),
        ('{"kind": "groundlight", "set": 3}', ": set: must be a JSON object of field: value"),
        (
            '{"kind": "groundlight", "select": {"colour": 1}}',
            ": colour: not a field groundlight capabilities",
        ),
        ('{"kind": "groundlight", "set": {"kind": "json"}}', ": kind: not a field groundlight capabilities"),
        (
            '{"kind": "groundlight", "select": {"mode": "MULTI_CLASS"}}',
            ": select: no groundlight capability with mode 'MULTI_CLASS' (binary: mode 'BINARY', "
            "count: mode 'COUNT')",
        ),
        (
            '{"kind": "groundlight", "set": {"image_size": {"width": 5000}}}',
            ": capabilities[0].image_size.width: Input should be less than or equal to 4096",
        ),
    ],
)
def test_a_bad_override_is_one_config_error(override: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_capability_override(load_config(FPS), override)
    line = caught.value.one_line()
    assert line.startswith(
        f"{CAPABILITIES_ENV} / run --detector-mode --image-width --image-height{problem}"
    ), line
    assert "\n" not in line


def test_a_load_override_keeps_a_fixed_image_capability_valid(write_config: Callable[..., Path]) -> None:
    """Validating again sees the fields as given: a fixed `image` is not refused for the default
    `image_size` a full dump would name."""
    config = load_config(write_config(edge_config(groundlight("a", "BINARY", image="image-64x48.jpg"))))
    assert with_load_override(config, '{"duration_s": 5}').load.duration_s == 5  # type: ignore[attr-defined]
    chosen = with_capability_override(config, '{"kind": "groundlight", "select": {"mode": "BINARY"}}')
    assert chosen.capabilities[0].image == "image-64x48.jpg"  # type: ignore[attr-defined]


def no_groundlight() -> dict[str, Any]:
    return edge_config({"name": "other", "kind": "json", "path": "/x", "params": {}})


@pytest.mark.parametrize(
    ("config", "options", "expected"),
    [
        (
            None,
            ["--detector-mode", "MULTI_CLASS"],
            "inferswarm: --detector-mode MULTI_CLASS: no groundlight capability with mode 'MULTI_CLASS' "
            "(binary: mode 'BINARY', count: mode 'COUNT')",
        ),
        (None, ["--image-width", "wide"], "inferswarm: --image-width: 'wide' is not a whole number"),
        (
            None,
            ["--image-width", "4", "--image-height", "240"],
            "inferswarm: --image-width, --image-height: capabilities[0].image_size.width: Input should be "
            "greater than or equal to 8 (and 1 more problem)",
        ),
        (
            no_groundlight(),
            ["--detector-mode", "COUNT", "--image-height", "240"],
            "inferswarm: --detector-mode COUNT, --image-height: no groundlight capability in this config "
            "(capabilities: other (json))",
        ),
        (
            edge_config(groundlight("a", "COUNT", image="image-64x48.jpg")),
            ["--image-height", "240"],
            "inferswarm: --image-height: capability 'a' sends the fixed asset image 'image-64x48.jpg', not "
            "generated ones: give it image_size instead of image",
        ),
        (
            edge_config(
                groundlight("a", "COUNT"),
                groundlight("b", "BINARY"),
                load={"shape": "fps", "duration_s": 2, "capability": "b"},
            ),
            ["--detector-mode", "COUNT"],
            "inferswarm: --detector-mode COUNT: load.capability: no capability named 'b' (known: a)",
        ),
    ],
)
def test_validation_through_main_is_one_line_exit_2_and_no_run_directory(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    write_config: Callable[..., Path],
    config: dict[str, Any] | None,
    options: list[str],
    expected: str,
) -> None:
    path = FPS if config is None else str(write_config(config))
    assert main(["run", path, "--out", str(tmp_path / "out"), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [expected]
    assert not (tmp_path / "out").exists()


def test_validate_shows_the_override(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPABILITIES_ENV, '{"kind": "groundlight", "select": {"mode": "COUNT"}}')
    assert main(["validate", FPS]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(": ok: 1 capabilities: count (groundlight)")
    assert "1 client on count back to back" in out[1]
    monkeypatch.setenv(CAPABILITIES_ENV, '{"kind": "groundlight", "select": {"mode": "MULTI_CLASS"}}')
    assert main(["validate", FPS]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"{CAPABILITIES_ENV} / run --detector-mode --image-width --image-height: select: " in line


def test_a_worker_gets_the_override_and_one_without_it_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, str]] = []

    def fake_locust(cmd: list[str], env: dict[str, str] | None = None) -> ChildExit:
        seen.append(dict(env or {}))
        return ChildExit(0, None)

    monkeypatch.setattr("inferswarm.cli.run.run_locust", fake_locust)
    options = ["--detector-mode", "COUNT", "--image-width", "320", "--image-height", "240"]
    assert main(["run", FPS, "--worker", "--master-host", "127.0.0.1", *options]) == 0
    override = seen[0][CAPABILITIES_ENV]
    assert json.loads(override) == {
        "kind": "groundlight",
        "select": {"mode": "COUNT"},
        "set": {"image_size": {"width": 320, "height": 240}},
    }
    plain = load_config(FPS)
    master = fingerprint(with_capability_override(plain, override))
    assert differences(master, fingerprint(with_capability_override(plain, override))) == []
    assert differences(master, fingerprint(plain)) == [
        "capability 'binary' only on the worker",
        "capability 'count' differs",
    ]


def test_a_short_fps_run_sends_only_to_the_count_detector_at_320x240(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    options = ["--detector-mode", "COUNT", "--image-width", "320", "--image-height", "240", "--duration", "2"]
    target = str(CONFIGS / "edge-target.yaml")
    code = main(["run", FPS, "--out", str(out), "--serve-target", target, "--no-report", *options])
    assert code == 0, capsys.readouterr().err[-3000:]
    [run_dir] = list(out.iterdir())
    with (run_dir / "locust_stats.csv").open(newline="") as handle:
        rows = {
            row["Name"]: int(row["Request Count"]) for row in csv.DictReader(handle) if row["Type"] == "POST"
        }
    assert set(rows) == {"count"} and rows["count"] > 0
    run = json.loads((run_dir / "run.json").read_text())
    [capability] = run["config"]["capabilities"]
    assert (capability["name"], capability["mode"], capability["image_size"]) == (
        "count",
        "COUNT",
        {"width": 320, "height": 240},
    )
    edge = run["reference_target"]["stats"]["edge"]
    binary, count = edge["det_binary_demo"], edge["det_count_demo"]
    assert binary["edge"] + binary["cloud"] + binary["not_ready"] == 0 and binary["image_sizes"] == {}
    # every image the detector received was 320x240; one more than Locust counted when the run ended
    # with a request in flight
    [(size, received)] = count["image_sizes"].items()
    assert size == "320x240" and rows["count"] <= received <= rows["count"] + 1
