"""The emulated Livepeer leaderboard: HMAC-signed `/api/post_stats`, its refusals, regions, raw stats."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest

from inferswarm.emulator.settings import LeaderboardSettings
from tests.integration.http import request
from tests.unit.emulator.conftest import Served, instant_settings, serve

SECRET = "s3cret-for-tests"
ENV = "LB_TEST_SECRET"
STAT: dict[str, Any] = {
    "region": "FRA",
    "orchestrator": "0x22a48674a6fdf9335d89b6dbc05c38e2dc181475",
    "pipeline": "text-to-image",
    "model": "ByteDance/SDXL-Lightning",
    "model_is_warm": True,
    "success_rate": 1,
    "round_trip_time": 0.25,
    "errors": [],
    "timestamp": 1725029035,
    "input_parameters": json.dumps({"prompt": "a bear"}),
    "response_payload": "{}",
}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Authorization": signature}


def post(target: Served, stat: Any, secret: str = SECRET) -> tuple[int, str, bytes]:
    body = json.dumps(stat).encode()
    status, headers, answer = request(f"{target.url}/api/post_stats", body=body, headers=signed(body, secret))
    return status, headers.get("content-type", ""), answer


@pytest.fixture
def board(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv(ENV, SECRET)
    with serve(instant_settings(leaderboard={"secret_env": ENV, "fail_first": 0})) as target:
        yield target


def raw_stats(target: Served, query: str = "") -> list[dict[str, Any]]:
    status, _, body = request(f"{target.url}/api/raw_stats{query}", "GET")
    assert status == 200
    return list(json.loads(body)["stats"])


def test_signed_stat_is_accepted_and_stored(board: Served) -> None:
    status, kind, body = post(board, STAT)
    assert (status, body) == (200, b"ok") and kind.startswith("text/plain")
    post(board, STAT | {"region": "LAX", "pipeline": "llm"})
    stored = raw_stats(board)
    assert len(stored) == 2
    assert {k: stored[0][k] for k in STAT} == STAT
    assert stored[0]["body_sha256"] == hashlib.sha256(json.dumps(STAT).encode()).hexdigest()
    assert stored[0]["received_epoch_s"] > 1.7e9
    assert [s["region"] for s in raw_stats(board, "?pipeline=llm")] == ["LAX"]
    assert raw_stats(board, "?region=FRA&model=ByteDance/SDXL-Lightning")[0]["pipeline"] == "text-to-image"


def test_wrong_signature_is_refused_403(board: Served) -> None:
    status, kind, body = post(board, STAT, secret="not-it")
    assert (status, json.loads(body)) == (403, {"error": "request can not be authenticated"})
    assert kind.startswith("application/json")
    body_bytes = json.dumps(STAT).encode()
    # signed over other bytes than those sent (re-serialised JSON): refused too
    headers = signed(json.dumps(STAT, indent=1).encode())
    assert request(f"{board.url}/api/post_stats", body=body_bytes, headers=headers)[0] == 403
    no_auth = {"Content-Type": "application/json"}
    assert request(f"{board.url}/api/post_stats", body=body_bytes, headers=no_auth)[0] == 403
    assert raw_stats(board) == []
    status, _, stats = request(f"{board.url}/stats", "GET")
    assert SECRET not in stats.decode()
    assert json.loads(stats)["leaderboard"]["refused"] == {"403": 3}


def test_unknown_region_is_refused(board: Served) -> None:
    status, _, body = post(board, STAT | {"region": "MARS"})
    assert (status, json.loads(body)) == (400, {"error": "invalid region"})
    assert post(board, {k: v for k, v in STAT.items() if k != "region"})[0] == 400


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("success_rate", "1", "string into Go struct field Stats.success_rate of type float64"),
        ("timestamp", 1.5, "number 1.5 into Go struct field Stats.timestamp of type int64"),
        ("model_is_warm", 1, "number into Go struct field Stats.model_is_warm of type bool"),
        ("input_parameters", {"prompt": "a bear"}, "object into Go struct field Stats.input_parameters"),
        ("errors", [{"error_code": 503, "count": 1}], "number into Go struct field Error.errors.error_code"),
        ("errors", [{"error_code": "503", "count": "1"}], "string into Go struct field Error.errors.count"),
    ],
)
def test_wrong_field_type_is_refused(board: Served, field: str, value: Any, words: str) -> None:
    status, _, body = post(board, STAT | {field: value})
    assert status == 400
    assert json.loads(body)["error"].startswith(f"json: cannot unmarshal {words}")
    assert raw_stats(board) == []


def test_bad_json_and_non_object(board: Served) -> None:
    body = b'{"region": '
    status, _, answer = request(f"{board.url}/api/post_stats", body=body, headers=signed(body))
    assert status == 400 and json.loads(answer)["error"].startswith("invalid JSON")
    assert post(board, [STAT])[0] == 400


def test_stat_errors_with_messages_are_accepted(board: Served) -> None:
    failed = STAT | {
        "success_rate": 0,
        "errors": [{"error_code": "503", "message": '{"error":{"message":"x"}}', "count": 1}],
        "model_is_warm": None,  # a JSON null leaves the Go field at its zero value
    }
    assert post(board, failed)[0] == 200
    assert raw_stats(board)[0]["errors"][0]["count"] == 1


def test_fail_first_answers_500_text_then_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SECRET)
    with serve(instant_settings(leaderboard={"secret_env": ENV, "fail_first": 2})) as target:
        assert post(target, STAT | {"region": "MARS"})[0] == 400  # refusals do not count
        first, second, third = post(target, STAT), post(target, STAT), post(target, STAT)
        assert (first[0], second[0], third[0]) == (500, 500, 200)
        assert first[1].startswith("text/plain") and first[2].endswith(b"\n")
        assert third[2] == b"ok"
        assert len(raw_stats(target)) == 1


def test_unset_secret_means_the_empty_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with serve(instant_settings(leaderboard={"secret_env": ENV})) as target:
        assert post(target, STAT, secret="")[0] == 200
        assert post(target, STAT, secret=SECRET)[0] == 403


def test_regions_default_and_served(board: Served) -> None:
    default = LeaderboardSettings().regions
    ids = {r.id for r in default}
    assert {"GLOBAL", "FRA", "LAX", "MDW", "NYC"} <= ids
    assert {r.type for r in default} == {"transcoding", "ai"}
    status, _, body = request(f"{board.url}/api/regions", "GET")
    regions = json.loads(body)["regions"]
    assert status == 200 and regions[0] == {"id": "GLOBAL", "name": "Global", "type": "transcoding"}
    assert len(regions) == len(default)
