"""The emulated go-livepeer gateway: discovery shapes, and jobs routed to the orchestrator a real webhook
(a stdlib HTTP server on loopback) names."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inferswarm import livepeer_capabilities as caps
from inferswarm.protocols.livepeer import PIPELINES
from tests.integration.http import request
from tests.unit.emulator.conftest import Served, instant_settings, serve

A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40
D = "0x" + "d" * 40
E = "0x" + "e" * 40
LIGHTNING = "ByteDance/SDXL-Lightning"
TURBO = "stabilityai/sdxl-turbo"
LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct"
JSON = {"Content-Type": "application/json"}


def uri(n: int) -> str:
    return f"https://127.0.0.1:{n}8935"


def orchestrators() -> list[dict[str, Any]]:
    return [
        {
            "address": A.upper().replace("0X", "0x"),  # answered in lower case
            "service_uri": uri(1),
            "pipelines": {
                "text-to-image": {LIGHTNING: {"capacity": 2}, TURBO: {"warm": False}},
                "llm": {LLAMA: {"capacity": 4}},
            },
            "cold_start_ms": 300,
            "gpu": {"name": "NVIDIA A40", "memory_total": 48_000_000_000},
        },
        {
            "address": B,
            "service_uri": uri(2),
            "pipelines": {
                "text-to-image": {LIGHTNING: {}},
                "image-to-image": {"timbrooks/instruct-pix2pix": {}},
            },
        },
        {
            "address": C,
            "service_uri": uri(3),
            "pipelines": {"text-to-image": {LIGHTNING: {}}},
            "failure": "down",
        },
        {
            "address": D,
            "service_uri": uri(4),
            "pipelines": {"text-to-image": {LIGHTNING: {}}},
            "failure": "always_503",
            "active": False,
        },
        {
            "address": E,
            "service_uri": uri(5),
            "pipelines": {"text-to-image": {LIGHTNING: {}}},
            "failure": "wrong_model",
        },
    ]


class Webhook:
    """The tester's `GET /orchestrators`: answers `[{"address": uri}]` for the pinned URIs (or a status)."""

    def __init__(self) -> None:
        self.pinned: list[str] = []
        self.status = 200
        self.hits = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hook.hits += 1
                body = json.dumps([{"address": a, "score": 0.5} for a in hook.pinned]).encode()
                if hook.status != 200:
                    body = b"boom"
                self.send_response(hook.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orchestrators"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def pin(self, *uris: str) -> None:
        self.pinned = list(uris)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def gateway_settings(webhook_url: str | None = None, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"orchestrators": orchestrators(), "discovery_timeout_ms": 100, **extra}
    if webhook_url is not None:
        settings["webhook_url"] = webhook_url
    return settings


@pytest.fixture
def routed(webhook: Webhook) -> Iterator[Served]:
    with serve(instant_settings(gateway=gateway_settings(webhook.url))) as target:
        yield target


def get(target: Served, path: str) -> Any:
    status, _, body = request(f"{target.url}{path}", "GET")
    assert status == 200, body
    return json.loads(body)


def text_to_image(target: Served, model: str | None = LIGHTNING) -> tuple[int, Any]:
    payload: dict[str, Any] = {"prompt": "a bear"}
    if model is not None:
        payload["model_id"] = model
    status, _, body = request(f"{target.url}/text-to-image", body=json.dumps(payload).encode(), headers=JSON)
    return status, json.loads(body)


def last_job(target: Served) -> dict[str, Any]:
    jobs = get(target, "/gateway/served")["jobs"]
    assert jobs
    return dict(jobs[-1])


# --- the capability table


def test_capability_table_lookups() -> None:
    assert caps.by_id(27) == caps.Capability(27, "Text to image", "text-to-image")
    assert caps.by_name("LLM") == caps.by_name("Large language model") == caps.by_id(33)
    assert caps.by_name("text to speech") == caps.by_id(36)
    assert caps.by_name("nope") is None and caps.by_id(26) is None
    assert caps.uri_of_id(30) == "upscale" and caps.uri_of_id(37) is None
    assert caps.id_of_uri("/segment-anything-2") == 32 and caps.id_of_uri("nope") is None
    # every batch pipeline the target serves has an id, and ids 27..37 all have names
    assert {pipeline: caps.id_of_uri(pipeline) is not None for pipeline in PIPELINES} == dict.fromkeys(
        PIPELINES, True
    )
    assert sorted(int(k) for k in caps.names()) == list(range(27, 38))


# --- discovery


def test_network_capabilities_shape_with_omitempty(routed: Served) -> None:
    answer = get(routed, "/getNetworkCapabilities")
    assert answer["capabilities_names"]["27"] == "Text to image"
    assert answer["capabilities_names"]["33"] == "Llm"
    entries = {o["address"]: o for o in answer["orchestrators"]}
    assert list(entries) == [A, B, C, D, E]  # the down one is still in the gateway's cache
    a = entries[A]
    assert (a["local_address"], a["orch_uri"]) == (A, uri(1))
    capabilities = a["capabilities"]
    assert capabilities["bitstring"] == [(1 << 27) | (1 << 33)]
    assert capabilities["capacities"] == {"27": 3, "33": 4}
    models = capabilities["constraints"]["PerCapability"]["27"]["models"]
    assert models[LIGHTNING]["warm"] is True and models[LIGHTNING]["capacity"] == 2
    assert "warm" not in models[TURBO]  # false is omitted, as protobuf's omitempty writes it
    assert "capacityInUse" not in models[LIGHTNING]  # so is 0
    assert set(capabilities["constraints"]["PerCapability"]) == {"27", "33"}
    assert [(h["pipeline"], h["model_id"]) for h in a["hardware"]] == [
        ("text-to-image", LIGHTNING),
        ("text-to-image", TURBO),
        ("llm", LLAMA),
    ]
    assert a["hardware"][0]["gpu_info"]["0"]["name"] == "NVIDIA A40"
    assert entries[B]["hardware"] == []
    assert {p["constraint"] for p in a["capabilities_prices"]} == {LIGHTNING, TURBO, LLAMA}


def test_legacy_capabilities_shape(routed: Served) -> None:
    answer = get(routed, "/getOrchestratorAICapabilities")
    a = answer["orchestrators"][0]
    assert a["address"] == A
    assert [p["type"] for p in a["pipelines"]] == ["Text to image", "Llm"]
    assert a["pipelines"][0]["models"] == [
        {"name": LIGHTNING, "status": {"Cold": 0, "Warm": 2}},
        {"name": TURBO, "status": {"Cold": 1, "Warm": 0}},
    ]
    assert answer["orchestrators"][1]["pipelines"][1]["type"] == "Image to image"


def test_registered_orchestrators(routed: Served) -> None:
    listed = get(routed, "/registeredOrchestrators")
    assert [(o["Address"], o["ServiceURI"], o["Active"]) for o in listed] == [
        (A, uri(1), True),
        (B, uri(2), True),
        (C, uri(3), True),
        (D, uri(4), False),
        (E, uri(5), True),
    ]
    assert listed[0]["Status"] == "Registered" and listed[0]["PricePerPixel"] == "1200/1"
    assert isinstance(listed[0]["DelegatedStake"], int)


def test_discovery_endpoints_follow_the_settings() -> None:
    settings = instant_settings(gateway=gateway_settings(discovery="legacy", registered=False))
    with serve(settings) as target:
        paths = ("/getNetworkCapabilities", "/getOrchestratorAICapabilities", "/registeredOrchestrators")
        assert [request(f"{target.url}{p}", "GET")[0] for p in paths] == [404, 200, 404]
    with serve(instant_settings()) as target:  # no gateway section: nothing of it is served
        assert request(f"{target.url}/gateway/served", "GET")[0] == 404
        assert request(f"{target.url}/getNetworkCapabilities", "GET")[0] == 404
        assert text_to_image(target)[0] == 200


# --- routing


def test_each_job_is_served_by_the_pinned_orchestrator(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(1))
    status, body = text_to_image(routed)
    assert status == 200 and len(body["images"]) == 1
    assert (last_job(routed)["orchestrator"], last_job(routed)["service_uri"]) == (A, uri(1))
    webhook.pin(uri(2) + "/")  # a trailing slash names the same orchestrator
    assert text_to_image(routed)[0] == 200
    job = last_job(routed)
    assert (job["orchestrator"], job["pipeline"], job["model"], job["status"]) == (
        B,
        "text-to-image",
        LIGHTNING,
        200,
    )
    webhook.pin(uri(1))
    llm = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": False}
    status, _, _ = request(f"{routed.url}/llm", body=json.dumps(llm).encode(), headers=JSON)
    assert status == 200 and last_job(routed)["orchestrator"] == A and last_job(routed)["pipeline"] == "llm"
    assert webhook.hits == 3
    stats = get(routed, "/stats")["gateway"]["webhook"]
    assert (stats["polls"], stats["failures"], stats["last_answer"]) == (3, 0, [uri(1)])


def test_pinned_down_orchestrator_finds_none(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(3))
    began = time.monotonic()
    status, body = text_to_image(routed)
    assert time.monotonic() - began >= 0.1  # discovery_timeout_ms
    assert (status, body) == (503, {"error": {"message": "no orchestrators available"}})
    job = last_job(routed)
    assert (job["orchestrator"], job["status"], job["reason"]) == (None, 503, "no orchestrators available")


def test_always_503_and_wrong_model(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(4))
    assert text_to_image(routed) == (503, {"error": {"message": "Service Unavailable Error"}})
    assert (last_job(routed)["orchestrator"], last_job(routed)["reason"]) == (D, "always_503")
    webhook.pin(uri(5))
    status, body = text_to_image(routed)
    assert status == 400 and LIGHTNING in body["error"]["message"]
    assert (last_job(routed)["orchestrator"], last_job(routed)["status"]) == (E, 400)


def test_model_not_advertised_finds_none(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(1))
    assert text_to_image(routed, "someone/else") == (
        503,
        {"error": {"message": "no orchestrators available"}},
    )
    # no model_id: the pipeline's default (sdxl-turbo), which A has cold; B does not have it at all
    webhook.pin(uri(2))
    assert text_to_image(routed, None)[0] == 503
    assert last_job(routed)["model"] == TURBO


def test_webhook_error_keeps_the_last_list(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(2))
    assert text_to_image(routed)[0] == 200
    webhook.status = 500
    webhook.pin(uri(1))  # not seen: the gateway keeps the list it had
    assert text_to_image(routed)[0] == 200
    assert last_job(routed)["orchestrator"] == B
    stats = get(routed, "/stats")["gateway"]["webhook"]
    assert (stats["polls"], stats["failures"], stats["last_error"]) == (2, 1, "HTTP 500")


def test_refresh_interval_caches_the_list(webhook: Webhook) -> None:
    webhook.pin(uri(2))
    with serve(instant_settings(gateway=gateway_settings(webhook.url, webhook_refresh_s=60))) as target:
        for _ in range(3):
            assert text_to_image(target)[0] == 200
        assert webhook.hits == 1
        assert [j["orchestrator"] for j in get(target, "/gateway/served")["jobs"]] == [B, B, B]


def test_without_webhook_every_orchestrator_is_a_candidate() -> None:
    with serve(instant_settings(gateway=gateway_settings())) as target:
        assert text_to_image(target)[0] == 200
        assert last_job(target)["orchestrator"] == A  # the first that takes it
        status, _, _ = request(
            f"{target.url}/image-to-image",
            body=b"",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert status == 400  # the pipeline's own checks come first, unchanged
        assert len(get(target, "/gateway/served")["jobs"]) == 1


def test_capacity_is_enforced_per_model(webhook: Webhook) -> None:
    slow = {
        "address": A,
        "service_uri": uri(1),
        "pipelines": {"text-to-image": {LIGHTNING: {}}},
        "slow_ms": 600,
    }
    webhook.pin(uri(1))
    settings = instant_settings(gateway={"orchestrators": [slow], "webhook_url": webhook.url})
    with serve(settings) as target:
        first: list[int] = []
        thread = threading.Thread(target=lambda: first.append(text_to_image(target)[0]))
        thread.start()
        deadline = time.monotonic() + 5
        while not get(target, "/stats")["gateway"]["in_use"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert get(target, "/stats")["gateway"]["in_use"] == {f"{A}/text-to-image/{LIGHTNING}": 1}
        models = get(target, "/getNetworkCapabilities")["orchestrators"][0]["capabilities"]["constraints"]
        assert models["PerCapability"]["27"]["models"][LIGHTNING]["capacityInUse"] == 1
        assert text_to_image(target) == (503, {"error": {"message": "Service Unavailable Error"}})
        assert last_job(target)["reason"] == "insufficient capacity"
        thread.join(5)
        assert first == [200]
        assert text_to_image(target)[0] == 200  # free again


def test_cold_model_waits_once_then_is_warm(routed: Served, webhook: Webhook) -> None:
    webhook.pin(uri(1))
    began = time.monotonic()
    assert text_to_image(routed, TURBO)[0] == 200
    assert time.monotonic() - began >= 0.3  # cold_start_ms
    assert last_job(routed)["reason"] == "served (cold start)"
    began = time.monotonic()
    assert text_to_image(routed, TURBO)[0] == 200
    assert time.monotonic() - began < 0.25 and last_job(routed)["reason"] == "served"
    models = get(routed, "/getNetworkCapabilities")["orchestrators"][0]["capabilities"]["constraints"]
    assert models["PerCapability"]["27"]["models"][TURBO]["warm"] is True


def test_bearer_guards_jobs_not_discovery(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_TOKEN", "tok")
    webhook.pin(uri(1))
    settings = instant_settings(auth_token_env="GW_TEST_TOKEN", gateway=gateway_settings(webhook.url))
    with serve(settings) as target:
        assert request(f"{target.url}/getNetworkCapabilities", "GET")[0] == 200
        body = json.dumps({"prompt": "a bear", "model_id": LIGHTNING}).encode()
        assert request(f"{target.url}/text-to-image", body=body, headers=JSON)[0] == 401
        headers = {**JSON, "Authorization": "Bearer tok"}
        assert request(f"{target.url}/text-to-image", body=body, headers=headers)[0] == 200
        assert webhook.hits == 1  # the refused request never reached the gateway
