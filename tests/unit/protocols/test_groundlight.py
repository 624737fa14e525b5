"""`kind: groundlight`: requests checked against the Groundlight public API spec, answers classified as the
edge endpoint behaves, edge vs cloud observations, and poll until confident against a loopback server."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from inferswarm import derived
from inferswarm.config import ConfigError, load_config, resolve_secret_headers
from inferswarm.locust.client import CapabilityClient
from inferswarm.locust.outcome import OBSERVATIONS, STATUS
from inferswarm.protocols import (
    FailureCategory,
    GroundlightCapability,
    RequestFailure,
    ResponseView,
    protocol_for,
)
from inferswarm.protocols.groundlight import (
    API_PATH,
    OTHER_SOURCE,
    GroundlightProtocol,
    generated_image,
    make_jpeg,
    make_png,
)
from tests.conftest import ASSETS, base_config
from tests.unit.loopback import Loopback, Reply, Request

SPEC_PATH = Path(__file__).resolve().parents[4] / "shared" / "contracts" / "groundlight-public-api.yaml"
CLOUD = "https://api.groundlight.ai"
TOKEN = "tok-s3cr3t-value"
PROTOCOL = protocol_for("groundlight")
IQ_PATH = f"{API_PATH}/iq_2abc"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDLIGHT_API_TOKEN", TOKEN)


def capability(**extra: Any) -> GroundlightCapability:
    data = {"kind": "groundlight", "name": "door", "detector_id": "det_2abcDEF", **extra}
    return GroundlightCapability.model_validate(data)


# -- the spec ----------------------------------------------------------------------------------------------
def require_spec() -> None:
    if not SPEC_PATH.is_file():
        pytest.skip(
            f"the Groundlight spec is not here ({SPEC_PATH}); it lives in the shared contracts checkout"
        )
    pytest.importorskip("openapi_core", reason="openapi-core is a dev dependency: pip install -e '.[dev]'")


@cache
def raw_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@cache
def openapi() -> Any:
    from openapi_core import OpenAPI

    return OpenAPI.from_file_path(str(SPEC_PATH))


def validate(method: str, path_and_query: str, headers: dict[str, str], body: bytes | None) -> None:
    """Raise when the request breaks the spec: path, method, query parameter names and types, required
    parameters, content type, the `x-api-token` the operation's security asks for."""
    require_spec()
    from openapi_core.testing import MockRequest

    url = urlsplit(path_and_query)
    base = urlsplit(raw_spec()["servers"][0]["url"]).path  # "/device-api"
    assert url.path.startswith(base + "/"), url.path
    spec_path = url.path.removeprefix(base)
    args = dict(parse_qsl(url.query, keep_blank_values=True))
    templated = re.sub(r"/iq_[^/]+$", "/{id}", spec_path)
    operation = raw_spec()["paths"][templated][method.lower()]
    known = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(args) <= known, f"not query parameters of {templated}: {set(args) - known}"
    scheme = raw_spec()["components"]["securitySchemes"]["ApiToken"]
    assert scheme["in"] == "header" and scheme["name"] in {k.lower() for k in headers}
    content_type = headers.get("Content-Type")
    request = MockRequest(
        CLOUD, method.lower(), url.path, args=args, headers=headers, data=body, content_type=content_type
    )
    openapi().validate_request(request)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"patience_time": 12.5, "confidence_threshold": 0.75, "human_review": "NEVER", "want_async": True},
        {"mode": "COUNT", "image_format": "png", "image_size": {"width": 32, "height": 24}},
        {"mode": "MULTI_CLASS", "image": "image-64x48.jpg", "human_review": "ALWAYS"},
        {"image": "image-64x48.png", "confidence_threshold": 0, "patience_time": 0},
    ],
)
def test_every_request_the_kind_builds_matches_the_spec(extra: dict[str, Any]) -> None:
    cap = capability(**extra)
    prepared = PROTOCOL.prepare(cap, ASSETS)
    assert prepared.method == "POST"
    for body in prepared.bodies or (prepared.body,):
        assert body
        headers = {**prepared.headers, prepared.request_id_header or "": "req_uu" + "0" * 32}
        validate("POST", prepared.path, headers, body)
    query = dict(parse_qsl(urlsplit(prepared.path).query))
    assert query["detector_id"] == "det_2abcDEF"
    # never the cloud-only parameters the edge answers with 400
    assert not {"inspection_id", "metadata", "image_query_id"} & set(query)
    expected = {
        k: v for k, v in extra.items() if k in ("patience_time", "confidence_threshold", "human_review")
    }
    assert {k: query[k] for k in expected} == {
        k: str(float(v)) if k != "human_review" else v for k, v in expected.items()
    }
    assert query.get("want_async") == ("True" if extra.get("want_async") else None)  # as the SDK sends it


