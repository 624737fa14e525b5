from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferswarm.config import ConfigError, RampLoad, load_config, resolve_secret_headers, with_extra_agents
from tests.conftest import REPO, base_config


def test_demo_config_is_valid() -> None:
    config = load_config(REPO / "configs" / "demo.yaml")
    assert [c.name for c in config.capabilities] == ["text-to-image", "prompt-enhance", "gpu-check"]
    assert isinstance(config.load, RampLoad)
    assert (config.load.step_users, config.load.max_users, config.load.per_user_rps) == (2, 20, 2)
    assert config.assets_path == (REPO / "test-assets").resolve()


def test_multipart_and_stages_config(write_config: Callable[..., Path]) -> None:
    data = base_config(
        capabilities=[
            {
                "name": "caption",
                "kind": "multipart",
                "path": "/image-to-text",
                "params": {"prompt": "describe", "safety_check": True},
                "files": {"image": "image-64x48.png"},
                "weight": 3,
                "tags": ["image"],
                "success": {"status": [200, 201], "json_fields": ["text"]},
            }
        ],
        load={"shape": "stages", "stages": [{"duration_s": 2, "users": 3}, {"duration_s": 1, "users": 0}]},
    )
    config = load_config(write_config(data))
    cap = config.capabilities[0]
    assert cap.kind == "multipart" and cap.weight == 3 and cap.success.status == [200, 201]
    assert [s.users for s in config.load.stages] == [3, 0]  # type: ignore[union-attr]


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()

BAD_CONFIGS = [
    # (dotted key to change, value, expected field, expected fragment of the problem)
    ("load.step_user", 2, "load.step_user", "unknown key 'step_user' (did you mean 'step_users'?)"),
    ("colour", "blue", "colour", "unknown key 'colour'"),
    ("load.step_users", "two", "load.step_users", "valid integer"),
    ("load.max_users", 0, "load.max_users", "greater than or equal to 1"),
    (
        "capabilities.0.kind",
        "grpc",
        "capabilities[0].kind",
        "unknown kind 'grpc'; valid: 'byoc', 'groundlight', 'json', 'livepeer', 'multipart', 'openai'",
    ),
    ("capabilities.0.path", "text-to-image", "capabilities[0].path", "should match pattern"),
    ("capabilities.0.weight", 0, "capabilities[0].weight", "greater than or equal to 1"),
    ("capabilities.0.prams", {}, "capabilities[0].prams", "did you mean 'params'?"),
    ("load.step_duration_s", -1, "load.step_duration_s", "greater than 0"),
    ("load.shape", "spike", "load.shape", "unknown shape 'spike'"),
    ("target", _DELETE, "target", "required field is missing"),
    ("target.base_url", "localhost:8000", "target.base_url", "must start with http:// or https://"),
    ("target.headers", {"Authorization": "Bearer x"}, "target.headers", "looks like a credential"),
    ("capabilities.0.headers", {"X-Api-Key": "k"}, "capabilities[0].headers", "looks like a credential"),
    ("capabilities", [], "capabilities", "at least 1 item"),
    (
        "capabilities.0.success",
        {"status": [999]},
        "capabilities[0].success.status",
        "not an HTTP status code",
    ),
    (
        "capabilities.0.success",
        {"body": "xml"},
        "capabilities[0].success.body",
        "'any', 'nonempty' or 'json'",
    ),
    ("load.per_user_rps", 0, "load.per_user_rps", "greater than 0"),
    ("telemetry", {"interval_s": 0.05}, "telemetry.interval_s", "greater than or equal to 0.1"),
    ("telemetry", {"interval_s": 11}, "telemetry.interval_s", "less than or equal to 10"),
    ("telemetry", {"intreval_s": 1}, "telemetry.intreval_s", "did you mean 'interval_s'?"),
    (
        "telemetry",
        {"agents": [{"url": "gpu-1:9109"}]},
        "telemetry.agents[0].url",
        "must start with http:// or https://",
    ),
    (
        "telemetry",
        {"prometheus": [{"url": "http://h", "format": "statsd"}]},
        "telemetry.prometheus[0].format",
        "'auto'",
    ),
    ("telemetry", {"gpu_check": "gpu-chek"}, "telemetry.gpu_check", "no capability named 'gpu-chek'"),
    ("slo", ["p95 < 2000"], "slo[0]", "unknown metric 'p95'"),
    ("slo", ["p95_ms = 2000"], "slo[0]", "is not a gate"),
    (
        "slo",
        ["text-to-imag: p95_ms < 2000"],
        "slo[0]",
        "no capability named 'text-to-imag' (did you mean 'text-to-image'?)",
    ),
    ("report", {"tolerances": {"p95": 0.1}}, "report.tolerances", "unknown metric 'p95'"),
    ("report", {"warmup_s": -1}, "report.warmup_s", "greater than or equal to 0"),
    ("telemetry", {"saturation_cpu_pct": 150}, "telemetry.saturation_cpu_pct", "less than or equal to 100"),
]


