"""The recipe for a new kind, followed in a few lines: a load kind and a capability kind registered here
are accepted by the config (whose unions are built from the registries) and run in Locust unchanged."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Literal

import gevent
import pytest
from locust.env import Environment
from locust.runners import STATE_STOPPED
from pydantic import Field

from inferswarm.config import ConfigError, parse_config
from inferswarm.load import LoadContext, LoadKind, Stage, register_load
from inferswarm.locust.shape import RecordingShape, StageRecorder, shape_class_for
from inferswarm.locust.user import build_user_classes
from inferswarm.protocols import CapabilityBase, PreparedRequest, Protocol, register_protocol
from tests.unit.loopback import Loopback, Reply, Request


class ToyBurstLoad(LoadKind):
    """All users at once, for a while."""

    shape: Literal["toy-burst"]
    users: int = Field(ge=1)
    duration_s: float = Field(gt=0)

    def plan(self, context: LoadContext) -> list[Stage]:
        return [Stage("burst", 0.0, self.duration_s, self.users, float(self.users) * 10)]


class ToyEchoCapability(CapabilityBase):
    kind: Literal["toy-echo"]
    word: str


class ToyEchoProtocol(Protocol[ToyEchoCapability]):
    model = ToyEchoCapability

    def prepare(self, capability: ToyEchoCapability, assets_dir: Path) -> PreparedRequest:
        body = json.dumps({"word": capability.word}).encode()
        return PreparedRequest("POST", capability.path, {"Content-Type": "application/json"}, body)


@pytest.fixture
def toy_kinds(private_registries: None) -> None:
    register_load(ToyBurstLoad)
    register_protocol(ToyEchoProtocol)


def toy_config(base_url: str = "http://127.0.0.1:9", **load: Any) -> dict[str, Any]:
    return {
        "name": "toy",
        "target": {"base_url": base_url, "request_timeout_s": 5},
        "capabilities": [{"name": "echo", "kind": "toy-echo", "path": "/echo", "word": "hi"}],
        "load": {"shape": "toy-burst", "users": 3, "duration_s": 0.5, **load},
    }


@pytest.mark.usefixtures("toy_kinds")
def test_the_config_accepts_registered_kinds() -> None:
    config = parse_config(toy_config())
    assert isinstance(config.load, ToyBurstLoad) and config.load.users == 3
    [capability] = config.capabilities
    assert isinstance(capability, ToyEchoCapability) and capability.word == "hi"
    assert config.load.describe(config.load_context()) == "load: toy-burst, 1 stages, up to 3 users, 0.5 s"


@pytest.mark.usefixtures("toy_kinds")
@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (
            {"load": {"shape": "spike"}},
            "load.shape",
            "unknown shape 'spike'; valid: 'cycle', 'fps', 'ramp', 'rate', 'readiness', 'search', 'sizes', "
            "'stages', 'toy-burst'",
        ),
        (
            {"capabilities": [{"name": "x", "kind": "grpc", "path": "/x"}]},
            "capabilities[0].kind",
            "unknown kind 'grpc'; valid: 'byoc', 'groundlight', 'json', 'livepeer', 'multipart', 'openai', "
            "'tensor', 'toy-echo'",
        ),
        (
            {"load": {"shape": "toy-burst", "users": 0, "duration_s": 1}},
            "load.users",
            "Input should be greater than or equal to 1",
        ),
        (
            {"load": {"shape": "toy-burst", "user": 2, "duration_s": 1}},
            "load.user",
            "unknown key 'user' (did you mean 'users'?)",
        ),
        (
            {"capabilities": [{"name": "x", "kind": "toy-echo", "path": "/x"}]},
            "capabilities[0].word",
            "required field is missing",
        ),
    ],
)
def test_config_errors_know_the_registered_kinds(change: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**toy_config(), **change})
    assert (info.value.field, info.value.problem) == (field, problem)


def test_the_toy_kinds_are_gone_after_their_tests() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'toy-echo'"):
        parse_config(toy_config())
    data = toy_config()
    data["capabilities"] = [{"name": "echo", "kind": "json", "path": "/echo"}]
    with pytest.raises(
        ConfigError,
        match=r"unknown shape 'toy-burst'; valid: 'cycle', 'fps', 'ramp', 'rate', 'readiness', 'search', "
        r"'sizes', 'stages'$",
    ):
        parse_config(data)


@pytest.mark.usefixtures("toy_kinds")
def test_a_toy_run_in_locust(loopback: Loopback, tmp_path: Path) -> None:
    def echo(request: Request) -> Reply:
        return Reply(200, request.body)

    loopback.route("POST", "/echo", echo)
    config = parse_config(toy_config(loopback.url))
    shape_class = shape_class_for(config.load, config.load_context())
    assert issubclass(shape_class, RecordingShape) and shape_class.stages == (
        Stage("burst", 0.0, 0.5, 3, 30.0),
    )
    shape = shape_class()
    shape.recorder = StageRecorder(tmp_path / "stages.csv")
    classes = build_user_classes(config, {})
    assert [c.__name__ for c in classes] == ["echo"]

    env = Environment(user_classes=list(classes), shape_class=shape)
    runner = env.create_local_runner()
    peak = 0
    runner.start_shape()
    try:
        deadline = time.monotonic() + 15
        while runner.state != STATE_STOPPED:  # the shape stops the run after its one stage
            assert time.monotonic() < deadline, "the shape did not end"
            peak = max(peak, runner.user_count)
            gevent.sleep(0.05)
    finally:
        runner.quit()
        shape.recorder.finish()

    assert peak == 3 and shape.completed
    entry = env.stats.get("echo", "POST")
    assert entry.num_requests > 0 and entry.num_failures == 0
    assert {r.body for r in loopback.requests} == {b'{"word": "hi"}'}
    with (tmp_path / "stages.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["stage"], r["name"], r["users"], r["completed"]) for r in rows] == [
        ("0", "burst", "3", "true")
    ]
    assert float(rows[0]["end_epoch_s"]) - float(rows[0]["start_epoch_s"]) >= 0.5
