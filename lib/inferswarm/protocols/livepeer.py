"""`kind: livepeer`: the Livepeer AI gateway's batch pipelines, as its OpenAPI spec and go-livepeer define.

Every pipeline is `POST /<pipeline>`. text-to-image, text-to-speech and llm take JSON; the others take
multipart/form-data with an `image` or `audio` file from `test-assets/`. `model_id` is always sent (the
gateway's own default for the pipeline when the config gives none, which is what the gateway would fill
in). Params are checked against the spec's fields and types when the config loads.

Success is a 200 whose body matches the pipeline's response schema, not just any 200. Errors are
classified as the gateway really behaves: 503 "Service Unavailable Error" is capacity (no orchestrator
had a free slot within its retry window), 500 is masked to "Internal Server Error", a 400 carries the
real message, 422 is the runner's validation error.
"""

from __future__ import annotations

import json
import uuid
import wave
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from inferswarm.protocols.base import (
    PENDING,
    CapabilityBase,
    FailureCategory,
    Poll,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    Verdict,
    classify_exception,
    classify_http_error,
    register_protocol,
)
from inferswarm.protocols.multipart import encode_multipart, form_value
from inferswarm.strict import MAX_TIMEOUT_S

Pipeline = Literal[
    "text-to-image",
    "image-to-image",
    "image-to-video",
    "upscale",
    "audio-to-text",
    "segment-anything-2",
    "image-to-text",
    "text-to-speech",
    "llm",
]

# JSON-schema types of the spec, as Python types (bool is not an int here, as in JSON).
STR, INT, NUMBER, BOOL, ARRAY = "string", "integer", "number", "boolean", "array"


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    multipart: bool
    file_field: str | None
    fields: dict[str, str]
    """Form or JSON fields besides model_id and the file, with their spec type."""
    required: tuple[str, ...]
    default_model: str
    check: Callable[[Any], str | None]
    """Problem with a 200 body, or None when it matches the response schema."""
    model_field: str = "model_id"


def _is(value: Any, kind: str) -> bool:
    if kind == STR:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, list)


def _media(item: Any, where: str) -> str | None:
    if not isinstance(item, dict):
        return f"{where} is not an object"
    for key, kind in (("url", STR), ("seed", INT), ("nsfw", BOOL)):
        if key not in item:
            return f"{where}.{key} is missing"
        if not _is(item[key], kind):
            return f"{where}.{key} is not a {kind}"
    return None


def check_images(body: Any) -> str | None:
    """ImageResponse / the gateway's VideoResponse: `{"images": [Media, ...]}`, at least one."""
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        return "images is missing or not an array"
    if not body["images"]:
        return "images is empty"
    for index, item in enumerate(body["images"]):
        problem = _media(item, f"images[{index}]")
        if problem:
            return problem
    return None


