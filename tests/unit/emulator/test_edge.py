"""The Groundlight edge-endpoint emulation (emulator.edge), served in process on loopback.

Readiness and poll answers are timed by `EdgeState.clock`: the tests replace it with a clock they move.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from inferswarm.config import ConfigError
from inferswarm.emulator.app import create_app
from inferswarm.emulator.edge import EdgeError, EdgeState, QueryParams, new_iq_id
from inferswarm.emulator.settings import EdgeSettings, TargetSettings, load_target_settings
from tests.conftest import ASSETS
from tests.integration.http import request
from tests.unit.emulator.conftest import Served, instant_settings, serve

INSTANT = {"distribution": "fixed", "mean_ms": 0}
PNG = (ASSETS / "image-64x48.png").read_bytes()
JPEG = (ASSETS / "image-64x48.jpg").read_bytes()
BINARY = "det_binary"
COUNT = "det_count"
MULTI = "det_multi"
LATE = "det_late"
SUBMIT = "/device-api/v1/image-queries"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def detectors(**overrides: Any) -> list[dict[str, Any]]:
    common = {"service_time": INSTANT, "escalation_share": 0.0}
    rows = [
        {"id": BINARY, "mode": "BINARY", "online_after_s": 2, "before_online": "escalate"},
        {
            "id": COUNT,
            "mode": "COUNT",
            "max_count": 3,
            "class_name": "person",
            "online_after_s": 4,
            "before_online": "not_ready",
            "confidence_threshold": 0.8,
        },
        {"id": MULTI, "mode": "MULTI_CLASS", "class_names": ["cat", "dog"], "online_after_s": 0},
        {"id": LATE, "mode": "BINARY", "online_after_s": 1, "pod_starts": "first_query"},
    ]
    return [{**common, **row, **overrides} for row in rows]


def edge_settings(edge: dict[str, Any] | None = None, **det_overrides: Any) -> TargetSettings:
    section = {
        "detectors": detectors(**det_overrides),
        "ready_after_s": 1,
        "cloud_latency": INSTANT,
        "cloud_confident_after_s": 3,
        "max_image_bytes": 64 * 1024,
        **(edge or {}),
    }
    return instant_settings(edge=section, seed=5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def target(clock: Clock) -> Iterator[Served]:
    with serve(edge_settings()) as served:
        served.app.state.edge.reset(clock)
        yield served


@contextmanager
def served_with(clock: Clock, settings: TargetSettings) -> Iterator[Served]:
    with serve(settings) as served:
        served.app.state.edge.reset(clock)
        yield served


def submit(
    target: Served,
    detector: str | None,
    body: bytes = PNG,
    content_type: str | None = "image/png",
    **params: Any,
) -> tuple[int, Any]:
    query = {"detector_id": detector, **params} if detector is not None else params
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, raw = request(f"{target.url}{SUBMIT}?{urlencode(query)}", body=body, headers=headers)
    return status, json.loads(raw)


def get(target: Served, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, raw = request(f"{target.url}{path}", method="GET", headers=headers)
    return status, json.loads(raw)


def is_edge(iq: dict[str, Any]) -> bool:
    return iq["result"]["from_edge"] is True and iq["metadata"] == {"is_from_edge": True}


# --- settings -----------------------------------------------------------------------------------


def test_without_an_edge_section_no_edge_route_is_served() -> None:
    with serve(instant_settings()) as plain:
        assert get(plain, "/health/live")[0] == 404
        assert request(f"{plain.url}{SUBMIT}?detector_id=det_x", body=PNG)[0] == 404
        assert "edge" not in get(plain, "/stats")[1]


def test_edge_settings_errors_are_one_line(write_config: Callable[..., Path]) -> None:
    def load(edge: Any) -> None:
        load_target_settings(write_config({"edge": edge}, name="target.yaml"))

    with pytest.raises(ConfigError, match=r"edge\.detectors: .*at least 1"):
        load({"detectors": []})
    with pytest.raises(ConfigError, match=r"edge\.detectors\[0\]\.mode: Input should be 'BINARY', 'COUNT'"):
        load({"detectors": [{"id": "det_a", "mode": "TEXT"}]})
    with pytest.raises(ConfigError, match=r"edge\.detectors\[0\]\.id: String should match pattern"):
        load({"detectors": [{"id": "door"}]})
    with pytest.raises(ConfigError, match=r"edge\.detectors: .*'det_a' appears twice"):
        load({"detectors": [{"id": "det_a"}, {"id": "det_a"}]})
    with pytest.raises(ConfigError, match=r"edge\.detectors\[0\]\.before_online: Input should be"):
        load({"detectors": [{"id": "det_a", "before_online": "wait"}]})
    with pytest.raises(
        ConfigError, match=r"edge\.detectors\[0\]\.escalation_share: .*less than or equal to 1"
    ):
        load({"detectors": [{"id": "det_a", "escalation_share": 1.5}]})


def test_the_shipped_edge_target_config_loads() -> None:
    settings = load_target_settings(Path(__file__).parents[3] / "configs" / "edge-target.yaml")
    assert settings.edge is not None
    dets = {d.id: d for d in settings.edge.detectors}
    assert {d.mode for d in dets.values()} == {"BINARY", "COUNT"}
    assert sorted(d.online_after_s for d in dets.values()) == [2.0, 4.0]


# --- readiness timeline ---------------------------------------------------------------------------


def test_readiness_timeline(target: Served, clock: Clock) -> None:
    start = clock.now
    assert get(target, "/health/live") == (200, {"status": "alive"})
    assert get(target, "/health/ready") == (503, {"detail": "not ready"})
    assert get(target, "/edge-detector-readiness") == (
        200,
        {BINARY: {"ready": False}, COUNT: {"ready": False}, MULTI: {"ready": True}, LATE: {"ready": False}},
    )
    # Before its pod is up: the escalating detector answers from the cloud, the edge-only one 503.
    status, iq = submit(target, BINARY)
    assert status == 201 and iq["result"]["source"] == "CLOUD_ENSEMBLE" and "from_edge" not in iq["result"]
    assert iq["metadata"] is None and iq["done_processing"] is False
    status, body = submit(target, COUNT)
    assert status == 503
    assert body == {
        "detail": "Edge predictions are required, but an edge-inference server is not available "
        f"for detector_id='{COUNT}'."
    }

    clock.now = start + 1
    assert get(target, "/health/ready") == (200, {"status": "ready"})
    clock.now = start + 2
    ready = get(target, "/edge-detector-readiness")[1]
    assert (ready[BINARY], ready[COUNT]) == ({"ready": True}, {"ready": False})
    status, iq = submit(target, BINARY)
    assert status == 200 and is_edge(iq)
    assert submit(target, COUNT)[0] == 503
    clock.now = start + 4
    status, iq = submit(target, COUNT)
    assert status == 200 and is_edge(iq)

    snap = get(target, "/stats")[1]["edge"]
    assert (snap[BINARY]["edge"], snap[BINARY]["cloud"], snap[BINARY]["not_ready"]) == (1, 1, 0)
    assert (snap[COUNT]["edge"], snap[COUNT]["cloud"], snap[COUNT]["not_ready"]) == (1, 0, 2)


def test_a_pod_that_starts_on_the_first_query(target: Served, clock: Clock) -> None:
    clock.now += 100  # long after the start: this pod has not started yet
    assert get(target, "/edge-detector-readiness")[1][LATE] == {"ready": False}
    assert submit(target, LATE)[0] == 201  # the first query creates the deployment: cloud answer
    clock.now += 0.5
    assert get(target, "/edge-detector-readiness")[1][LATE] == {"ready": False}
    clock.now += 0.5
    assert get(target, "/edge-detector-readiness")[1][LATE] == {"ready": True}
    assert submit(target, LATE)[0] == 200


# --- answers ----------------------------------------------------------------------------------------


def test_edge_answer_shapes_per_mode(target: Served, clock: Clock) -> None:
    clock.now += 4
    status, iq = submit(target, BINARY, patience_time=12, confidence_threshold=0.5)
    assert status == 200
    assert set(iq) == {
        "metadata",
        "id",
        "type",
        "created_at",
        "query",
        "detector_id",
        "result_type",
        "result",
        "patience_time",
        "confidence_threshold",
        "rois",
        "text",
        "done_processing",
    }
    assert iq["id"].startswith("iq_") and len(iq["id"]) == 30
    assert (iq["type"], iq["detector_id"], iq["result_type"]) == (
        "image_query",
        BINARY,
        "binary_classification",
    )
    assert (iq["patience_time"], iq["confidence_threshold"], iq["rois"], iq["text"]) == (
        12.0,
        0.5,
        None,
        None,
    )
    assert iq["done_processing"] is True and iq["metadata"] == {"is_from_edge": True}
    result = iq["result"]
    assert set(result) == {"confidence", "source", "result_type", "from_edge", "label"}
    assert (
        result["label"] in ("YES", "NO") and result["source"] == "ALGORITHM" and result["from_edge"] is True
    )
    assert 0.5 <= result["confidence"] <= 1.0

    counts = []
    for _ in range(40):
        status, iq = submit(target, COUNT, body=JPEG, content_type="image/jpeg")
        result = iq["result"]
        assert status == 200 and iq["result_type"] == "counting" and "label" not in result
        assert 0 <= result["count"] <= 3
        assert result["greater_than_max"] is (result["count"] == 3 and result["greater_than_max"])
        counts.append((result["count"], result["greater_than_max"]))
    assert {c for c, _ in counts} == {0, 1, 2, 3} and (3, True) in counts  # 4 drawn as 3 + greater_than_max

    labels = {submit(target, MULTI)[1]["result"]["label"] for _ in range(20)}
    assert labels == {"cat", "dog"}
    assert get(target, f"/device-api/v1/detectors/{MULTI}")[1]["mode_configuration"] == {
        "class_names": ["cat", "dog"],
        "num_classes": 2,
    }


def test_low_confidence_escalates_or_comes_back_not_done(clock: Clock) -> None:
    with served_with(clock, edge_settings(escalation_share=1.0)) as target:
        clock.now += 4
        status, iq = submit(target, BINARY)  # escalating detector: the cloud answers
        assert status == 201 and iq["result"]["source"] == "CLOUD_ENSEMBLE" and not iq["done_processing"]
        assert iq["metadata"]["edge_result"]["from_edge"] is True
        assert iq["metadata"]["edge_result"]["confidence"] < 0.9
        status, iq = submit(target, COUNT)  # edge-only detector: the edge answers, not done
        assert status == 200 and is_edge(iq) and iq["done_processing"] is False
        assert iq["result"]["confidence"] < 0.8
        snap = get(target, "/stats")[1]["edge"]
        assert (snap[BINARY]["low_confidence"], snap[COUNT]["low_confidence"]) == (1, 1)


def test_escalation_share_is_the_share_of_cloud_answers(clock: Clock) -> None:
    with served_with(clock, edge_settings(escalation_share=0.25)) as target:
        clock.now += 4
        statuses = [submit(target, BINARY)[0] for _ in range(300)]
    assert set(statuses) == {200, 201}
    assert 40 <= statuses.count(201) <= 110  # 75 expected; binomial sd 7.5


def test_a_threshold_from_the_query_decides_escalation(target: Served, clock: Clock) -> None:
    clock.now += 4
    # Every edge confidence is at or above the detector's 0.9 (share 0), never above 1.
    assert {submit(target, BINARY, confidence_threshold=0.0)[0] for _ in range(10)} == {200}
    status, iq = submit(target, BINARY, confidence_threshold=1)
    assert status in (200, 201) and iq["confidence_threshold"] == 1.0


def test_poll_until_confident(target: Served, clock: Clock) -> None:
    status, iq = submit(target, BINARY)  # pod not up: escalated
    assert status == 201
    path = f"{SUBMIT}/{iq['id']}"
    assert get(target, path) == (200, iq)
    clock.now += 2.9
    assert get(target, path)[1]["done_processing"] is False
    clock.now += 0.1
    status, answered = get(target, path)
    assert status == 200 and answered["id"] == iq["id"] and answered["done_processing"] is True
    assert answered["result"] == {
        "confidence": 1.0,
        "source": "CLOUD",
        "result_type": "binary_classification",
        "label": answered["result"]["label"],
    }
    assert answered["result"]["label"] == iq["result"]["label"]
    clock.now += 1
    confident = get(target, path)[1]
    assert confident == answered  # stays answered

    clock.now += 4  # a confident edge answer polls as itself
    status, edge_iq = submit(target, BINARY)
    assert status == 200 and get(target, f"{SUBMIT}/{edge_iq['id']}") == (200, edge_iq)


def test_want_async_and_human_review(target: Served, clock: Clock) -> None:
    clock.now += 4
    status, iq = submit(target, BINARY, want_async="True")
    assert status == 201 and iq["result"] is None and iq["done_processing"] is False
    clock.now += 3
    assert get(target, f"{SUBMIT}/{iq['id']}")[1]["result"]["source"] == "CLOUD"
    status, iq = submit(target, BINARY, human_review="ALWAYS")
    assert status == 201 and "from_edge" not in iq["result"]
    assert submit(target, BINARY, human_review="NEVER")[0] == 200
    assert submit(target, COUNT, want_async="true") == (
        400,
        {"detail": "Async requests are not supported when 'always_return_edge_prediction' is set to True."},
    )
    assert submit(target, COUNT, human_review="ALWAYS") == (
        400,
        {"detail": "Human review cannot be required if edge predictions are required."},
    )


def test_a_saturated_pod_escalates_or_refuses() -> None:
    """slots 1, queue 0: of five queries at once one runs on the edge, the rest go elsewhere."""
    settings = edge_settings(
        service_time={"distribution": "fixed", "mean_ms": 50}, slots=1, queue_depth=0, online_after_s=0
    ).edge
    assert settings is not None

    async def burst(detector: str) -> list[int]:
        edge = EdgeState(settings, seed=1)

        async def one() -> int:
            try:
                return (await edge.submit(QueryParams(detector)))[0]
            except EdgeError as exc:
                assert exc.detail == f"The edge-inference server for detector_id='{detector}' is at capacity."
                return exc.status

        statuses = await asyncio.gather(*(one() for _ in range(5)))
        assert edge.snapshot()[detector]["saturated"] == 4
        return sorted(statuses)

    assert asyncio.run(burst(BINARY)) == [200, 201, 201, 201, 201]
    assert asyncio.run(burst(COUNT)) == [200, 503, 503, 503, 503]


# --- what the SDK calls, status ---------------------------------------------------------------------


def test_detector_me_and_token_routes(target: Served) -> None:
    status, det = get(target, f"/device-api/v1/detectors/{COUNT}")
    assert status == 200
    assert (det["id"], det["type"], det["mode"], det["name"]) == (COUNT, "detector", "COUNT", COUNT)
    assert det["mode_configuration"] == {"max_count": 3, "class_name": "person"}
    assert (det["confidence_threshold"], det["patience_time"], det["metadata"]) == (0.8, 30.0, None)
    assert get(target, f"/device-api/v1/detectors/{BINARY}")[1]["mode_configuration"] is None
    assert get(target, "/device-api/v1/detectors/det_nope") == (404, {"detail": "Not found."})
    me = get(target, "/device-api/v1/me")[1]
    assert set(me) == {"email", "username", "group", "is_superuser"} and me["is_superuser"] is False
    token = get(target, "/device-api/v1/api-tokens/by-snippet/api_2abcdefghijklmnop")[1]
    assert token["token_ttl"] is None and token["raw_key_snippet"] == "api_2abcdefghijklmnop"
    assert get(target, "/ping") == (200, {"message": "Hello!"})


def test_status_metrics(target: Served, clock: Clock) -> None:
    metrics = get(target, "/status/metrics.json")[1]
    info = metrics["device_info"]
    assert 0 <= info["cpu_utilization"] <= 100 and 0 < info["memory_utilization"] <= 100
    assert info["memory_available_bytes"] > 0 and info["cpucores"] >= 1
    assert set(metrics) >= {"device_info", "activity_metrics", "detector_details", "k3s_stats"}
    assert set(json.loads(metrics["detector_details"])) == {MULTI}  # only pods that are up
    clock.now += 4
    submit(target, COUNT)
    metrics = get(target, "/status/metrics.json")[1]
    assert set(json.loads(metrics["detector_details"])) == {BINARY, COUNT, MULTI}
    activity = json.loads(metrics["activity_metrics"]["detector_activity_previous_hour"])
    assert activity == {COUNT: {"hourly_total_iqs": 1}}
    pods = json.loads(metrics["k3s_stats"]["pod_statuses"])
    assert sorted(pods.values()) == ["Running", "Running", "Running"]  # det_late has not started


# --- what the edge refuses ----------------------------------------------------------------------


def test_refusals(target: Served) -> None:
    assert submit(target, BINARY, content_type="application/octet-stream") == (
        415,
        {"detail": "Request body must be image bytes"},
    )
    assert submit(target, BINARY, content_type=None)[0] == 415
    for param in ("inspection_id", "metadata", "image_query_id"):
        assert submit(target, BINARY, **{param: "x"}) == (
            400,
            {"detail": f"Invalid query parameters: {{'{param}'}}"},
        )
    assert submit(target, None) == (400, {"detail": "detector_id: field required"})
    assert submit(target, "det_unknown") == (404, {"detail": "Not found."})
    for name, value in [
        ("patience_time", "-1"),
        ("patience_time", "nan"),
        ("patience_time", "x"),
        ("confidence_threshold", "1.5"),
        ("confidence_threshold", "inf"),
        ("human_review", "SOMETIMES"),
        ("want_async", "maybe"),
    ]:
        status, body = submit(target, BINARY, **{name: value})
        assert status == 400 and body["detail"].startswith(f"{name}: "), (name, value, body)
    assert submit(target, BINARY, body=b"not an image") == (
        400,
        {"detail": "Request body could not be decoded as an image"},
    )
    assert submit(target, BINARY, body=b"")[0] == 400
    status, body = submit(target, BINARY, body=PNG + b"\0" * (64 * 1024))
    assert status == 413 and body == {"detail": f"request body exceeds {64 * 1024} bytes"}
    assert get(target, f"{SUBMIT}/iq_doesnotexist") == (404, {"detail": "Not found."})
    assert get(target, f"{SUBMIT}/{new_iq_id()}") == (404, {"detail": "Not found."})
    assert get(target, f"{SUBMIT}/..%2F..")[0] == 404


def test_api_token(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    monkeypatch.setenv("EDGE_TEST_TOKEN", "api_secret")
    with served_with(clock, edge_settings({"api_token_env": "EDGE_TEST_TOKEN"})) as target:
        assert get(target, "/device-api/v1/me") == (
            401,
            {"detail": "Authentication credentials were not provided."},
        )
        assert get(target, "/device-api/v1/me", {"x-api-token": "api_wrong"}) == (
            401,
            {"detail": "Invalid token."},
        )
        assert get(target, "/device-api/v1/me", {"x-api-token": "api_secret"})[0] == 200
        status, _, raw = request(
            f"{target.url}{SUBMIT}?detector_id={MULTI}",
            body=PNG,
            headers={"Content-Type": "image/png", "x-api-token": "api_secret"},
        )
        assert status == 200 and b"api_secret" not in raw
        assert get(target, "/health/live")[0] == 200  # health needs no token
    monkeypatch.delenv("EDGE_TEST_TOKEN")
    with pytest.raises(ValueError, match="EDGE_TEST_TOKEN is not set"):
        create_app(edge_settings({"api_token_env": "EDGE_TEST_TOKEN"}))


def test_edge_settings_model_bounds() -> None:
    with pytest.raises(ValueError, match="class_names must be distinct"):
        EdgeSettings.model_validate({"detectors": [{"id": "det_a", "class_names": ["a", "a"]}]})


BAD_QUERIES = [
    "",
    "detector_id=",
    "detector_id=det_binary&patience_time=1e999",
    "detector_id=det_binary&confidence_threshold=-0",
    "detector_id=det_binary&confidence_threshold=0x1",
    "detector_id=" + "d" * 4000,
    "detector_id=det_binary&want_async=",
    "detector_id=det_binary&human_review=",
    "detector_id=%ff%fe",
    "detector_id=det_binary&detector_id=det_nope",
]


def test_bad_input_never_gets_a_5xx(target: Served) -> None:
    problems = []
    bodies = [
        (b"", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"{}", "application/json"),
        (PNG, "image/"),
    ]
    # Pods down: escalations (201) are answers too; every refusal is a 4xx `{"detail": str}`.
    for query in BAD_QUERIES:
        for body, content_type in bodies:
            status, _, raw = request(
                f"{target.url}{SUBMIT}?{query}", body=body, headers={"Content-Type": content_type}
            )
            if status >= 500 or (status >= 400 and not isinstance(json.loads(raw).get("detail"), str)):
                problems.append(f"{status} for {query[:60]!r} {body[:10]!r}: {raw[:100]!r}")
    for path in [
        f"{SUBMIT}/%00",
        "/device-api/v1/detectors/%ff",
        "/device-api/v1/api-tokens/by-snippet/a%20b",
    ]:
        status, _, raw = request(f"{target.url}{path}", method="GET")
        if status >= 500:
            problems.append(f"{status} for GET {path}")
    assert problems == []
