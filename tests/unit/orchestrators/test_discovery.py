"""Discovery in both of the gateway's shapes (PROTOCOLS.md section 2), and the cells planned from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferswarm.orchestrators.config import load_orchestrators_config
from inferswarm.orchestrators.discovery import (
    DiscoveryError,
    ModelInfo,
    parse_legacy,
    parse_network,
    plan_cells,
)

A, B = "0x" + "a" * 40, "0x" + "b" * 40

# go-livepeer's /getNetworkCapabilities: proto omitempty drops `warm: false` and zero counts.
NETWORK: dict[str, Any] = {
    "capabilities_names": {"27": "Text to image", "31": "Audio to text", "35": "Live video to video"},
    "orchestrators": [
        {
            "address": A.upper().replace("0X", "0x"),
            "local_address": A,
            "orch_uri": "https://a.example:8935",
            "capabilities": {
                "bitstring": [1],
                "capacities": {"27": 1},
                "version": "0.8.0",
                "constraints": {
                    "minVersion": "0.7.9",
                    "PerCapability": {
                        "27": {
                            "models": {
                                "ByteDance/SDXL-Lightning": {
                                    "warm": True,
                                    "capacity": 2,
                                    "runnerVersion": "v1",
                                },
                                "stabilityai/sdxl-turbo": {"runnerVersion": "v1"},
                            }
                        },
                        "35": {"models": {"noop": {"warm": True}}},
                        "99": {"models": {"x": {}}},
                    },
                },
            },
            "hardware": [
                {
                    "pipeline": "text-to-image",
                    "model_id": "ByteDance/SDXL-Lightning",
                    "gpu_info": {"0": {"name": "RTX 4090", "memory_total": 25393692672}},
                }
            ],
        },
        {"address": B, "orch_uri": "https://b.example:8935", "capabilities": {"constraints": {}}},
        {"orch_uri": "https://nameless.example:8935"},
    ],
}

LEGACY: dict[str, Any] = {
    "orchestrators": [
        {
            "address": A,
            "pipelines": [
                {
                    "type": "Text to image",
                    "models": [
                        {"name": "m1", "status": {"Cold": 0, "Warm": 1}},
                        {"name": "m2", "status": {"Cold": 1, "Warm": 0}},
                    ],
                },
                {"type": "Large language model", "models": [{"name": "llama", "status": {"Warm": 2}}]},
                {"type": "Live video to video", "models": [{"name": "comfy", "status": {"Warm": 1}}]},
            ],
        },
        {"address": B, "pipelines": [{"type": "Upscale", "models": [{"name": "x4", "status": {}}]}]},
        {"address": "0x" + "c" * 40, "pipelines": []},
    ]
}
REGISTERED = [
    {
        "Address": A.upper().replace("0X", "0x"),
        "ServiceURI": "https://a.example:8935",
        "Active": True,
        "Status": "Registered",
        "PricePerPixel": "1200/1",
        "RewardCut": 0,
    },
    {"Address": B, "ServiceURI": "https://b.example:8935", "Active": True},
    {"Address": "0x" + "c" * 40, "ServiceURI": "https://c.example:8935", "Active": False},
]


def test_network_shape_reads_warm_from_per_capability_and_omitted_fields_as_false() -> None:
    found = parse_network(NETWORK)
    assert [o.address for o in found.orchestrators] == [A, B]  # addresses lower-cased; nameless skipped
    a = found.orchestrators[0]
    assert a.service_uri == "https://a.example:8935"
    assert a.pipelines == {
        "text-to-image": {
            "ByteDance/SDXL-Lightning": ModelInfo(warm=True, capacity=2),
            "stabilityai/sdxl-turbo": ModelInfo(warm=False, capacity=0),  # omitted warm and capacity
        }
    }
    assert a.hardware[0]["gpu_info"]["0"]["name"] == "RTX 4090"
    assert found.orchestrators[1].pipelines == {}
    assert any(
        "capability 35 (Live video to video) is not a batch pipeline; skipped" in n for n in found.notices
    )
    assert any("capability '99' (unknown to inferswarm)" in n for n in found.notices)
    assert any("no address; skipped" in n for n in found.notices)


def test_legacy_shape_maps_display_names_and_takes_service_uris_from_the_registry() -> None:
    found = parse_legacy(LEGACY, REGISTERED, {"text to image": "text-to-image"})
    assert [o.address for o in found.orchestrators] == [A, B]  # c is not active: skipped with a notice
    a, b = found.orchestrators
    assert a.service_uri == "https://a.example:8935" and b.service_uri == "https://b.example:8935"
    assert a.pipelines == {
        "text-to-image": {"m1": ModelInfo(True), "m2": ModelInfo(False)},
        "llm": {"llama": ModelInfo(True)},  # seed 002's "Large language model" is the llm pipeline
    }
    assert b.pipelines == {"upscale": {"x4": ModelInfo(False)}}  # no Warm count: cold
    assert any("'Live video to video' is not a batch pipeline" in n for n in found.notices)
    assert any(n.startswith("0xcccc") and "not an active registered orchestrator" in n for n in found.notices)


def test_legacy_without_a_registry_keeps_orchestrators_without_uris() -> None:
    found = parse_legacy(LEGACY, None, {})
    assert [o.service_uri for o in found.orchestrators] == ["", "", ""]


@pytest.mark.parametrize("document", [[], {"orchestrators": {}}, None])
def test_a_shape_without_orchestrators_is_a_discovery_error(document: Any) -> None:
    with pytest.raises(DiscoveryError, match="no `orchestrators` list"):
        parse_network(document)
    with pytest.raises(DiscoveryError, match="no `orchestrators` list"):
        parse_legacy(document, None, {})


def test_cells_are_the_configured_pipelines_and_models_after_filters(
    write_orchestrators: Callable[..., Path],
) -> None:
    found = parse_legacy(LEGACY, REGISTERED, {})
    config = load_orchestrators_config(write_orchestrators())
    cells, dropped = plan_cells(config, found)
    assert [(c.orchestrator, c.pipeline, c.model, c.warm) for c in cells] == [
        (A, "text-to-image", "m1", True),
        (A, "text-to-image", "m2", False),
    ]
    reasons = {(d["orchestrator"], d["pipeline"]): d["reason"] for d in dropped}
    assert reasons[(A, "llm")] == reasons[(B, "upscale")] == "pipeline not in the config's pipelines"

    warm = load_orchestrators_config(write_orchestrators(filters={"warm_only": True}))
    assert [c.model for c in plan_cells(warm, found)[0]] == ["m1"]
    excluded = load_orchestrators_config(
        write_orchestrators(filters={"orchestrators": {"exclude": ["https://a.example:8935"]}})
    )
    assert plan_cells(excluded, found)[0] == []
    models = load_orchestrators_config(write_orchestrators(filters={"models": {"include": ["m2"]}}))
    assert [c.model for c in plan_cells(models, found)[0]] == ["m2"]


def test_without_a_service_uri_an_orchestrator_cannot_be_pinned(
    write_orchestrators: Callable[..., Path],
) -> None:
    found = parse_legacy(LEGACY, None, {})
    config = load_orchestrators_config(write_orchestrators())
    cells, dropped = plan_cells(config, found)
    assert cells == [] and {d["reason"] for d in dropped} == {"no service URI to pin the gateway to"}
    # without the webhook (a test gateway per orchestrator, or one orchestrator) it can be tested
    unpinned = load_orchestrators_config(write_orchestrators(webhook={"enabled": False}))
    assert len(plan_cells(unpinned, found)[0]) == 2
