"""The Livepeer AI gateway's batch pipelines, emulated: request checks, the gateway's response shapes,
and its async mode for image-to-video.

Requests are checked against the pipelines' fields and types (the same table the `livepeer` protocol
uses, itself tested against the real OpenAPI spec) and refused the way the gateway refuses them:
400 `{"error": {"message": ...}}` naming the field. Numbers are also held to ranges (RANGES): the spec
gives none, but the Go gateway refuses what does not fit an int64 and the diffusers pipelines behind it
refuse sizes not divisible by 8 and strengths outside [0, 1]; the rest bound what one request can make
the target allocate or promise (images per request, steps, sizes), so no request costs more than a
small, fixed amount. Answers use the gateway's shapes: media as
`{"images": [{url, seed, nsfw}]}` (video too), transcripts with chunks, SAM2 masks as strings.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import time
import uuid
import wave
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from inferswarm.emulator.gateway import Gateway, admit
from inferswarm.emulator.gpu import CapacityExceeded
from inferswarm.emulator.http import (
    ApiError,
    Guard,
    json_limit,
    json_object,
    parse_json,
    read_body,
    require_content_type,
)
from inferswarm.emulator.state import TargetState
from inferswarm.protocols.livepeer import (
    ARRAY,
    BOOL,
    INT,
    NUMBER,
    PIPELINES,
    RETURN_TIMESTAMPS,
    PipelineSpec,
)

# A 1x1 PNG: the smallest honest stand-in for a generated image.
PIXEL_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
    )
).decode()
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF", b"GIF8")
AUDIO_MAGIC = (b"RIFF", b"ID3", b"\xff\xfb", b"\xff\xf3", b"OggS", b"fLaC", b"\x1aE\xdf\xa3")
SERVICE_UNAVAILABLE = "Service Unavailable Error"

INT64 = (-(2**63), 2**63 - 1)
RANGES: dict[str, tuple[float, float]] = {
    "num_images_per_prompt": (1, 16),
    "height": (8, 4096),
    "width": (8, 4096),
    "num_inference_steps": (1, 500),
    "guidance_scale": (0.0, 100.0),
    "image_guidance_scale": (0.0, 100.0),
    "strength": (0.0, 1.0),
    "noise_aug_strength": (0.0, 1.0),
    "fps": (1, 120),
    "motion_bucket_id": (0, 255),
    "seed": INT64,
}
"""Inclusive bounds of the pipelines' numeric fields (a number outside is a 400 naming the field)."""
DIVISIBLE_BY_8 = ("height", "width")
MAX_IMAGES = 16
"""Images one request may ask for: prompts (`|`-separated) times num_images_per_prompt."""
JSON_STRINGS: dict[str, type] = {
    "point_coords": list,
    "point_labels": list,
    "box": list,
    "mask_input": list,
    "loras": dict,
}
"""Fields that hold JSON as a string (segment-anything-2's arrays; `loras`, an object of weights)."""
MAX_ASYNC_JOBS = 10_000
"""Async image-to-video jobs remembered at once; beyond it a new job is refused 503 like a full GPU."""


def convert(field: str, kind: str, raw: str) -> Any:
    """A multipart field's string as the spec's type; 400 with the field's name when it is not one."""
    try:
        if kind == INT:
            return int(raw)
        if kind == NUMBER:
            return float(raw)
        if kind == BOOL:
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ValueError
            return lowered == "true"
        if kind == ARRAY:
            value = parse_json(raw)
            if not isinstance(value, list):
                raise ValueError
            return value
    except ValueError:
        raise ApiError(400, f"{field}: must be of type {kind}, got {raw[:40]!r}") from None
    return raw


def check_json_fields(spec: PipelineSpec, data: dict[str, Any]) -> None:
    for field, value in data.items():
        kind = spec.fields.get(field)
        if kind is None:
            continue  # unknown fields are ignored, as the gateway's decoder does
        ok = {
            INT: isinstance(value, int) and not isinstance(value, bool),
            NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
            BOOL: isinstance(value, bool),
            ARRAY: isinstance(value, list),
        }.get(kind, isinstance(value, str))
        if not ok:
            raise ApiError(400, f"{field}: must be of type {kind}")
    model = data.get(spec.model_field)
    if model is not None and not isinstance(model, str):
        raise ApiError(400, f"{spec.model_field}: must be a string")