def test_the_poll_request_matches_the_spec(loopback: Loopback) -> None:
    cap = capability(poll_until_confident=True)
    prepared = PROTOCOL.prepare(cap, ASSETS)
    poll = PROTOCOL.poll(cap, ResponseView(201, body=cloud_answer(confidence=0.5)), prepared.headers)
    assert poll is not None and not isinstance(poll, RequestFailure)
    assert (poll.request.method, poll.request.path) == ("GET", IQ_PATH)
    assert "Content-Type" not in poll.request.headers and poll.request.body is None
    validate("GET", poll.request.path, dict(poll.request.headers), None)
    assert (poll.interval_s, poll.backoff, poll.until_s) == (0.25, 1.3, 30.0)  # the SDK's, up to the patience


def test_a_request_breaking_the_spec_is_caught() -> None:
    """The validator itself: it refuses what the spec refuses (so the passes above mean something)."""
    prepared = PROTOCOL.prepare(capability(), ASSETS)
    with pytest.raises(Exception, match="detector_id"):
        validate("POST", API_PATH, dict(prepared.headers), prepared.body)
    with pytest.raises(Exception, match="mimetype"):
        validate("POST", prepared.path, {**prepared.headers, "Content-Type": "text/plain"}, prepared.body)
    with pytest.raises(AssertionError):
        validate("POST", prepared.path, {"Content-Type": "image/jpeg"}, prepared.body)
    with pytest.raises(AssertionError, match="wait"):  # not a parameter of the spec's
        validate("POST", prepared.path + "&wait=1", dict(prepared.headers), prepared.body)


