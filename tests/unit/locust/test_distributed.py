"""The fingerprint that keeps every worker on the master's config, assets and code."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inferswarm.config import load_config, with_extra_agents, with_load_override
from inferswarm.locust.distributed import code_digest, differences, fingerprint
from tests.conftest import REPO, base_config

IMAGE = {
    "name": "image-to-image",
    "kind": "multipart",
    "path": "/image-to-image",
    "params": {"prompt": "a"},
    "files": {"image": "image-64x48.png"},
}


def config_with(assets: Path, **overrides: Any) -> dict[str, Any]:
    caps = base_config()["capabilities"] + [IMAGE]
    return base_config(assets_dir=str(assets), capabilities=caps, **overrides)


def test_the_same_config_from_two_places_matches(write_config: Callable[..., Path], tmp_path: Path) -> None:
    assets = REPO / "test-assets"
    a = load_config(write_config(config_with(assets), "a.yaml"))
    # another machine: another file, another description, its own report and SLO settings, no agents
    b_data = config_with(assets, description="worker copy", slo=["p95_ms < 900"], output={"dir": "elsewhere"})
    b = with_extra_agents(load_config(write_config(b_data, "b.yaml")), None)
    a = with_extra_agents(a, "http://gpu-box:9109")
    assert fingerprint(a) == fingerprint(b)
    assert differences(fingerprint(a), fingerprint(b)) == []
    assert set(fingerprint(a)["assets"]) == {"image-64x48.png"}


def test_each_difference_is_named(write_config: Callable[..., Path], tmp_path: Path) -> None:
    assets = REPO / "test-assets"
    master = fingerprint(load_config(write_config(config_with(assets), "m.yaml")))

    changed = config_with(assets)
    changed["capabilities"][0]["params"] = {"prompt": "a dog"}
    changed["capabilities"].append({**IMAGE, "name": "extra"})
    worker = fingerprint(load_config(write_config(changed, "w.yaml")))
    assert differences(master, worker) == [
        "capability 'extra' only on the worker",
        "capability 'text-to-image' differs",
    ]

    load = with_load_override(load_config(write_config(config_with(assets), "l.yaml")), '{"max_users": 9}')
    assert differences(master, fingerprint(load)) == ["config section 'load' differs"]

    timeouts = config_with(assets, target={"base_url": "http://127.0.0.1:9", "request_timeout_s": 99})
    assert differences(master, fingerprint(load_config(write_config(timeouts, "t.yaml")))) == [
        "config section 'target' differs"
    ]


def test_asset_contents_count_not_their_folder(write_config: Callable[..., Path], tmp_path: Path) -> None:
    master = fingerprint(load_config(write_config(config_with(REPO / "test-assets"), "m.yaml")))
    copy = tmp_path / "assets"
    shutil.copytree(REPO / "test-assets", copy)
    same = fingerprint(load_config(write_config(config_with(copy), "same.yaml")))
    assert differences(master, same) == []  # another folder, the same bytes
    image = copy / "image-64x48.png"
    image.write_bytes(image.read_bytes() + b"\0")
    other = fingerprint(load_config(write_config(config_with(copy), "other.yaml")))
    assert differences(master, other) == ["asset 'image-64x48.png' differs"]


def test_versions_and_code(tmp_path: Path) -> None:
    package = tmp_path / "inferswarm"
    shutil.copytree(REPO / "lib" / "inferswarm", package, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_digest(package) == code_digest()
    (package / "slo.py").write_text((package / "slo.py").read_text() + "# changed\n")
    assert code_digest(package) != code_digest()

    base = {"inferswarm": "0.1.0", "code": "aaa", "locust": "2.47.0", "name": "n"}
    assert differences(base, {**base, "code": "bbb"}) == ["inferswarm code: master aaa, worker bbb"]
    # a different version says so once; its code differs too, which goes without saying
    assert differences(base, {**base, "inferswarm": "0.2.0", "code": "bbb"}) == [
        "inferswarm version: master 0.1.0, worker 0.2.0"
    ]
    assert differences(base, {**base, "locust": "2.40.0"}) == ["Locust version: master 2.47.0, worker 2.40.0"]
    assert differences(base, {**base, "name": "m"}) == ["config name: master 'n', worker 'm'"]


def test_a_connecting_worker_is_not_ready_until_its_fingerprint_is_checked(
    write_config: Callable[..., Path],
) -> None:
    """Locust adds a connecting worker to its pool right after `worker_connect`; a headless master that
    polled its ready workers at that moment would start with a worker it is about to refuse."""
    from locust import __version__ as locust_version
    from locust.env import Environment
    from locust.rpc import Message

    from inferswarm.emulator.launcher import free_port
    from inferswarm.locust.distributed import HELLO, WorkerRegistry

    config = load_config(write_config(base_config(), "m.yaml"))
    env = Environment(user_classes=[])
    runner = env.create_master_runner("127.0.0.1", free_port())
    try:
        registry = WorkerRegistry(env, config, on_change=lambda _summary: None)
        registry.start()
        runner.handle_message("w1", Message("client_ready", locust_version, "w1"))
        assert "w1" in runner.clients and runner.clients.ready == []  # no greenlet switch yet
        hello = {"fingerprint": fingerprint(config), "node": "worker@test", "hostname": "h", "pid": 1}
        runner.handle_message("w1", Message(HELLO, hello, "w1"))
        assert [node.id for node in runner.clients.ready] == ["w1"]
        assert [w["id"] for w in registry.summary()["joined"]] == ["w1"]
    finally:
        runner.quit()


def test_a_worker_connected_before_the_registry_started_is_vetted_too(
    write_config: Callable[..., Path],
) -> None:
    """The workers `--processes` forks connect while the master is still starting; such a worker took
    users before its hello was answered, and what it reported meanwhile was missing from its count."""
    import gevent
    from locust import __version__ as locust_version
    from locust.env import Environment
    from locust.rpc import Message

    from inferswarm.emulator.launcher import free_port
    from inferswarm.locust.distributed import HELLO, WorkerRegistry

    config = load_config(write_config(base_config(), "m.yaml"))
    env = Environment(user_classes=[])
    runner = env.create_master_runner("127.0.0.1", free_port())
    try:
        runner.handle_message("w1", Message("client_ready", locust_version, "w1"))
        registry = WorkerRegistry(env, config, on_change=lambda _summary: None)
        registry.start()
        assert runner.clients.ready == []
        gevent.sleep(0)  # the hold-out runs
        assert "w1" not in runner.clients
        hello = {"fingerprint": fingerprint(config), "node": "worker@test", "hostname": "h", "pid": 1}
        runner.handle_message("w1", Message(HELLO, hello, "w1"))
        assert [node.id for node in runner.clients.ready] == ["w1"]
        total = {"num_requests": 8, "num_failures": 1}
        env.events.worker_report.fire(client_id="w1", data={"stats_total": total, "user_count": 2})
        [joined] = registry.summary()["joined"]
        assert (joined["id"], joined["requests"], joined["failures"]) == ("w1", 8, 1)
    finally:
        runner.quit()


def test_a_refused_worker_that_connects_again_is_never_ready(write_config: Callable[..., Path]) -> None:
    """Locust's worker repeats `client_ready` when the master's ack is slow (a busy machine); a refused
    worker's repeat must not put it back among the ready workers a headless master counts."""
    import gevent
    from locust import __version__ as locust_version
    from locust.env import Environment
    from locust.rpc import Message

    from inferswarm.emulator.launcher import free_port
    from inferswarm.locust.distributed import HELLO, WorkerRegistry

    config = load_config(write_config(base_config(), "m.yaml"))
    env = Environment(user_classes=[])
    runner = env.create_master_runner("127.0.0.1", free_port())
    try:
        registry = WorkerRegistry(env, config, on_change=lambda _summary: None)
        registry.start()
        runner.handle_message("w1", Message("client_ready", locust_version, "w1"))
        wrong = {**fingerprint(config), "code": "another"}
        runner.handle_message("w1", Message(HELLO, {"fingerprint": wrong, "node": "w"}, "w1"))
        [refused] = registry.summary()["refused"]
        assert refused["problems"][0].startswith("inferswarm code: master ")
        runner.handle_message("w1", Message("client_ready", locust_version, "w1"))  # the retry
        assert runner.clients.ready == []
        gevent.sleep(0)  # the hold-out runs
        assert "w1" not in runner.clients
    finally:
        runner.quit()