def check_transcript(body: Any) -> str | None:
    """TextResponse: `{"text": str, "chunks": [{"timestamp": [...], "text": str}]}`."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return "text is missing or not a string"
    chunks = body.get("chunks")
    if not isinstance(chunks, list):
        return "chunks is missing or not an array"
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, dict) or not isinstance(chunk.get("timestamp"), list):
            return f"chunks[{index}].timestamp is missing or not an array"
        if not isinstance(chunk.get("text"), str):
            return f"chunks[{index}].text is missing or not a string"
    return None


def check_masks(body: Any) -> str | None:
    """MasksResponse: masks, scores and logits, each a stringified nested array."""
    if not isinstance(body, dict):
        return "body is not an object"
    for key in ("masks", "scores", "logits"):
        if not isinstance(body.get(key), str):
            return f"{key} is missing or not a string"
    return None


def check_text(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return "text is missing or not a string"
    return None


def check_audio(body: Any) -> str | None:
    audio = body.get("audio") if isinstance(body, dict) else None
    if not isinstance(audio, dict) or not isinstance(audio.get("url"), str):
        return "audio.url is missing or not a string"
    return None


def check_llm(body: Any) -> str | None:
    """LLMResponse (not streamed): id, model, created, usage{...}, choices[{index, message}]."""
    if not isinstance(body, dict):
        return "body is not an object"
    for key, kind in (("id", STR), ("model", STR), ("created", INT)):
        if not _is(body.get(key), kind):
            return f"{key} is missing or not a {kind}"
    usage = body.get("usage")
    if not isinstance(usage, dict) or not all(
        _is(usage.get(k), INT) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    ):
        return "usage is missing or incomplete"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "choices is missing or empty"
    first = choices[0]
    if not isinstance(first, dict) or not _is(first.get("index"), INT):
        return "choices[0].index is missing"
    message = first.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        return "choices[0].message.content is missing"
    return None


_IMAGE_GEN = {
    "loras": STR,
    "guidance_scale": NUMBER,
    "negative_prompt": STR,
    "safety_check": BOOL,
    "seed": INT,
    "num_inference_steps": INT,
    "num_images_per_prompt": INT,
}

PIPELINES: dict[str, PipelineSpec] = {
    spec.name: spec
    for spec in (
        PipelineSpec(
            "text-to-image",
            False,
            None,
            {"prompt": STR, "height": INT, "width": INT, **_IMAGE_GEN},
            ("prompt",),
            "stabilityai/sdxl-turbo",
            check_images,
        ),
        PipelineSpec(
            "image-to-image",
            True,
            "image",
            {"prompt": STR, "strength": NUMBER, "image_guidance_scale": NUMBER, **_IMAGE_GEN},
            ("prompt",),
            "stabilityai/sdxl-turbo",
            check_images,
        ),
        PipelineSpec(
            "image-to-video",
            True,
            "image",
            {
                "height": INT,
                "width": INT,
                "fps": INT,
                "motion_bucket_id": INT,
                "noise_aug_strength": NUMBER,
                "safety_check": BOOL,
                "seed": INT,
                "num_inference_steps": INT,
            },
            (),
            "stabilityai/stable-video-diffusion-img2vid-xt",
            check_images,
        ),
        PipelineSpec(
            "upscale",
            True,
            "image",
            {"prompt": STR, "safety_check": BOOL, "seed": INT, "num_inference_steps": INT},
            ("prompt",),
            "stabilityai/stable-diffusion-x4-upscaler",
            check_images,
        ),
        PipelineSpec(
            "audio-to-text",
            True,
            "audio",
            {"return_timestamps": STR},
            (),
            "openai/whisper-large-v3",
            check_transcript,
        ),
        PipelineSpec(
            "segment-anything-2",
            True,
            "image",
            {
                "point_coords": STR,
                "point_labels": STR,
                "box": STR,
                "mask_input": STR,
                "multimask_output": BOOL,
                "return_logits": BOOL,
                "normalize_coords": BOOL,
            },
            (),
            "facebook/sam2-hiera-large",
            check_masks,
        ),
        PipelineSpec(
            "image-to-text",
            True,
            "image",
            {"prompt": STR},
            (),
            "Salesforce/blip-image-captioning-large",
            check_text,
        ),
        PipelineSpec(
            "text-to-speech",
            False,
            None,
            {"text": STR, "description": STR},
            ("text",),  # the spec makes it optional; the gateway answers 400 "text field is required"
            "parler-tts/parler-tts-large-v1",
            check_audio,
        ),
        PipelineSpec(
            "llm",
            False,
            None,
            {
                "messages": ARRAY,
                "temperature": NUMBER,
                "max_tokens": INT,
                "top_p": NUMBER,
                "top_k": INT,
                "stream": BOOL,
            },
            ("messages",),
            "meta-llama/llama-3.1-8B-Instruct",
            check_llm,
            model_field="model",
        ),
    )
}

# segment-anything-2 fields holding arrays serialised as strings: YAML lists are sent as JSON.
_ARRAY_STRINGS = {"point_coords", "point_labels", "box", "mask_input"}
RETURN_TIMESTAMPS = ("true", "false", "sentence", "word")
# Defaults the gateway (not the spec) applies for the LLM: it refuses a request without these fields.
LLM_REQUIRED_DEFAULTS: dict[str, Any] = {"max_tokens": 256, "stream": False}


def _check_params(spec: PipelineSpec, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key in ("model_id", "model", spec.file_field):
            raise ValueError(f"params.{key}: set it with the capability's own `model_id` / `files` field")
        kind = spec.fields.get(key)
        if kind is None:
            raise ValueError(
                f"params.{key}: not a field of {spec.name} (valid: {', '.join(sorted(spec.fields))})"
            )
        ok = _is(value, kind) or (key in _ARRAY_STRINGS and isinstance(value, list))
        if not ok:
            raise ValueError(f"params.{key}: must be a {kind}, got {type(value).__name__}")
    for key in spec.required:
        if key not in params or params[key] in ("", []):
            raise ValueError(f"params.{key}: required by {spec.name}")
    if spec.name == "audio-to-text" and params.get("return_timestamps", "true") not in RETURN_TIMESTAMPS:
        raise ValueError(f"params.return_timestamps: one of {', '.join(RETURN_TIMESTAMPS)}")
    if spec.name == "llm":
        for index, message in enumerate(params["messages"]):
            if not (
                isinstance(message, dict)
                and set(message) == {"role", "content"}
                and all(isinstance(v, str) for v in message.values())
            ):
                raise ValueError(f"params.messages[{index}]: must be {{role: str, content: str}}")


class LivepeerCapability(CapabilityBase):
    kind: Literal["livepeer"]
    pipeline: Pipeline
    path: str = Field(default="", pattern=r"^(/.*)?$")
    """Default `/<pipeline>`; set it when the gateway sits under a prefix."""
    model_id: str | None = None
    """The model to ask for; default: the gateway's own default for the pipeline."""
    params: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    """The pipeline's file field (`image` or `audio`) -> asset path relative to `assets_dir`."""
    async_mode: bool = False
    """image-to-video only: send `Prefer: respond-async` and poll `<path>/result` until the job is done."""
    poll_interval_s: float = Field(default=0.5, ge=0.01, le=MAX_TIMEOUT_S)

    @model_validator(mode="before")
    @classmethod
    def _default_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("path") and isinstance(data.get("pipeline"), str):
            data = {**data, "path": f"/{data['pipeline']}"}
        return data

    @model_validator(mode="after")
    def _matches_spec(self) -> LivepeerCapability:
        spec = PIPELINES[self.pipeline]
        _check_params(spec, self.params)
        wanted = {spec.file_field} if spec.file_field else set()
        if set(self.files) != wanted:
            need = f"exactly one file, `{spec.file_field}`" if spec.file_field else "no files"
            raise ValueError(f"files: {spec.name} takes {need}")
        if self.async_mode and self.pipeline != "image-to-video":
            raise ValueError("async_mode: only image-to-video has the gateway's async mode")
        if self.async_mode and self.params.get("stream") is True:
            raise ValueError("async_mode: cannot be combined with stream")
        return self

    @property
    def spec(self) -> PipelineSpec:
        return PIPELINES[self.pipeline]

    @property
    def streaming(self) -> bool:
        return self.pipeline == "llm" and self.params.get("stream") is True

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        return [(f"files.{name}", (assets_dir / rel).resolve()) for name, rel in self.files.items()]

    def request_fields(self) -> dict[str, Any]:
        """The request's fields (without the file): model first, then params, then the gateway's musts."""
        spec = self.spec
        fields: dict[str, Any] = {spec.model_field: self.model_id or spec.default_model}
        fields.update(self.params)
        if spec.name == "llm":
            for key, value in LLM_REQUIRED_DEFAULTS.items():
                fields.setdefault(key, value)
        return fields


