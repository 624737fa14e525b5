from __future__ import annotations

import random
import re
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from inferswarm.config import ConfigError
from inferswarm.emulator.settings import ServiceTime, load_target_settings


@pytest.mark.parametrize(
    "service",
    [
        ServiceTime(distribution="fixed", mean_ms=50),
        ServiceTime(distribution="exponential", mean_ms=50),
        ServiceTime(distribution="lognormal", mean_ms=50, cv=0.5),
        ServiceTime(distribution="uniform", mean_ms=50, spread_ms=20),
    ],
    ids=lambda s: s.distribution,
)
def test_sampled_mean_matches_configured_mean(service: ServiceTime) -> None:
    rng = random.Random(1)
    samples = [service.sample_s(rng) for _ in range(20_000)]
    assert statistics.fmean(samples) == pytest.approx(0.050, rel=0.03)
    assert min(samples) >= 0


def test_lognormal_spread_matches_cv() -> None:
    rng = random.Random(2)
    samples = [ServiceTime(mean_ms=100, cv=0.4).sample_s(rng) for _ in range(40_000)]
    assert statistics.pstdev(samples) / statistics.fmean(samples) == pytest.approx(0.4, rel=0.05)


def test_settings_file_errors(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="capabilities: unknown capability 'txt2img'"):
        load_target_settings(write_config({"capabilities": {"txt2img": {}}}))
    with pytest.raises(ConfigError, match="slots: Input should be greater than or equal to 1"):
        load_target_settings(write_config({"slots": 0}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_target_settings(write_config({"slot": 2}))
    with pytest.raises(ConfigError, match="spread_ms must not exceed mean_ms"):
        load_target_settings(
            write_config(
                {
                    "capabilities": {
                        "gpu-check": {
                            "service_time": {"distribution": "uniform", "mean_ms": 1, "spread_ms": 2}
                        }
                    }
                }
            )
        )


def test_defaults_cover_every_capability(write_config: Callable[..., Path]) -> None:
    settings = load_target_settings(write_config({"slots": 3, "capabilities": {"gpu-check": {"gpu": True}}}))
    assert settings.slots == 3
    assert settings.for_capability("gpu-check").gpu is True
    assert settings.for_capability("text-to-image").service_time.mean_ms == 400


def test_demo_target_settings_load() -> None:
    from tests.conftest import REPO

    settings = load_target_settings(REPO / "configs" / "demo-target.yaml")
    assert (settings.slots, settings.queue_depth) == (4, 4)
    assert settings.for_capability("gpu-check").gpu is True


ORCH = {"address": "0x" + "a" * 40, "service_uri": "https://127.0.0.1:8935", "pipelines": {"llm": {"m": {}}}}


@pytest.mark.parametrize(
    ("gateway", "words"),
    [
        ({"orchestrators": []}, "gateway.orchestrators: List should have at least 1 item"),
        ({"orchestrators": [ORCH, ORCH]}, "orchestrator address '0xaaaa"),
        ({"orchestrators": [ORCH | {"pipelines": {"txt2img": {"m": {}}}}]}, "unknown pipeline 'txt2img'"),
        (
            {"orchestrators": [ORCH | {"address": "0x12"}]},
            "gateway.orchestrators[0].address: String should match pattern",
        ),
        (
            {"orchestrators": [ORCH | {"failure": "flaky"}]},
            "gateway.orchestrators[0].failure: Input should be 'none', 'down'",
        ),
        ({"orchestrators": [ORCH], "webhook_url": "ftp://x/"}, "gateway.webhook_url"),
        ({"orchestrators": [ORCH], "discovery": "all"}, "gateway.discovery"),
    ],
)
def test_gateway_settings_errors(write_config: Callable[..., Path], gateway: object, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        load_target_settings(write_config({"gateway": gateway}))
    assert "\n" not in caught.value.one_line()


def test_leaderboard_settings_errors(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match=re.escape("leaderboard.fail_first")):
        load_target_settings(write_config({"leaderboard": {"fail_first": -1}}))
    with pytest.raises(ConfigError, match=re.escape("leaderboard.secret_env")):
        load_target_settings(write_config({"leaderboard": {"secret_env": "not a name"}}))


def test_orchestrators_target_settings_load() -> None:
    from tests.conftest import REPO

    settings = load_target_settings(REPO / "configs" / "orchestrators-target.yaml")
    assert settings.gateway is not None and settings.leaderboard is not None
    assert settings.gateway.webhook_url is None  # the tester passes it with --orch-webhook-url
    orchestrators = settings.gateway.orchestrators
    assert [o.failure for o in orchestrators] == ["none", "slow", "down", "always_503"]
    assert orchestrators[0].pipelines["text-to-image"]["stabilityai/sdxl-turbo"].warm is False
    assert settings.edge is None
