"""The real `groundlight` SDK (a dev dependency) against the reference target as a Groundlight edge endpoint.

The SDK checks connectivity (`GET /device-api/v1/me`, twice), asks whether its token rotates
(`GET /device-api/v1/api-tokens/by-snippet/...`), looks detectors up and submits image queries; it parses
every answer with its own models (the openapi client's, then pydantic's `model.ImageQuery`). So the
shapes the emulation answers are the ones the SDK expects from a real endpoint.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferswarm.emulator.launcher import ReferenceTarget
from tests.conftest import ASSETS

groundlight = pytest.importorskip(
    "groundlight", reason="the groundlight SDK is not installed (pip install groundlight: the dev extra)"
)
model = pytest.importorskip("model", reason="the groundlight SDK's models are not installed")
internalapi = pytest.importorskip("groundlight.internalapi")
openapi_exceptions = pytest.importorskip("groundlight_openapi_client.exceptions")
ApiException = openapi_exceptions.ApiException

REPO = Path(__file__).parents[2]
TARGET_CONFIG = REPO / "configs" / "edge-target.yaml"
BINARY = "det_binary_demo"
COUNT = "det_count_demo"
TOKEN = "api_" + "0inferswarmSdkTest" * 2  # the SDK wants 20 [A-Za-z0-9_] characters at least
JPEG = (ASSETS / "image-64x48.jpg").read_bytes()
PNG = (ASSETS / "image-64x48.png").read_bytes()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_until_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readiness = get_json(f"{url}/edge-detector-readiness")
        if all(entry["ready"] for entry in readiness.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"detectors not ready after {timeout_s} s: {readiness}")


@pytest.fixture(scope="module")
def target() -> Iterator[ReferenceTarget]:
    with ReferenceTarget(TARGET_CONFIG) as served:
        yield served


@pytest.fixture
def gl(target: ReferenceTarget, tmp_path: Path) -> Iterator[Any]:
    client = groundlight.Groundlight(endpoint=target.url, api_token=TOKEN, token_dir=tmp_path)
    yield client
    client.close()


def test_the_sdk_connects_and_reads_the_detectors(
    target: ReferenceTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The endpoint as seed 001 gives it: GROUNDLIGHT_ENDPOINT and GROUNDLIGHT_API_TOKEN.
    monkeypatch.setenv("GROUNDLIGHT_ENDPOINT", target.url)
    monkeypatch.setenv("GROUNDLIGHT_API_TOKEN", TOKEN)
    with groundlight.Groundlight(token_dir=tmp_path) as client:
        assert client.endpoint == f"{target.url}/device-api"
        assert client.whoami() == "loadtest@inferswarm.invalid"
        me = client.me()
        assert isinstance(me, model.Me) and me.is_superuser is False and me.group.name == "inferswarm"

        binary = client.get_detector(BINARY)
        assert isinstance(binary, model.Detector)
        assert (binary.mode, binary.query, binary.confidence_threshold) == (
            "BINARY",
            "Is the door open?",
            0.9,
        )
        count = client.get_detector(COUNT)
        assert count.mode == "COUNT" and count.mode_configuration == {"max_count": 10, "class_name": "person"}
        with pytest.raises(groundlight.NotFoundError):
            client.get_detector("det_not_configured")


def answers(gl: Any, detector: str, n: int) -> list[Any]:
    out = []
    for i in range(n):
        iq = gl.submit_image_query(detector, JPEG if i % 2 else PNG, wait=0)
        assert isinstance(iq, model.ImageQuery) and iq.detector_id == detector
        out.append(iq)
    return out


def test_binary_answers_parsed_by_the_sdk(target: ReferenceTarget, gl: Any) -> None:
    wait_until_ready(target.url)
    iqs = answers(gl, BINARY, 30)
    edge = [iq for iq in iqs if iq.result.from_edge]
    cloud = [iq for iq in iqs if not iq.result.from_edge]
    assert len(edge) >= 15  # 10 % escalate (seeded): nearly all answer from the edge
    for iq in iqs:
        assert isinstance(iq.result, model.BinaryClassificationResult)
        assert iq.result_type == model.ResultTypeEnum.binary_classification
        assert iq.result.label in (model.Label.YES, model.Label.NO)
    for iq in edge:
        assert iq.metadata == {"is_from_edge": True} and iq.result.source == "ALGORITHM"
        assert iq.result.confidence >= 0.9 and iq.done_processing is True
    for iq in cloud:  # low confidence: escalated, the cloud's first answer, not done
        assert iq.result.from_edge is None and iq.result.source == "CLOUD_ENSEMBLE"
        assert iq.result.confidence < 0.9 and iq.done_processing is False
        assert iq.metadata["edge_result"]["from_edge"] is True


def test_count_answers_parsed_by_the_sdk(target: ReferenceTarget, gl: Any) -> None:
    wait_until_ready(target.url)
    iqs = answers(gl, COUNT, 30)
    for iq in iqs:  # edge-only: every answer from the edge, low-confidence ones not done
        assert isinstance(iq.result, model.CountingResult)
        assert iq.result_type == model.ResultTypeEnum.counting
        assert iq.result.from_edge is True and iq.metadata == {"is_from_edge": True}
        assert iq.result.source == "ALGORITHM"
        assert 0 <= iq.result.count <= 10
        assert iq.result.greater_than_max is False or iq.result.count == 10
        assert iq.done_processing is (iq.result.confidence >= 0.8)
    assert len({iq.result.count for iq in iqs}) > 3


def test_the_sdk_polls_an_escalated_query_until_confident(target: ReferenceTarget, gl: Any) -> None:
    # human_review=ALWAYS skips the edge: the cloud answers (201), confident 1.5 s later. The SDK fetches
    # the detector's threshold, then polls with its 0.25 s x 1.3 backoff.
    iq = gl.submit_image_query(BINARY, JPEG, human_review="ALWAYS", wait=20)
    assert iq.result.source == "CLOUD" and iq.result.confidence == 1.0 and iq.done_processing is True
    assert iq.result.from_edge is None
    again = gl.get_image_query(iq.id)
    assert again.id == iq.id and again.result.label == iq.result.label


def test_the_sdk_sees_what_the_edge_refuses(gl: Any) -> None:
    for kwargs in ({"inspection_id": "inspect_1"}, {"metadata": {"line": 3}}, {"image_query_id": "iq_abc"}):
        with pytest.raises(ApiException) as caught:
            gl.submit_image_query(BINARY, JPEG, wait=0, **kwargs)
        assert caught.value.status == 400 and "Invalid query parameters" in caught.value.body
    with pytest.raises(ApiException) as caught:
        gl.submit_image_query("det_not_configured", JPEG, wait=0)
    assert caught.value.status == 404


def test_the_sdk_retries_a_not_ready_pod_then_gives_up(tmp_path: Path) -> None:
    """A detector whose edge-only pod never comes up: 503, which the SDK retries 3 times."""
    settings = yaml.safe_load(TARGET_CONFIG.read_text())
    settings["edge"]["detectors"] = [
        {"id": "det_never", "mode": "COUNT", "online_after_s": 3600, "before_online": "not_ready"}
    ]
    config = tmp_path / "edge-never.yaml"
    config.write_text(yaml.safe_dump(settings))
    with ReferenceTarget(config) as never:
        client = groundlight.Groundlight(endpoint=never.url, api_token=TOKEN, token_dir=tmp_path)
        try:
            with pytest.raises(internalapi.InternalApiError) as caught:
                client.submit_image_query("det_never", JPEG, wait=0)
        finally:
            client.close()
        assert caught.value.__cause__.status == 503
        assert "edge-inference server is not available" in caught.value.__cause__.body
        stats = never.stats()
        assert stats is not None and stats["edge"]["det_never"]["not_ready"] == 4  # 1 + 3 retries
