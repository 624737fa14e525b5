"""An orchestrators config writer and the contracts checkout, for the tester's tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ASSETS

CONTRACTS = Path(__file__).resolve().parents[4] / "shared" / "contracts"


def contract(name: str) -> Any:
    path = CONTRACTS / name
    if not path.is_file():
        pytest.skip(f"{name} is not here ({path}); it lives in the shared contracts checkout")
    return json.loads(path.read_text())


def orchestrators_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kind": "orchestrators",
        "name": "matrix",
        "region": "FRA",
        "gateway": {"url": "http://127.0.0.1:9"},
        "assets_dir": str(ASSETS),
        "pipelines": [
            {
                "name": "Text to image",
                "uri": "text-to-image",
                "capture_response": True,
                "parameters": {"prompt": "a bear", "width": 512, "height": 512},
            },
            {"name": "Image to image", "uri": "image-to-image", "parameters": {"prompt": "a bear"}},
            {"name": "Audio to text", "uri": "audio-to-text"},
        ],
    }
    config.update(overrides)
    return config


@pytest.fixture
def write_orchestrators(tmp_path: Path) -> Callable[..., Path]:
    def write(**overrides: Any) -> Path:
        path = tmp_path / "orchestrators.yaml"
        path.write_text(yaml.safe_dump(orchestrators_config(**overrides)))
        return path

    return write
