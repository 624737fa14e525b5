"""Issue 13 items 11 (URL credentials), 12 (validation bounds) and 15 (which kind of file): every bad input
is one line naming the file, refused at load, and nothing absurd reaches the planner or the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferswarm.cli import main
from inferswarm.config import ConfigError, load_config, with_extra_agents
from inferswarm.config.loading import MAX_DEPTH, MAX_FILE_BYTES
from inferswarm.emulator.settings import load_target_settings
from inferswarm.strict import MAX_RUN_S, MAX_STAGES, MAX_TIMEOUT_S
from tests.conftest import REPO, base_config

RAMP = {"shape": "ramp", "step_users": 1, "step_duration_s": 1, "max_users": 2}


def _refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert line.startswith(f"{path}: ") and "\n" not in line
    return info.value


@pytest.mark.parametrize("value", ["1.0e+308", ".inf", "-.inf", ".nan", "3601"])
def test_request_timeout_is_finite_and_at_most_an_hour(write_config: Callable[..., Path], value: str) -> None:
    text = yaml.safe_dump(base_config()).replace("request_timeout_s: 10", f"request_timeout_s: {value}")
    assert f"request_timeout_s: {value}" in text
    error = _refused(write_config(text))
    assert error.field == "target.request_timeout_s"
    assert "finite" in error.problem or f"{MAX_TIMEOUT_S:g}" in error.problem or "greater" in error.problem


def test_capability_timeout_is_bounded(write_config: Callable[..., Path]) -> None:
    data = base_config()
    data["capabilities"][0]["request_timeout_s"] = 1e308
    error = _refused(write_config(data))
    assert (error.field, error.problem) == (
        "capabilities[0].request_timeout_s",
        "Input should be less than or equal to 3600",
    )


def test_huge_max_users_is_refused_not_planned(write_config: Callable[..., Path]) -> None:
    error = _refused(write_config(base_config(load={**RAMP, "max_users": 10**15})))
    assert error.field == "load.max_users" and "less than or equal to" in error.problem


def test_a_ramp_of_too_many_steps_is_refused(write_config: Callable[..., Path]) -> None:
    error = _refused(write_config(base_config(load={**RAMP, "max_users": MAX_STAGES + 1})))
    assert error.field == "load"
    assert (
        error.problem
        == f"max_users / step_users makes {MAX_STAGES + 1} steps; at most {MAX_STAGES} (raise step_users)"
    )


@pytest.mark.parametrize(
    ("load", "field", "fragment"),
    [
        ({**RAMP, "step_duration_s": 1e300}, "load.step_duration_s", "less than or equal to 604800"),
        ({**RAMP, "max_users": 100, "step_duration_s": 7000}, "load", "the ramp lasts 700000 s"),
        ({**RAMP, "hold_s": 1e300}, "load.hold_s", "less than or equal to 604800"),
        (
            {"shape": "stages", "stages": [{"duration_s": 400_000, "users": 1}] * 2},
            "load.stages",
            "the stages last 800000 s",
        ),
        (
            {"shape": "stages", "stages": [{"duration_s": 1, "users": 1}] * (MAX_STAGES + 1)},
            "load.stages",
            f"at most {MAX_STAGES} items",
        ),
        ({"shape": "cycle", "packets": 2, "interval_s": 1e300}, "load.interval_s", "less than or equal"),
        ({"shape": "cycle", "packets": 2, "interval_s": 1000, "cycles": 1000}, "load", "1e+06 s; at most"),
        ({"shape": "cycle", "packets": 2, "interval_s": 1, "cycles": 10**15}, "load.cycles", "less than"),
        ({**RAMP, "spawn_rate": 1e300}, "load.spawn_rate", "less than or equal"),
        ({**RAMP, "per_user_rps": 1e300}, "load.per_user_rps", "less than or equal"),
    ],
)
def test_run_length_and_rates_are_bounded(
    write_config: Callable[..., Path], load: dict[str, Any], field: str, fragment: str
) -> None:
    error = _refused(write_config(base_config(load=load)))
    assert error.field == field and fragment in error.problem, error.one_line()


def test_cycle_plan_including_the_last_timeout_is_bounded(write_config: Callable[..., Path]) -> None:
    # cycles x interval alone is exactly 7 days; the last answers' timeout makes the plan longer.
    load = {"shape": "cycle", "packets": 2, "interval_s": 604.8, "cycles": 1000}
    error = _refused(write_config(base_config(load=load)))
    assert error.field == "load" and error.problem.startswith("the plan lasts 604810 s; at most 604800 s")
    assert MAX_RUN_S == 604800


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("http://127.0.0.1:abc", "the port must be a number from 1 to 65535"),
        ("http://127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("http://:8000", "has no host"),
        ("http://[::1", "is not a valid URL"),
        ("ftp://127.0.0.1", "must start with http:// or https://"),
        ("http://127.0.0.1/a b", "must not contain spaces or control characters"),
    ],
)
def test_urls_are_parsed_fully_at_load(write_config: Callable[..., Path], url: str, problem: str) -> None:
    data = base_config()
    data["target"]["base_url"] = url
    error = _refused(write_config(data))
    assert (error.field, error.problem) == ("target.base_url", problem)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("target", "base_url"), "target.base_url"),
        (("telemetry", "agents"), "telemetry.agents[0].url"),
        (("telemetry", "prometheus"), "telemetry.prometheus[0].url"),
    ],
)
def test_credentials_in_a_url_are_refused_without_echo(
    write_config: Callable[..., Path], where: tuple[str, str], field: str
) -> None:
    url = "http://admin:hunter2pw@127.0.0.1:8000"
    data = base_config()
    if where[0] == "target":
        data["target"]["base_url"] = url
    else:
        data["telemetry"] = {where[1]: [{"url": url}]}
    error = _refused(write_config(data))
    assert error.field == field
    assert error.problem.startswith("credentials in a URL are refused")
    assert "hunter2pw" not in error.one_line() and "admin" not in error.one_line()


def test_credentials_in_an_agent_url_from_the_environment_are_not_echoed(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(write_config(base_config()))
    with pytest.raises(ConfigError) as info:
        with_extra_agents(config, "http://ops:hunter2pw@127.0.0.1:9109")
    assert "credentials in a URL are refused" in info.value.one_line()
    assert "hunter2pw" not in info.value.one_line()
    assert "'http://***@127.0.0.1:9109'" in info.value.one_line()


def test_validate_refuses_credentials_with_one_line_exit_2(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_config()
    data["target"]["base_url"] = "http://user:s3cretpw@127.0.0.1:8000"
    path = write_config(data)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "s3cretpw" not in captured.err + captured.out
    assert captured.err.splitlines() == [
        f"inferswarm: {path}: target.base_url: credentials in a URL are refused (they would be written "
        "to run.json and logs); use target.secret_headers with an environment variable"
    ]


def test_file_size_is_bounded(write_config: Callable[..., Path]) -> None:
    text = yaml.safe_dump(base_config()) + "#" * MAX_FILE_BYTES + "\n"
    error = _refused(write_config(text))
    assert error.problem == "file is larger than 1024 KiB"


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_one_line_not_a_recursion_error(
    write_config: Callable[..., Path], opener: str
) -> None:
    if opener == "- ":
        text = "".join("  " * i + "-\n" for i in range(300))
    else:
        text = "description: " + opener * 20_000 + "\n"
    error = _refused(write_config(text))
    assert f"nested deeper than {MAX_DEPTH} levels" in error.problem


def test_nesting_within_the_limit_is_read(write_config: Callable[..., Path]) -> None:
    data = base_config()
    nested: Any = 1
    for _ in range(MAX_DEPTH - 5):
        nested = {"a": nested}
    data["capabilities"][0]["params"]["deep"] = nested
    load_config(write_config(json.dumps(data)))


BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_bomb_is_refused_before_it_expands(write_config: Callable[..., Path]) -> None:
    # Inside `params` (any JSON) it passed validation and expanded to 10**9 values when written out.
    bomb = "{" + ", ".join(BILLION_LAUGHS.splitlines()) + "}"
    data = base_config()
    data["capabilities"][0]["params"]["bomb"] = "BOMB"
    text = yaml.safe_dump(data).replace("bomb: BOMB", f"bomb: {bomb}")
    assert "bomb: {a: &a" in text
    error = _refused(write_config(text))
    assert error.problem == "YAML: more than 1000000 values once aliases are expanded"


def test_recursive_alias_and_odd_scalars_are_one_line(write_config: Callable[..., Path]) -> None:
    assert "contains it" in _refused(write_config("a: &x [1, *x]\n")).problem
    assert "cannot be read" in _refused(write_config("a: " + "9" * 5000 + "\n")).problem
    assert "plain value" in _refused(write_config("? [1, 2]\n: 3\n")).problem


def test_small_aliases_still_work(write_config: Callable[..., Path]) -> None:
    data = base_config()
    text = yaml.safe_dump(data).replace("prompt: a cat", "prompt: &p a cat") + "description: *p\n"
    assert load_config(write_config(text)).description == "a cat"


def test_validate_fails_on_a_missing_secret_env_var(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERSWARM_TEST_TOKEN", raising=False)
    data = base_config()
    data["target"]["secret_headers"] = [{"header": "Authorization", "env": "INFERSWARM_TEST_TOKEN"}]
    path = write_config(data)
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"inferswarm: {path}: target.secret_headers[0].env: "
        "environment variable INFERSWARM_TEST_TOKEN is not set"
    ]
    monkeypatch.setenv("INFERSWARM_TEST_TOKEN", "tok")
    assert main(["validate", str(path)]) == 0


def test_validate_checks_the_load_override_run_would_use(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERSWARM_LOAD", json.dumps({"max_users": 10**15}))
    path = write_config(base_config())
    assert main(["validate", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("inferswarm: INFERSWARM_LOAD / run -x -y -z: load.max_users: ")


def test_a_target_settings_file_is_named_as_such_by_validate(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "configs" / "demo-target.yaml"
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"inferswarm: {path}: this looks like a reference-target settings file (for `inferswarm serve "
        "--config` or `inferswarm run --serve-target`), not a run config"
    ]


def test_a_run_config_is_named_as_such_by_the_target_settings_loader() -> None:
    path = REPO / "configs" / "demo.yaml"
    with pytest.raises(ConfigError) as info:
        load_target_settings(path)
    assert info.value.one_line() == (
        f"{path}: this looks like a run config (for `inferswarm run` or `inferswarm validate`), "
        "not reference-target settings"
    )


def test_a_misspelt_run_config_is_still_a_run_config(write_config: Callable[..., Path]) -> None:
    error = _refused(write_config(base_config(slos=[])))
    assert error.problem == "unknown key 'slos' (did you mean 'slo'?)"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"slots": 10**12}, "slots"),
        ({"queue_depth": 10**12}, "queue_depth"),
        ({"async_job_ttl_s": float("inf")}, "async_job_ttl_s"),
        ({"capabilities": {"llm": {"output_tokens": 10**9}}}, "capabilities.llm.output_tokens"),
        ({"capabilities": {"llm": {"ttft_ms": float("nan")}}}, "capabilities.llm.ttft_ms"),
    ],
)
def test_target_settings_are_bounded(tmp_path: Path, settings: dict[str, Any], field: str) -> None:
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError) as info:
        load_target_settings(path)
    assert info.value.field == field