async def read_request(
    request: Request, spec: PipelineSpec, limit: int
) -> tuple[dict[str, Any], bytes | None]:
    """(fields, file bytes) of a pipeline request, checked; raises ApiError like the gateway."""
    body = await read_body(request, limit if spec.multipart else json_limit(limit))
    if not spec.multipart:
        require_content_type(request, "application/json")
        data = json_object(body)
        check_json_fields(spec, data)
        return data, None
    require_content_type(request, "multipart/form-data")
    try:
        form = await request.form()
    except Exception:
        raise ApiError(400, "request body is not valid multipart/form-data") from None
    fields: dict[str, Any] = {}
    upload: bytes | None = None
    for name, value in form.multi_items():
        if name == spec.file_field:
            if not isinstance(value, UploadFile):
                raise ApiError(400, f"{name}: must be a file")
            upload = await value.read()
        elif isinstance(value, str):
            kind = spec.fields.get(name)
            fields[name] = convert(name, kind, value) if kind else value
    assert spec.file_field is not None
    if not upload:
        raise ApiError(400, f"{spec.file_field}: a non-empty file part named {spec.file_field!r} is required")
    magic = AUDIO_MAGIC if spec.file_field == "audio" else IMAGE_MAGIC
    if not upload.startswith(magic):
        if spec.file_field == "audio":
            raise ApiError(415, "Unsupported audio format")
        raise ApiError(400, "image: unsupported or corrupt image")
    return fields, upload


def check_ranges(spec: PipelineSpec, fields: dict[str, Any]) -> None:
    """400 naming the first field whose value is out of its range, or asks for too many images."""
    for name, value in fields.items():
        bounds = RANGES.get(name)
        if bounds is None or spec.fields.get(name) not in (INT, NUMBER):
            continue
        low, high = bounds
        if not low <= value <= high:  # NaN fails this too
            raise ApiError(400, f"{name}: must be between {low:g} and {high:g}, got {value!r:.40}")
        if name in DIVISIBLE_BY_8 and value % 8:
            raise ApiError(400, f"{name}: must be divisible by 8, got {value}")
    if "num_images_per_prompt" in spec.fields:
        count = images_requested(fields)
        if count > MAX_IMAGES:
            raise ApiError(400, f"too many images requested: {count} (at most {MAX_IMAGES} per request)")
    for name, kind in JSON_STRINGS.items():
        raw = fields.get(name)
        if name in spec.fields and raw:
            try:
                ok = isinstance(parse_json(raw), kind)
            except ValueError:
                ok = False
            if not ok:
                what = "array" if kind is list else "object"
                raise ApiError(400, f"{name}: must be a JSON {what}, got {str(raw)[:40]!r}")


def images_requested(fields: dict[str, Any]) -> int:
    prompts = str(fields.get("prompt", "")).count("|") + 1
    return prompts * int(fields.get("num_images_per_prompt", 1))


def require(spec: PipelineSpec, fields: dict[str, Any]) -> None:
    for name in spec.required:
        if not fields.get(name):
            if spec.name == "text-to-speech":
                raise ApiError(400, "text field is required")
            raise ApiError(400, f"{name}: field required")
    if spec.name == "audio-to-text" and fields.get("return_timestamps", "true") not in RETURN_TIMESTAMPS:
        raise ApiError(400, f"return_timestamps: one of {', '.join(RETURN_TIMESTAMPS)}")


def media(seed: int, index: int, url: str) -> dict[str, Any]:
    return {"url": url, "seed": seed + index, "nsfw": False}


def audio_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data), "rb") as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, EOFError, struct.error, ValueError, ZeroDivisionError):
        return (
            1.0  # a header the wave module cannot read (a frame rate of 0, say): the runner's decoder decides
        )