# -- config ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"detector_id": "abc"}, "detector_id"),
        ({"mode": "TEXT"}, "mode"),
        ({"image": "image.gif"}, "image: must be one of"),
        ({"image": "image-64x48.jpg", "distinct_images": 2}, "distinct_images: only for generated images"),
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"human_review": "SOMETIMES"}, "human_review"),
        ({"image_size": {"width": 5000, "height": 480}}, "width"),
        ({"headers": {"X-Request-Id": "mine"}}, "set by the groundlight kind"),
        ({"headers": {"x-api-token": "literal"}}, "credential"),
    ],
)
def test_bad_capability_fields_are_refused(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        capability(**extra)


def test_a_missing_token_variable_is_a_config_error(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    caps = [{"kind": "groundlight", "name": "door", "detector_id": "det_1", "api_token_env": "EDGE_TOKEN"}]
    config = load_config(write_config(base_config(capabilities=caps)))  # loading never reads the variable
    with pytest.raises(ConfigError) as caught:
        resolve_secret_headers(config, {})
    assert caught.value.one_line().endswith(
        "capabilities[0].api_token_env: environment variable EDGE_TOKEN is not set"
    )
    assert resolve_secret_headers(config, {"EDGE_TOKEN": "t"}) == {}  # the capability sends it itself
    monkeypatch.delenv("GROUNDLIGHT_API_TOKEN")
    with pytest.raises(ValueError, match="GROUNDLIGHT_API_TOKEN is not set"):
        PROTOCOL.prepare(capability(), ASSETS)


# -- images ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "width", "height"), [("jpeg", 640, 480), ("jpeg", 61, 19), ("png", 64, 48)])
def test_generated_images_decode_at_their_size_and_differ(fmt: str, width: int, height: int) -> None:
    image_module = pytest.importorskip("PIL.Image", reason="Pillow decodes the images (a test-only check)")
    cap = capability(image_format=fmt, image_size={"width": width, "height": height}, distinct_images=3)
    prepared = PROTOCOL.prepare(cap, ASSETS)
    assert prepared.headers["Content-Type"] == f"image/{fmt}"
    assert len(prepared.bodies) == 3 and len(set(prepared.bodies)) == 3
    assert prepared.body == prepared.bodies[0]
    for body in prepared.bodies:
        with image_module.open(io.BytesIO(body)) as image:
            image.load()  # the whole image decodes (a broken entropy stream raises here)
            assert image.size == (width, height) and image.mode == "RGB"
            low, high = image.convert("L").getextrema()
            assert high - low > 50  # a picture, not a flat fill
    assert generated_image(fmt, width, height, 1) is prepared.bodies[1]  # made once per process


def test_a_jpeg_the_size_of_a_camera_frame() -> None:
    assert 30_000 < len(make_jpeg(640, 480, 7)) < 400_000
    assert make_jpeg(64, 48, 1) != make_jpeg(64, 48, 2)
    assert make_png(8, 8, 1).startswith(b"\x89PNG\r\n\x1a\n")


def test_an_asset_image_is_sent_as_is() -> None:
    prepared = PROTOCOL.prepare(capability(image="image-64x48.png"), ASSETS)
    assert prepared.body == (ASSETS / "image-64x48.png").read_bytes() and prepared.bodies == ()
    assert prepared.headers["Content-Type"] == "image/png"
    cap = capability(image="image-64x48.jpg")
    assert cap.resolve_paths(ASSETS) == [("image", (ASSETS / "image-64x48.jpg").resolve())]
    assert PROTOCOL.describe(cap, ASSETS) == {
        "detector_id": "det_2abcDEF",
        "mode": "BINARY",
        "image": "image-64x48.jpg",
    }


# -- answers -----------------------------------------------------------------------------------------------
def image_query(
    result: dict[str, Any] | None, *, edge: bool = False, done: bool | None = None, **top: Any
) -> bytes:
    document: dict[str, Any] = {
        "id": "iq_2abc",
        "type": "image_query",
        "created_at": "2026-01-01T00:00:00Z",
        "query": "Is the door open?",
        "detector_id": "det_2abcDEF",
        "result_type": (result or {}).get("result_type", "binary_classification"),
        "result": result,
        "patience_time": 30.0,
        "confidence_threshold": 0.9,
        "rois": None,
        "text": None,
        "metadata": {"is_from_edge": True, "edge_result": {"mlb_key": "k"}} if edge else None,
    }
    if done is not None:
        document["done_processing"] = done
    document.update(top)
    return json.dumps(document).encode()


def edge_answer(label: str = "YES", confidence: float = 0.97, **top: Any) -> bytes:
    result = {"label": label, "confidence": confidence, "source": "ALGORITHM", "from_edge": True}
    return image_query({"result_type": "binary_classification", **result}, edge=True, done=True, **top)


def cloud_answer(confidence: float | None = 0.95, source: str = "CLOUD_ENSEMBLE", **result: Any) -> bytes:
    body = {"result_type": "binary_classification", "label": "NO", "confidence": confidence, "source": source}
    return image_query({**body, **result})


def count_answer(**result: Any) -> bytes:
    body = {
        "result_type": "counting",
        "count": 3,
        "greater_than_max": False,
        "confidence": 0.9,
        "source": "ALGORITHM",
    }
    return image_query({**body, "from_edge": True, **result}, edge=True, done=True)


def judged(status: int, body: bytes, **extra: Any) -> tuple[FailureCategory, str] | None:
    failure = PROTOCOL.classify(capability(**extra), ResponseView(status, "application/json", body))
    return None if failure is None else (failure.category, failure.detail)


NOT_READY = b'{"detail": "Edge inference is not ready for det_2abcDEF"}'


@pytest.mark.parametrize(
    ("status", "body", "extra", "expected"),
    [
        (200, edge_answer(), {}, None),
        (200, edge_answer("UNCLEAR", 0.5), {}, None),
        (
            201,
            cloud_answer(),
            {},
            None,
        ),  # the cloud's answer (an escalation, or nginx's 404/405/422 fallback)
        (201, cloud_answer(confidence=None, source="HUMAN_CLOUD_ENSEMBLE"), {}, None),  # a human label
        (200, count_answer(), {"mode": "COUNT"}, None),
        (200, count_answer(count=0, greater_than_max=True), {"mode": "COUNT"}, None),
        (201, count_answer(count=None), {"mode": "COUNT"}, None),  # nullable in the spec
        (
            200,
            image_query({"result_type": "multi_classification", "label": "red", "confidence": 0.8}),
            {"mode": "MULTI_CLASS"},
            None,
        ),
        (201, image_query(None), {"want_async": True}, None),  # want_async: answered later
        (201, image_query(None), {}, (FailureCategory.BAD_BODY, "result is null")),
        (200, edge_answer("MAYBE"), {}, (FailureCategory.BAD_BODY, "result.label is not YES, NO or UNCLEAR")),
        (
            200,
            edge_answer(confidence=1.5),
            {},
            (FailureCategory.BAD_BODY, "result.confidence is not a number in [0, 1]"),
        ),
        (
            200,
            count_answer(count=-1),
            {"mode": "COUNT"},
            (FailureCategory.BAD_BODY, "result.count is not an integer >= 0"),
        ),
        (
            200,
            count_answer(count=2.5),
            {"mode": "COUNT"},
            (FailureCategory.BAD_BODY, "result.count is not an integer >= 0"),
        ),
        (
            200,
            count_answer(count=True),
            {"mode": "COUNT"},
            (FailureCategory.BAD_BODY, "result.count is not an integer >= 0"),
        ),
        (
            200,
            count_answer(greater_than_max="no"),
            {"mode": "COUNT"},
            (FailureCategory.BAD_BODY, "result.greater_than_max is not a boolean"),
        ),
        (
            200,
            edge_answer(),
            {"mode": "COUNT"},
            (FailureCategory.BAD_BODY, "result_type 'binary_classification' for a COUNT detector"),
        ),
        (200, count_answer(), {}, (FailureCategory.BAD_BODY, "result_type 'counting' for a BINARY detector")),
        (200, edge_answer(id=None), {}, (FailureCategory.BAD_BODY, "id is missing or not a string")),
        (
            200,
            edge_answer(done_processing="yes"),
            {},
            (FailureCategory.BAD_BODY, "done_processing is not a boolean"),
        ),
        (200, b"[]", {}, (FailureCategory.BAD_BODY, "body is not an object")),
        (200, b"<html>", {}, (FailureCategory.BAD_BODY, "invalid JSON")),
        (200, b"", {}, (FailureCategory.BAD_BODY, "invalid JSON")),
        (
            415,
            b'{"detail":"Request body must be image bytes"}',
            {},
            (FailureCategory.CLIENT_ERROR, "HTTP 415: Request body must be image bytes"),
        ),
        (
            400,
            b'{"detail":"inspection_id is not supported"}',
            {},
            (FailureCategory.CLIENT_ERROR, "HTTP 400: inspection_id is not supported"),
        ),
        (
            401,
            b'{"detail":"Invalid API token"}',
            {},
            (FailureCategory.CLIENT_ERROR, "HTTP 401: Invalid API token"),
        ),
        # what nginx sent on to the cloud and the cloud refused (an unknown detector)
        (404, b'{"detail":"Not found."}', {}, (FailureCategory.CLIENT_ERROR, "HTTP 404: Not found.")),
        (
            503,
            NOT_READY,
            {},
            (FailureCategory.NOT_READY, "HTTP 503: Edge inference is not ready for det_2abcDEF"),
        ),
        (503, b"", {}, (FailureCategory.NOT_READY, "HTTP 503")),
        (  # a pod with a full queue (the reference target's edge-only overload) is capacity
            503,
            b'{"detail": "The edge-inference server for detector_id=\'det_x\' is at capacity."}',
            {},
            (
                FailureCategory.CAPACITY,
                "HTTP 503: The edge-inference server for detector_id='det_x' is at capacity.",
            ),
        ),
        (
            429,
            b'{"detail":"Request was throttled."}',
            {},
            (FailureCategory.CAPACITY, "HTTP 429: Request was throttled."),
        ),
        (
            500,
            b"Internal Server Error",
            {},
            (FailureCategory.SERVER_ERROR, "HTTP 500: Internal Server Error"),
        ),
    ],
)
def test_classification(status: int, body: bytes, extra: dict[str, Any], expected: Any) -> None:
    assert judged(status, body, **extra) == expected


def test_no_answer_at_all_is_a_transport_failure() -> None:
    failure = PROTOCOL.classify(capability(), ResponseView(0, error=ConnectionRefusedError()))
    assert failure is not None and failure.category is FailureCategory.CONNECTION_ERROR


def observed(body: bytes, elapsed_ms: float = 12.5) -> dict[str, float]:
    cap = capability()
    view = ResponseView(200, "application/json", body)
    assert PROTOCOL.classify(cap, view) is None
    return dict(PROTOCOL.observations(cap, view, elapsed_ms))


def test_edge_and_cloud_answers_are_told_apart() -> None:
    assert observed(edge_answer(confidence=0.97)) == {
        "edge_ms": 12.5,
        "source_algorithm": 12.5,
        "confidence_pct": 97.0,
    }
    assert observed(cloud_answer(0.5), 800.0) == {
        "cloud_ms": 800.0,
        "source_cloud_ensemble": 800.0,
        "confidence_pct": 50.0,
    }
    # either marker says edge: `result.from_edge`, or `metadata.is_from_edge`
    only_flag = image_query({"label": "YES", "confidence": 0.9, "source": "ALGORITHM", "from_edge": True})
    only_metadata = image_query({"label": "YES", "confidence": 0.9, "source": "ALGORITHM"}, edge=True)
    assert "edge_ms" in observed(only_flag) and "edge_ms" in observed(only_metadata)
    # a human label has no confidence; an unknown source is bounded into `source_other`
    assert observed(cloud_answer(None, "HUMAN_CLOUD_ENSEMBLE")) == {
        "cloud_ms": 12.5,
        "source_human_cloud_ensemble": 12.5,
    }
    assert observed(cloud_answer(0.7, "SOMETHING_NEW")) == {
        "cloud_ms": 12.5,
        OTHER_SOURCE: 12.5,
        "confidence_pct": 70.0,
    }
    # want_async's acknowledgement carries no answer yet
    cap = capability(want_async=True)
    assert PROTOCOL.observations(cap, ResponseView(201, body=image_query(None)), 3.0) == []


def test_observation_names_are_derived_entries() -> None:
    for metric in ("edge_ms", "cloud_ms", "confidence_pct", "source_algorithm", OTHER_SOURCE):
        assert derived.split_entry(f"door:{metric}") == ("door", metric)
    assert derived.unit("source_edge") == "ms" and derived.unit("confidence_pct") == "%"
    assert derived.split_entry("door:source_") is None and derived.split_entry("door") is None


# -- against a server --------------------------------------------------------------------------------------
@pytest.fixture
def env() -> Iterator[Environment]:
    environment = Environment()
    runner = environment.create_local_runner()
    yield environment
    runner.quit()


@pytest.fixture
def fired(env: Environment) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: events.append(kw))
    return events


def client_for(
    env: Environment, base_url: str, cap: GroundlightCapability, timeout_s: float = 5.0
) -> CapabilityClient:
    prepared = PROTOCOL.prepare(cap, ASSETS)
    session = FastHttpSession(
        base_url,
        request_event=env.events.request,
        user=None,
        max_retries=0,
        network_timeout=10.0,
        connection_timeout=5.0,
    )
    return CapabilityClient(session, env, cap, PROTOCOL, prepared, timeout_s, base_url)


def test_requests_rotate_images_with_a_fresh_request_id_each(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", API_PATH, Reply(200, edge_answer()))
    cap = capability(distinct_images=3, image_size={"width": 16, "height": 16})
    client = client_for(env, loopback.url, cap)
    for _ in range(6):
        assert client.send() is True
    sent = loopback.hits("POST", API_PATH)
    images = [request.body for request in sent]
    assert (
        len(set(images)) == 3 and images[:3] == images[3:]
    )  # each image in turn, from the client's own start
    ids = [request.headers["x-request-id"] for request in sent]
    assert all(re.fullmatch(r"req_uu[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 6
    assert {request.headers["x-api-token"] for request in sent} == {TOKEN}
    assert {request.headers["content-type"] for request in sent} == {"image/jpeg"}
    assert fired[0]["url"] == f"{loopback.url}{API_PATH}?detector_id=det_2abcDEF"


def test_a_run_counts_edge_and_cloud_answers_and_not_ready(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    answers = iter(
        [Reply(503, NOT_READY), Reply(201, cloud_answer(0.6)), Reply(200, edge_answer(confidence=0.9))]
    )
    loopback.route("POST", API_PATH, lambda _request: next(answers))
    client = client_for(env, loopback.url, capability())
    assert [client.send() for _ in range(3)] == [False, True, True]

    assert isinstance(fired[0]["exception"], RequestFailure)
    assert fired[0]["exception"].category is FailureCategory.NOT_READY and fired[0]["context"] == {
        STATUS: 503
    }
    assert OBSERVATIONS not in fired[0]["context"]  # a failure has no observations
    assert dict(fired[1]["context"][OBSERVATIONS]).keys() == {
        "cloud_ms",
        "source_cloud_ensemble",
        "confidence_pct",
    }
    assert dict(fired[2]["context"][OBSERVATIONS])["edge_ms"] == fired[2]["response_time"]
    stats = env.stats.entries
    counts = {name: entry.num_requests for (name, _), entry in stats.items()}
    assert counts == {
        "door": 3,
        "door:ok": 2,
        "door:cloud_ms": 1,
        "door:edge_ms": 1,
        "door:source_cloud_ensemble": 1,
        "door:source_algorithm": 1,
        "door:confidence_pct": 2,
    }
    assert stats[("door:confidence_pct", derived.OBSERVED_TYPE)].total_response_time == pytest.approx(150.0)
    assert env.stats.total.num_requests == 3  # observations are not requests


def test_a_token_echoed_by_the_server_is_masked(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", API_PATH, Reply(401, json.dumps({"detail": f"bad token {TOKEN}"}).encode()))
    assert client_for(env, loopback.url, capability()).send() is False
    assert TOKEN not in str(fired[0]["exception"]) and "***" in str(fired[0]["exception"])


# -- poll until confident ----------------------------------------------------------------------------------
def poll_server(loopback: Loopback, submit: Reply, answers: list[bytes]) -> list[Request]:
    """POST answers `submit`; GET the query answers `answers` in order (the last one from then on)."""
    polls: list[Request] = []

    def get(request: Request) -> Reply:
        polls.append(request)
        return Reply(200, answers[min(len(polls), len(answers)) - 1])

    loopback.route("POST", API_PATH, submit)
    loopback.route("GET", IQ_PATH, get)
    return polls


def test_an_unconfident_answer_is_polled_until_confident(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    unsure, sure = cloud_answer(0.6), cloud_answer(0.95, "HUMAN_CLOUD_ENSEMBLE")
    polls = poll_server(loopback, Reply(201, cloud_answer(0.5)), [unsure, sure])
    client = client_for(env, loopback.url, capability(poll_until_confident=True))
    assert client.send() is True

    [event] = fired
    assert len(polls) == 2 and event["context"][STATUS] == 200
    assert event["response_time"] >= 0.25e3 + 0.325e3 - 10  # two polls: 0.25 s, then 1.3 times that
    assert {request.headers["x-api-token"] for request in polls} == {TOKEN}
    assert "content-type" not in polls[0].headers
    # the observations are of the final answer, timed submit to answer
    assert dict(event["context"][OBSERVATIONS]) == {
        "cloud_ms": event["response_time"],
        "source_human_cloud_ensemble": event["response_time"],
        "confidence_pct": 95.0,
    }


def test_a_confident_or_done_answer_is_not_polled(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    polls = poll_server(
        loopback, Reply(200, edge_answer(confidence=0.6)), [cloud_answer(0.99)]
    )  # done_processing
    client = client_for(env, loopback.url, capability(poll_until_confident=True))
    assert client.send() is True
    loopback.route("POST", API_PATH, Reply(201, cloud_answer(0.95)))  # above the body's threshold (0.9)
    assert client.send() is True
    loopback.route("POST", API_PATH, Reply(201, cloud_answer(0.95)))
    assert client_for(
        env, loopback.url, capability(poll_until_confident=True, confidence_threshold=0.99)
    ).send()
    assert len(polls) == 1  # only the last: its threshold is above the answer's confidence


def test_the_answer_at_the_patience_time_is_the_answer(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    """patience 0.7 s: polls after 0.25 s and 0.325 s more; the third wait (0.4225 s) is cut to land on
    0.7 s, and that answer, still unsure, is the job's answer (as the SDK returns it)."""
    polls = poll_server(loopback, Reply(201, cloud_answer(0.5)), [cloud_answer(0.6)])
    client = client_for(env, loopback.url, capability(poll_until_confident=True, patience_time=0.7))
    assert client.send() is True
    [event] = fired
    assert len(polls) == 3
    assert event["response_time"] >= 690
    assert dict(event["context"][OBSERVATIONS])["confidence_pct"] == 60.0


def test_want_async_is_polled_until_it_has_an_answer(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    polls = poll_server(loopback, Reply(201, image_query(None)), [image_query(None), cloud_answer(0.97)])
    cap = capability(poll_until_confident=True, want_async=True)
    assert client_for(env, loopback.url, cap).send() is True
    assert len(polls) == 2 and dict(fired[0]["context"][OBSERVATIONS])["confidence_pct"] == 97.0


def test_a_failed_poll_fails_the_job(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    loopback.route("POST", API_PATH, Reply(201, cloud_answer(0.5)))
    loopback.route("GET", IQ_PATH, Reply(503, NOT_READY))
    assert client_for(env, loopback.url, capability(poll_until_confident=True)).send() is False
    [event] = fired
    assert event["exception"].category is FailureCategory.NOT_READY and event["context"] == {STATUS: 503}


def test_a_never_answered_async_query_times_out(
    env: Environment, fired: list[dict[str, Any]], loopback: Loopback
) -> None:
    polls = poll_server(loopback, Reply(201, image_query(None)), [image_query(None)])
    cap = capability(poll_until_confident=True, want_async=True, patience_time=0.3)
    assert client_for(env, loopback.url, cap, timeout_s=1.0).send() is False
    [event] = fired
    assert event["exception"].category is FailureCategory.TIMEOUT and event["context"] == {STATUS: 0}
    assert 2 <= len(polls) <= 6  # after the patience, at the full (growing) interval: never a busy loop


def test_the_protocol_is_registered() -> None:
    assert isinstance(PROTOCOL, GroundlightProtocol) and PROTOCOL.kind == "groundlight"
