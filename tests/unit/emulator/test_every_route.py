"""Every route the reference target serves, fed malformed bodies: never a 5xx, always a 4xx that says why.

The routes come from the app itself, so a new route without a row in ROUTES fails here until it has one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute

from inferswarm.emulator.settings import BYOC_ROUTES
from inferswarm.protocols.livepeer import PIPELINES
from inferswarm.protocols.multipart import encode_multipart
from tests.conftest import ASSETS
from tests.integration.http import request
from tests.unit.emulator.conftest import Served, instant_settings, serve

JSON = "application/json"
BOUNDARY = "b0undary"
BYOC_PATH = "/process/request/{route:path}"
BYOC_CAPABILITY = {"text-to-image": "text-to-image", "prompt-enhance": "prompt-enhance"}
LLM_FIELDS = [
    "model",
    "messages",
    "prompt",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
]
LLM_FIELDS += ["temperature", "top_p", "top_k", "n", "presence_penalty"]


@dataclass
class Row:
    base: dict[str, Any]
    fields: list[str]
    files: dict[str, str] = field(default_factory=dict)
    """Multipart routes: file part -> asset."""
    text_errors: bool = False
    """BYOC answers with the gateway's text/plain errors, not JSON."""


def pipeline_row(name: str) -> Row:
    spec = PIPELINES[name]
    base: dict[str, Any] = {key: "a" for key in spec.required}
    files = {spec.file_field: "tone-1s-16khz.wav" if spec.file_field == "audio" else "image-64x48.png"}
    return Row(base, [*spec.fields, "model_id"], files if spec.multipart else {})


ECHO_IMAGE = ["prompt", "model_id", "width", "height", "num_images_per_prompt", "seed"]
ROUTES: dict[str, Row] = {
    **{f"/{name}": pipeline_row(name) for name in PIPELINES if name != "llm"},
    "/image-to-video/result": Row({"request_id": "x"}, ["request_id"]),
    "/llm": Row(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False, "max_tokens": 4},
        LLM_FIELDS,
    ),
    "/v1/chat/completions": Row({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, LLM_FIELDS),
    "/v1/completions": Row({"model": "m", "prompt": "p"}, LLM_FIELDS),
    "/prompt-enhance": Row({"prompt": "p"}, ["prompt"]),
    "/gpu-check": Row({}, ["agent_id"]),
    **{
        f"/process/request/{route}": Row(
            {"prompt": "p"} if route != "gpu-check" and route != "agent-net" else {},
            ECHO_IMAGE if route == "text-to-image" else ["prompt", "agent_id"],
            text_errors=True,
        )
        for route in BYOC_ROUTES
    },
}
GET_ONLY = {"/health", "/stats"}

BAD_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"x"',
    b"1e999999",
    b"\xff\xfe\x00",
    b'{"a": NaN}',
    b'{"a": 1e999999}',
    b'{"a": ' + b"9" * 5000 + b"}",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}",
]
BAD_VALUES: list[Any] = [
    None,
    -1,
    0,
    10**30,
    -(10**30),
    1.5,
    "x",
    "",
    [],
    {},
    True,
    [1, "x", None],
    {"a": [1]},
    [{"role": 1, "content": None}],
]
BAD_FORM_VALUES = ["-1", "0", "1e999", "nan", "x", "", "[", "99999999999999999999999", "true", "[[1, 2]]"]


def job_header(route: str) -> str:
    capability = BYOC_CAPABILITY.get(route, "agent-net")
    job = {"capability": capability, "request": "{}", "parameters": "{}", "timeout_seconds": 30}
    return base64.b64encode(json.dumps(job).encode()).decode()


def cases(path: str, row: Row) -> Iterator[tuple[bytes, str]]:
    """(body, content type) pairs: malformed documents, then each field set to each bad value."""
    if row.files:
        files = {name: ASSETS / asset for name, asset in row.files.items()}
        for name in row.fields:
            for value in BAD_FORM_VALUES:
                form = {**{k: str(v) for k, v in row.base.items()}, name: value}
                yield encode_multipart(form, files, BOUNDARY), f"multipart/form-data; boundary={BOUNDARY}"
        yield b"--b0undary\r\ngarbage", f"multipart/form-data; boundary={BOUNDARY}"
        yield b"{}", JSON
        return
    for body in BAD_BODIES:
        yield body, JSON
    yield b"{}", "text/plain"
    for name in row.fields:
        for value in BAD_VALUES:
            yield json.dumps({**row.base, name: value}).encode(), JSON


@pytest.fixture(scope="module")
def target() -> Iterator[Served]:
    with serve(instant_settings(slots=64, queue_depth=64)) as served:
        yield served


def app_paths(served: Served) -> dict[str, set[str]]:
    return {r.path: set(r.methods) for r in served.app.routes if isinstance(r, APIRoute)}


def test_every_route_has_a_row(target: Served) -> None:
    paths = app_paths(target)
    expected = {p for p in ROUTES if not p.startswith("/process/request/")} | GET_ONLY | {BYOC_PATH}
    assert set(paths) == expected
    assert all("POST" in paths[p] for p in expected - GET_ONLY)


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_malformed_bodies_never_get_a_5xx(target: Served, path: str) -> None:
    row = ROUTES[path]
    problems: list[str] = []
    for body, content_type in cases(path, row):
        headers = {"Content-Type": content_type}
        if row.text_errors:
            headers["Livepeer"] = job_header(path.rsplit("/", 1)[1])
        status, got, raw = request(f"{target.url}{path}", body=body, headers=headers)
        what = f"{status} for {body[:80]!r}"
        if status >= 500 or b"Traceback" in raw:
            problems.append(what)
        elif status >= 400 and row.text_errors:
            if not (got.get("content-type", "").startswith("text/plain") and raw.strip()):
                problems.append(f"{what}: not a text/plain message")
        elif status >= 400:
            error = json.loads(raw).get("error") if got.get("content-type") == JSON else None
            if not (isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]):
                problems.append(f"{what}: not a JSON error: {raw[:120]!r}")
    assert problems == []


@pytest.mark.parametrize("path", sorted(GET_ONLY))
def test_get_only_routes_refuse_bodies_with_json(target: Served, path: str) -> None:
    for body in BAD_BODIES[:6]:
        status, _, raw = request(f"{target.url}{path}", body=body, headers={"Content-Type": JSON})
        assert status == 405 and json.loads(raw) == {"error": {"message": "Method Not Allowed"}}
