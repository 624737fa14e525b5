"""The config model built from the registries, and what a load kind is told about the rest of the config."""

from __future__ import annotations

from inferswarm.config import RunConfig, parse_config, run_config_model
from inferswarm.config.schema import valid_tags
from inferswarm.load import LoadContext, load_kinds
from inferswarm.protocols import protocols
from tests.conftest import base_config


def test_load_context_names_the_capabilities_weights_gates_and_the_longest_timeout() -> None:
    caps = [
        {"name": "a", "kind": "json", "path": "/a", "weight": 3},
        {"name": "b", "kind": "json", "path": "/b", "request_timeout_s": 45},
        {"name": "c", "kind": "json", "path": "/c", "request_timeout_s": 2},
    ]
    config = parse_config(base_config(capabilities=caps, slo=["p95_ms < 9"]))  # the target's timeout is 10 s
    assert config.load_context() == LoadContext(
        capabilities=("a", "b", "c"), longest_timeout_s=45, weights=(3, 1, 1), gates=("p95_ms < 9",)
    )
    short = parse_config(base_config(capabilities=[caps[0], caps[2]]))
    assert short.load_context().longest_timeout_s == 10  # the target's, where no capability overrides it


def test_the_model_is_built_once_per_set_of_kinds() -> None:
    model = run_config_model()
    assert model is run_config_model() and issubclass(model, RunConfig)
    assert isinstance(parse_config(base_config()), model)


def test_valid_tags_are_the_registries() -> None:
    tags = valid_tags()
    assert tags == {"kind": sorted(protocols()), "shape": sorted(load_kinds())}
    assert {"json", "multipart", "livepeer", "openai", "byoc"} <= set(tags["kind"])
    assert {"ramp", "stages", "cycle"} <= set(tags["shape"])