def wav_seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, EOFError, OSError):
        return None


def images_per_request(capability: LivepeerCapability) -> int | None:
    if capability.spec.check is not check_images:
        return None
    if capability.pipeline in ("upscale", "image-to-video"):
        return 1
    prompts = str(capability.params.get("prompt", "")).count("|") + 1
    per_prompt = capability.params.get("num_images_per_prompt", 1)
    return prompts * int(per_prompt)


def _json_body(body: bytes) -> tuple[Any, str | None]:
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError):
        return None, "invalid JSON"


@register_protocol
class LivepeerProtocol(Protocol[LivepeerCapability]):
    model = LivepeerCapability

    def prepare(self, capability: LivepeerCapability, assets_dir: Path) -> PreparedRequest:
        fields = capability.request_fields()
        headers: dict[str, str] = {"Accept": "application/json"}
        if capability.streaming:
            # SSE is read line by line as it arrives; a compressed stream would have to be buffered first.
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        if capability.async_mode:
            headers["Prefer"] = "respond-async"
        if capability.spec.multipart:
            boundary = f"inferswarm-{uuid.uuid4().hex}"
            form = {k: form_value(v) for k, v in fields.items()}
            files = {name: (assets_dir / rel).resolve() for name, rel in capability.files.items()}
            body = encode_multipart(form, files, boundary)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        else:
            body = json.dumps(fields, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        headers.update(capability.headers)
        return PreparedRequest("POST", capability.path, headers, body)

    def stream_dialect(self, capability: LivepeerCapability) -> str | None:
        return "livepeer" if capability.streaming else None

    def polls(self, capability: LivepeerCapability) -> bool:
        return capability.async_mode

    def poll(
        self, capability: LivepeerCapability, submitted: ResponseView, headers: Mapping[str, str]
    ) -> Poll | RequestFailure | None:
        """The gateway's async mode: `202 {"request_id"}`, then POST `<path>/result {"request_id"}`
        answers 202 (or `status` other than `complete`) until the job is done."""
        if not capability.async_mode or submitted.status != 202:
            return None
        try:
            request_id = json.loads(submitted.body)["request_id"]
            if not isinstance(request_id, str) or not request_id:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return RequestFailure(FailureCategory.BAD_BODY, "202 without a request_id")
        poll_headers = {k: v for k, v in headers.items() if k != "Prefer"}
        poll_headers["Content-Type"] = "application/json"
        body = json.dumps({"request_id": request_id}).encode()
        request = PreparedRequest("POST", f"{capability.path.rstrip('/')}/result", poll_headers, body)
        return Poll(request, capability.poll_interval_s, lambda view: self._judge_poll(capability, view))

    def _judge_poll(self, capability: LivepeerCapability, view: ResponseView) -> Verdict:
        if view.status == 202:
            return PENDING
        if view.status != 200:
            return self.classify(capability, view) or RequestFailure(
                FailureCategory.UNEXPECTED_STATUS, f"poll HTTP {view.status}"
            )
        try:
            document = json.loads(view.body)
        except (ValueError, UnicodeDecodeError):
            return RequestFailure(FailureCategory.BAD_BODY, "poll answer is not JSON")
        if not isinstance(document, dict) or document.get("status") != "complete":
            return PENDING
        return self.classify_job_result(capability, document.get("result"))

    def classify(self, capability: LivepeerCapability, response: ResponseView) -> RequestFailure | None:
        if response.error is not None and response.status == 0:
            return classify_exception(response.error)
        failure = classify_http_error(response, capability.success.status)
        if failure is not None:
            return failure
        if capability.streaming:
            return None  # judged event by event by the stream reader
        document, problem = _json_body(response.body)
        if problem is None:
            problem = capability.spec.check(document)
        if problem is None:
            return None
        return RequestFailure(FailureCategory.BAD_BODY, f"{capability.pipeline}: {problem}")

    def classify_job_result(self, capability: LivepeerCapability, result: Any) -> RequestFailure | None:
        """The `result` of a complete async job: the pipeline's response, or `error.message`."""
        if not isinstance(result, dict):
            return RequestFailure(FailureCategory.BAD_BODY, "async result is not an object")
        error = result.get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])[:80]
            category = (
                FailureCategory.CAPACITY if "Service Unavailable" in message else FailureCategory.SERVER_ERROR
            )
            return RequestFailure(category, f"async job failed: {message}")
        problem = capability.spec.check(result)
        if problem:
            return RequestFailure(FailureCategory.BAD_BODY, f"{capability.pipeline}: {problem}")
        return None

    def describe(self, capability: LivepeerCapability, assets_dir: Path) -> dict[str, Any]:
        info: dict[str, Any] = {
            "pipeline": capability.pipeline,
            "model": capability.request_fields()[capability.spec.model_field],
        }
        images = images_per_request(capability)
        if images is not None:
            info["outputs_per_request"] = images
            info["output_unit"] = "video" if capability.pipeline == "image-to-video" else "image"
        if capability.pipeline == "audio-to-text" and "audio" in capability.files:
            seconds = wav_seconds((assets_dir / capability.files["audio"]).resolve())
            if seconds is not None:
                info["audio_s"] = round(seconds, 6)
        if capability.pipeline == "llm":
            info["streaming"] = capability.streaming
        return info
