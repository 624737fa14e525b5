"""User classes built from a config, and short real runs with Locust's own environment and runner."""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust.env import Environment

from inferswarm.config import RunConfig, parse_config
from inferswarm.locust.listeners.cycles import CycleLedger
from inferswarm.locust.user import CapabilityUser, build_user_classes
from inferswarm.protocols import protocol_for
from tests.conftest import base_config
from tests.unit.loopback import Loopback, Reply

CAPTION = {
    "name": "caption",
    "kind": "multipart",
    "path": "/image-to-text",
    "params": {"prompt": "describe"},
    "files": {"image": "image-64x48.png"},
    "weight": 3,
    "tags": ["image"],
    "request_timeout_s": 2.5,
}


def config(base_url: str = "http://127.0.0.1:9", **overrides: Any) -> RunConfig:
    data = base_config(**overrides)
    data["target"].update({"base_url": base_url, "connect_timeout_s": 1.5, "headers": {"X-Run": "r1"}})
    return parse_config(data)


def test_one_class_per_capability_named_like_it() -> None:
    caps = [{**base_config()["capabilities"][0], "headers": {"X-Run": "cap", "X-Trace": "on"}}, CAPTION]
    cfg = config(capabilities=caps)
    classes = build_user_classes(cfg, {"Authorization": "Bearer s3cr3t", "X-Trace": "secret-wins"})
    assert [c.__name__ for c in classes] == ["text-to-image", "caption"]
    image, caption = classes
    for cls, capability in zip(classes, cfg.capabilities, strict=True):
        assert issubclass(cls, CapabilityUser) and not cls.abstract
        assert cls.capability is capability and cls.protocol is protocol_for(capability.kind)
        assert cls.host == "http://127.0.0.1:9" and cls.load is cfg.load and not cls.tracks_slots
        assert cls.connection_timeout == 1.5
        assert cls.fixed_count == 0  # Locust spreads users by weight
        assert len(cls.tasks) == 1 and cls.tasks[0].__name__ == f"call_{capability.name}"
    assert (image.weight, caption.weight) == (1, 3)
    assert (image.request_timeout_s, image.network_timeout) == (10, 10)  # the target's
    assert (caption.request_timeout_s, caption.network_timeout) == (2.5, 2.5)  # its own
    assert caption.tasks[0].locust_tag_set == {"image"} and not hasattr(image.tasks[0], "locust_tag_set")
    # headers: the target's, then the capability's, then secrets; the request's own come first
    headers = dict(image.prepared.headers)
    assert headers["X-Run"] == "cap" and headers["X-Trace"] == "secret-wins"
    assert headers["Authorization"] == "Bearer s3cr3t" and headers["Content-Type"] == "application/json"
    assert dict(caption.prepared.headers)["X-Run"] == "r1"
    # the asset is read once, here
    assert caption.prepared.body is not None and b"image-64x48.png" in caption.prepared.body
    assert image.__doc__ == "json POST /text-to-image"


def test_cycle_mode_builds_only_the_cycles_capabilities_with_fixed_users() -> None:
    caps = [
        *base_config()["capabilities"],
        {**CAPTION, "weight": 1},
        {"name": "gpu", "kind": "json", "path": "/g"},
    ]
    load = {"shape": "cycle", "packets": 3, "interval_s": 1.0, "capabilities": ["gpu", "text-to-image"]}
    classes = build_user_classes(config(capabilities=caps, load=load), {})
    # in config order, whatever the order of the cycle's list
    assert [(c.__name__, c.fixed_count) for c in classes] == [("text-to-image", 1), ("gpu", 2)]
    assert all(c.tracks_slots for c in classes)


def wait_until(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        gevent.sleep(0.05)


def run_for(classes: list[type[CapabilityUser]], users: int, seconds: float) -> Environment:
    env = Environment(user_classes=list(classes))
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=10)
    try:
        gevent.sleep(seconds)
    finally:
        runner.quit()
    return env


def test_a_short_real_run(loopback: Loopback) -> None:
    loopback.route("POST", "/text-to-image", Reply(200, b'{"images": []}'))
    classes = build_user_classes(config(loopback.url), {"Authorization": "Bearer s3cr3t"})
    env = run_for(classes, users=2, seconds=0.5)
    entry = env.stats.get("text-to-image", "POST")
    assert entry.num_requests > 20 and entry.num_failures == 0  # back to back, two users
    # every request the server got was counted, but those the quit cut short (one per user at most)
    assert entry.num_requests <= len(loopback.requests) <= entry.num_requests + 2
    assert all(r.headers["authorization"] == "Bearer s3cr3t" for r in loopback.requests)
    assert all(r.headers["x-run"] == "r1" for r in loopback.requests)


def test_per_user_rate_paces_the_users(loopback: Loopback) -> None:
    loopback.route("POST", "/text-to-image", Reply(200, b"{}"))
    load = {"shape": "ramp", "step_users": 2, "step_duration_s": 5, "max_users": 2, "per_user_rps": 4}
    env = run_for(build_user_classes(config(loopback.url, load=load), {}), users=2, seconds=0.5)
    entry = env.stats.get("text-to-image", "POST")
    # one request every 0.25 s per user: 2 or 3 each in half a second (not hundreds back to back)
    assert 2 <= entry.num_requests <= 8 and entry.num_failures == 0, entry.num_requests


def test_cycle_users_send_one_request_per_cycle_then_stop(loopback: Loopback) -> None:
    loopback.route("POST", "/a", Reply(200, b"{}"))
    loopback.route("POST", "/b", Reply(200, b"{}"))
    caps = [{"name": "a", "kind": "json", "path": "/a"}, {"name": "b", "kind": "json", "path": "/b"}]
    load = {"shape": "cycle", "packets": 2, "interval_s": 0.2, "cycles": 3}
    classes = build_user_classes(config(loopback.url, capabilities=caps, load=load), {})
    env = Environment(user_classes=list(classes))
    runner = env.create_local_runner()
    ledger = CycleLedger(env)
    runner.start(2, spawn_rate=100)
    try:
        wait_until(lambda: env.stats.total.num_requests == 6 and runner.user_count == 0)
    finally:
        runner.quit()
    assert ledger.counts == {(cycle, name, "ok"): 1 for cycle in range(3) for name in ("a", "b")}
    assert [len(loopback.hits("POST", p)) for p in ("/a", "/b")] == [3, 3]
