"""The orchestrators config: seed 002's pipelines list, checked against the pipelines' real fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inferswarm.config import ConfigError
from inferswarm.orchestrators.config import load_orchestrators_config
from tests.conftest import ASSETS


def test_a_valid_config_loads_with_defaults(write_orchestrators: Callable[..., Path]) -> None:
    config = load_orchestrators_config(write_orchestrators())
    assert config.region == "FRA" and config.jobs_per_cell == 1
    assert config.gateway.discovery_url == "http://127.0.0.1:9"  # the CLI port defaults to the job URL
    assert config.webhook.port == 7934 and config.leaderboard.secret_env == "LEADERBOARD_SECRET"
    assert config.assets_path == ASSETS.resolve()
    # the file field defaults to a bundled asset: an image for image-to-image, audio for audio-to-text
    capability = config.pipelines[1].capability("timbrooks/instruct-pix2pix")
    assert (
        capability.files == {"image": "image-64x48.png"}
        and capability.model_id == "timbrooks/instruct-pix2pix"
    )
    assert config.pipelines[2].capability(None).files == {"audio": "tone-1s-16khz.wav"}
    assert config.display_names()["text to image"] == "text-to-image"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"kind": "run"}, "kind: an orchestrators config starts with `kind: orchestrators`"),
        ({"region": "fra"}, "region: "),
        ({"gateway": {"url": "ftp://x"}}, "gateway.url: "),
        ({"jobs_per_cell": 0}, "jobs_per_cell: "),
        (
            {"pipelines": [{"uri": "text-to-image", "parameters": {"prompt": "a", "steps": 3}}]},
            "parameters.steps: not a field of text-to-image",
        ),
        (
            {"pipelines": [{"uri": "text-to-image", "parameters": {"width": 5}}]},
            "parameters.prompt: required by text-to-image",
        ),
        (
            {
                "pipelines": [
                    {"uri": "upscale", "content_type": "application/json", "parameters": {"prompt": "a"}}
                ]
            },
            "content_type: upscale takes multipart/form-data",
        ),
        (
            {"pipelines": [{"uri": "audio-to-text"}, {"uri": "audio-to-text"}]},
            "pipeline 'audio-to-text' appears twice",
        ),
        (
            {
                "pipelines": [
                    {"uri": "upscale", "parameters": {"prompt": "a"}, "files": {"image": "nope.png"}}
                ]
            },
            "pipelines[0].files.image: asset file not found",
        ),
        ({"leaderboard": {"secret": "s3cret"}}, "leaderboard.secret: "),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    write_orchestrators: Callable[..., Path], override: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_orchestrators_config(write_orchestrators(**override))
    line = caught.value.one_line()
    assert expected in line and "\n" not in line
    assert "s3cret" not in line