def answer(
    spec: PipelineSpec, fields: dict[str, Any], upload: bytes | None, state: TargetState
) -> dict[str, Any]:
    """The gateway's 200 body for one pipeline."""
    seed = fields.get("seed")
    seed = seed if isinstance(seed, int) else state.rng.randrange(2**32)
    name = spec.name
    if name in ("text-to-image", "image-to-image"):
        count = images_requested(fields)  # at most MAX_IMAGES: check_ranges refused more
        return {"images": [media(seed, i, f"data:image/png;base64,{PIXEL_PNG}") for i in range(count)]}
    if name == "upscale":
        return {"images": [media(seed, 0, f"data:image/png;base64,{PIXEL_PNG}")]}
    if name == "image-to-video":
        return {"images": [media(seed, 0, f"/stream/{uuid.uuid4().hex}/video.mp4")]}
    if name == "audio-to-text":
        seconds = round(audio_seconds(upload or b""), 3)
        text = f"echo: {len(upload or b'')} bytes of audio"
        chunks = (
            []
            if fields.get("return_timestamps") == "false"
            else [{"timestamp": [0.0, seconds], "text": text}]
        )
        return {"text": text, "chunks": chunks}
    if name == "segment-anything-2":
        scores = [0.93, 0.71, 0.42] if fields.get("multimask_output", True) else [0.93]
        return {
            "masks": json.dumps([[[0, 1], [1, 0]] for _ in scores]),
            "scores": json.dumps(scores),
            "logits": json.dumps([[[-2.5, 3.1], [2.9, -1.7]] for _ in scores]),
        }
    if name == "image-to-text":
        return {"text": f"echo: an image of {len(upload or b'')} bytes"}
    if name == "text-to-speech":
        return {"audio": {"url": f"/stream/{uuid.uuid4().hex}/speech.wav"}}
    raise AssertionError(name)


def register_pipelines(
    app: FastAPI, state: TargetState, limit: int, guarded: Guard[Any], gateway: Gateway | None = None
) -> None:
    """Routes for every batch pipeline except llm (see emulator.llm). With a gateway, a checked request is
    admitted by an emulated orchestrator (emulator.gateway) before its processing, which is unchanged."""

    async def run(request: Request, spec: PipelineSpec) -> Any:
        fields, upload = await read_request(request, spec, limit)
        require(spec, fields)
        check_ranges(spec, fields)
        model = fields.get(spec.model_field)
        async with admit(
            gateway, spec.name, model if isinstance(model, str) and model else spec.default_model
        ):
            if spec.name == "image-to-video" and request.headers.get("prefer", "").lower() == "respond-async":
                return submit_job(spec, fields, upload)
            await state.work(spec.name)
            state.maybe_fail(spec.name)
            return answer(spec, fields, upload, state)

    def submit_job(spec: PipelineSpec, fields: dict[str, Any], upload: bytes | None) -> JSONResponse:
        state.jobs.expire()
        if len(state.jobs.results) >= MAX_ASYNC_JOBS:
            raise CapacityExceeded  # the gateway's 503 "Service Unavailable Error"
        job_id = uuid.uuid4().hex
        state.jobs.results[job_id] = (time.monotonic(), None)

        async def work() -> None:
            try:
                await state.work(spec.name)
                state.maybe_fail(spec.name)
                result: dict[str, Any] = answer(spec, fields, upload, state)
            except CapacityExceeded:
                result = {"images": [], "error": {"message": SERVICE_UNAVAILABLE}}
            except ApiError as exc:
                result = {"images": [], "error": {"message": exc.message}}
            state.jobs.results[job_id] = (time.monotonic(), result)

        task = asyncio.get_running_loop().create_task(work())
        state.jobs.tasks.add(task)
        task.add_done_callback(state.jobs.tasks.discard)
        return JSONResponse({"request_id": job_id}, status_code=202)

    def route_for(spec: PipelineSpec) -> Any:
        async def route(request: Request) -> Any:
            return await run(request, spec)

        route.__name__ = spec.name.replace("-", "_")
        return route

    for spec in PIPELINES.values():
        if spec.name != "llm":
            guarded(f"/{spec.name}")(route_for(spec))

    @guarded("/image-to-video/result")
    async def job_result(request: Request) -> Response:
        body = await read_body(request, json_limit(limit))
        try:
            request_id = json_object(body)["request_id"]
        except (ApiError, KeyError):
            raise ApiError(400, "request_id is required") from None
        if not isinstance(request_id, str):
            raise ApiError(400, "invalid request_id")
        entry = state.jobs.results.get(request_id)
        if entry is None:
            raise ApiError(400, "invalid request_id")
        if entry[1] is None:
            return JSONResponse({"status": "processing"}, status_code=202)
        return JSONResponse({"status": "complete", "result": entry[1]})