@pytest.mark.parametrize(("key", "value", "field", "fragment"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_names_field_and_problem(
    write_config: Callable[..., Path], key: str, value: Any, field: str, fragment: str
) -> None:
    path = write_config(_set(base_config(), key, value))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.field == field
    assert fragment in error.problem
    line = error.one_line()
    assert line.startswith(f"{path}: {field}: ") and "\n" not in line


def test_max_users_below_step(write_config: Callable[..., Path]) -> None:
    data = base_config(load={"shape": "ramp", "step_users": 10, "step_duration_s": 5, "max_users": 5})
    with pytest.raises(ConfigError, match=r"max_users \(5\) must be >= step_users \(10\)") as info:
        load_config(write_config(data))
    assert info.value.field == "load"


def test_duplicate_capability_names(write_config: Callable[..., Path]) -> None:
    cap = {"name": "a", "kind": "json", "path": "/a"}
    with pytest.raises(ConfigError, match="capability name 'a' is used twice"):
        load_config(write_config(base_config(capabilities=[cap, dict(cap)])))


def test_missing_asset_names_the_file_field(write_config: Callable[..., Path]) -> None:
    cap = {"name": "a", "kind": "multipart", "path": "/a", "files": {"image": "nope.png"}}
    with pytest.raises(ConfigError) as info:
        load_config(write_config(base_config(capabilities=[cap])))
    assert info.value.field == "capabilities[0].files.image"
    assert "asset file not found" in info.value.problem and "nope.png" in info.value.problem


def test_multipart_needs_parts(write_config: Callable[..., Path]) -> None:
    cap = {"name": "a", "kind": "multipart", "path": "/a"}
    with pytest.raises(ConfigError, match="needs at least one of params or files"):
        load_config(write_config(base_config(capabilities=[cap])))


def test_duplicate_yaml_key(write_config: Callable[..., Path]) -> None:
    text = "name: a\nname: b\n"
    with pytest.raises(ConfigError, match=r"YAML syntax error: line 2, column 1: duplicate key 'name'"):
        load_config(write_config(text))


def test_yaml_syntax_error_has_position(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match=r"YAML syntax error: line 3, column 1: expected ','"):
        load_config(write_config("name: a\ntarget: [unclosed\n"))


def test_top_level_must_be_mapping(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write_config("- a\n- b\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config("/nonexistent/run.yaml")


def test_several_problems_are_counted(write_config: Callable[..., Path]) -> None:
    data = base_config()
    data["load"]["step_users"] = "x"
    data["load"]["max_users"] = "y"
    with pytest.raises(ConfigError, match=r"\(and 1 more problem\)$"):
        load_config(write_config(data))


def test_secret_headers_from_environment(write_config: Callable[..., Path]) -> None:
    data = base_config()
    data["target"]["secret_headers"] = [{"header": "Authorization", "env": "TEST_TOKEN", "prefix": "Bearer "}]
    config = load_config(write_config(data))
    assert resolve_secret_headers(config, {"TEST_TOKEN": "s3cr3t"}) == {"Authorization": "Bearer s3cr3t"}
    with pytest.raises(ConfigError) as info:
        resolve_secret_headers(config, {})
    assert info.value.field == "target.secret_headers[0].env"
    assert info.value.problem == "environment variable TEST_TOKEN is not set"


def test_agents_from_outside_the_file(write_config: Callable[..., Path]) -> None:
    path = write_config(base_config(telemetry={"agents": [{"url": "http://gpu-1:9109", "name": "gpu-1"}]}))
    config = load_config(path)
    more = with_extra_agents(config, " http://gpu-2:9109 ,,http://[::1]:9109")
    assert [(a.url, a.name) for a in more.telemetry.agents] == [
        ("http://gpu-1:9109", "gpu-1"),
        ("http://gpu-2:9109", None),
        ("http://[::1]:9109", None),
    ]
    assert more.source == config.source and more.telemetry.interval_s == config.telemetry.interval_s
    assert with_extra_agents(config, None) is config and with_extra_agents(config, " ") is config
    with pytest.raises(
        ConfigError, match=r"INFERSWARM_AGENTS: 'gpu-3:9109' is not an http\(s\)://host:port URL"
    ):
        with_extra_agents(config, "http://ok:1,gpu-3:9109")


def test_cycle_override_merges_and_validates(tmp_path: Path) -> None:
    import json as _json

    from inferswarm.config import ConfigError, CycleLoad, load_config, with_load_override

    config = load_config(REPO / "configs" / "capability-tester.yaml")
    updated = with_load_override(config, _json.dumps({"shape": "cycle", "packets": 3, "interval_s": 0.5}))
    assert isinstance(updated.load, CycleLoad)
    assert (updated.load.packets, updated.load.interval_s, updated.load.cycles) == (3, 0.5, 5)  # cycles kept
    assert updated.load.capabilities == ["text-to-image", "prompt-enhance", "gpu-check"]
    with pytest.raises(ConfigError, match=r"load\.capabilities\[0\]: no capability named 'x'"):
        with_load_override(config, _json.dumps({"capabilities": ["x"]}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        with_load_override(config, "{")


def test_a_capability_cannot_be_named_like_a_derived_statistic(tmp_path: Path) -> None:
    from inferswarm.config import ConfigError, parse_config

    data = {
        "name": "n",
        "target": {"base_url": "http://127.0.0.1:1"},
        "capabilities": [{"name": "llm:ttft", "kind": "json", "path": "/x"}],
        "load": {"shape": "stages", "stages": [{"duration_s": 1, "users": 1}]},
    }
    with pytest.raises(ConfigError, match="derived statistic"):
        parse_config(data)
