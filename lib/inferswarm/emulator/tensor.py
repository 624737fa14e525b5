"""The reference target's tensor server (served with a `tensor:` section in its settings).

Two contracts:
- the Open Inference Protocol's REST API as KServe serves it: `GET /v2`, `/v2/health/live`,
  `/v2/health/ready`, `/v2/models/<m>` (metadata), `/v2/models/<m>/ready`, and
  `POST /v2/models/<m>[/versions/1]/infer`, JSON or the binary tensor extension; outputs come back binary
  when the request asked for them so. Each answer carries `Server-Timing: compute;dur=<ms>`.
- seed 003's tensor server: `POST /execute`, multipart with `operation` and `tensor_file` (.npy), answered
  with the result as .npy bytes and `X-Genie-Server-Timing: {"deserialize_ms", "execute_ms",
  "serialize_ms", "total_ms"}`.

Answers are computed for real with numpy (tensor_ops) inside a slot of the simulated GPU, held for
`gpu_ms_fixed + gpu_ms_per_mb` per MiB of input, so load queues and then gets 503 as elsewhere. Errors
are KServe's `{"error": "<message>"}`: 400 for malformed input, 404 for an unknown model, 413 beyond
`max_body_bytes`, 503 when the simulated GPU is full.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from inferswarm.emulator.gpu import CapacityExceeded
from inferswarm.emulator.http import ApiError, read_body
from inferswarm.emulator.settings import TensorModel, TensorSettings
from inferswarm.protocols.tensor_codec import (
    HEADER_LENGTH,
    TensorData,
    datatype_of,
    decode_request,
    encode_binary,
    encode_json,
    header_length_of,
)
from inferswarm.protocols.tensor_ops import apply, output_shape

if TYPE_CHECKING:
    from inferswarm.emulator.state import TargetState

OUTPUT_NAME = "output-0"
INPUT_NAME = "input-0"
VERSION = "1"
MIB = 1024 * 1024
Array = np.ndarray[Any, Any]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class TensorServer:
    def __init__(self, settings: TensorSettings, state: TargetState) -> None:
        self.settings = settings
        self.state = state
        self.models = {m.name: m for m in settings.models}

    def model(self, name: str, version: str | None = None) -> TensorModel:
        model = self.models.get(name)
        if model is None or version not in (None, VERSION):
            raise ApiError(404, f"Model with name {name[:64]} does not exist.")
        return model

    def metadata(self, model: TensorModel) -> dict[str, Any]:
        datatype = model.datatype or "FP32"
        shape = [-1, -1] if model.operation == "matmul" else [-1]
        out = [-1, -1] if model.operation == "matmul" else ([1] if model.operation == "sum" else [-1])
        return {
            "name": model.name,
            "versions": [VERSION],
            "platform": "inferswarm-numpy",
            "inputs": [{"name": INPUT_NAME, "datatype": datatype, "shape": shape}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": datatype, "shape": out}],
        }

    async def compute(self, operation: str, array: Array, route: str) -> tuple[Array, float]:
        """The operation's result and the server's compute time in ms: the simulated GPU time for the
        input's size, in a GPU slot, plus the real numpy time."""
        try:
            output_shape(operation, array.shape)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        self.state.requests[route] = self.state.requests.get(route, 0) + 1
        simulated_s = (self.settings.gpu_ms_fixed + self.settings.gpu_ms_per_mb * array.nbytes / MIB) / 1000.0
        async with self.state.gpu.slot():
            await asyncio.sleep(simulated_s)
            began = time.perf_counter()
            # numpy in a thread: a large tensor does not stall the other requests' event loop
            result = await asyncio.to_thread(apply, operation, array)
            real_s = time.perf_counter() - began
        return result, _ms(simulated_s + real_s)

    async def infer(self, request: Request, name: str, version: str | None) -> Response:
        model = self.model(name, version)
        body = await read_body(request, self.state.settings.max_body_bytes)
        try:
            document, inputs = decode_request(body, header_length_of(request.headers))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        if len(inputs) != 1:
            raise ApiError(400, f"model {model.name} expects 1 input, got {len(inputs)}")
        tensor = next(iter(inputs.values()))
        if tensor.datatype == "BYTES" or (model.datatype and tensor.datatype != model.datatype):
            takes = model.datatype or "numeric"
            raise ApiError(400, f"model {model.name} takes {takes}, got {tensor.datatype}")
        if tensor.array.size > model.max_elements:
            limit = model.max_elements
            raise ApiError(400, f"{tensor.array.size} elements, model {model.name} takes at most {limit}")
        binary = self._binary_outputs(document, model)
        result, compute_ms = await self.compute(model.operation, tensor.array, "tensor")
        output = TensorData(OUTPUT_NAME, tensor.datatype, result)
        head = {"model_name": model.name, "model_version": VERSION}
        request_id = document.get("id")
        request_id = request_id if isinstance(request_id, str) else None
        headers = {"Server-Timing": f"compute;dur={compute_ms}"} if self.settings.server_timing else {}
        if binary:
            payload, length = encode_binary([output], id=request_id, key="outputs", extra=head)
            headers[HEADER_LENGTH] = str(length)
            return Response(payload, media_type="application/octet-stream", headers=headers)
        try:
            payload = encode_json([output], id=request_id, key="outputs", extra=head)
        except ValueError as exc:  # NaN or infinity in the result (overflow): JSON cannot carry it
            raise ApiError(400, str(exc)) from None
        return Response(payload, media_type="application/json", headers=headers)

    @staticmethod
    def _binary_outputs(document: dict[str, Any], model: TensorModel) -> bool:
        """Whether the request asked for binary outputs (per output, or Triton's `binary_data_output`);
        400 for an output the model does not have, as KServe and Triton answer."""
        parameters = document.get("parameters")
        binary = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
        requested = document.get("outputs", [])
        if not isinstance(requested, list):
            raise ApiError(400, "outputs must be a list")
        for entry in requested:
            if not isinstance(entry, dict) or entry.get("name") != OUTPUT_NAME:
                asked = entry.get("name") if isinstance(entry, dict) else None
                asked = str(asked)[:64]
                raise ApiError(400, f"Unexpected inference output {asked!r} for model {model.name!r}")
            params = entry.get("parameters")
            if isinstance(params, dict) and "binary_data" in params:
                binary = params["binary_data"] is True
        return binary

    async def execute(self, request: Request) -> Response:
        """Seed 003's `POST /execute`: the operation on an uploaded .npy, answered as .npy."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(415, "Content-Type must be multipart/form-data")
        await read_body(request, self.state.settings.max_body_bytes)
        try:
            form = await request.form()
        except Exception:
            raise ApiError(400, "request body is not valid multipart/form-data") from None
        operation = form.get("operation")
        upload = form.get("tensor_file")
        if not isinstance(operation, str) or not operation:
            raise ApiError(400, "operation: a form field is required")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "tensor_file: a file part is required")
        data = await upload.read()
        began = time.perf_counter()
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
            datatype_of(array.dtype)
        except (ValueError, OSError, EOFError):
            raise ApiError(400, "tensor_file is not a numeric .npy array") from None
        deserialize_ms = _ms(time.perf_counter() - began)
        try:
            output_shape(operation, array.shape)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        result, execute_ms = await self.compute(operation, array, "execute")
        began = time.perf_counter()
        out = io.BytesIO()
        np.save(out, result, allow_pickle=False)
        serialize_ms = _ms(time.perf_counter() - began)
        timing = {
            "deserialize_ms": deserialize_ms,
            "execute_ms": execute_ms,
            "serialize_ms": serialize_ms,
            "total_ms": round(deserialize_ms + execute_ms + serialize_ms, 3),
        }
        headers = {"X-Genie-Server-Timing": json.dumps(timing, separators=(",", ":"))}
        return Response(out.getvalue(), media_type="application/octet-stream", headers=headers)


async def _answer(work: Awaitable[Response | dict[str, Any]]) -> Response | dict[str, Any]:
    """The route's answer, or KServe's `{"error": ...}` for any refusal (the app's handlers would give
    the gateway's nested shape)."""
    try:
        return await work
    except ApiError as exc:
        return error(exc.status, exc.message)
    except CapacityExceeded:
        return error(503, "Service Unavailable")


def register_tensor(app: FastAPI, state: TargetState, settings: TensorSettings) -> None:
    server = TensorServer(settings, state)
    guard = [Depends(state.require_auth)]

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "inferswarm-target", "version": "1", "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, Any]:
        return {"ready": True}

    @app.get("/v2/models/{name}", response_model=None)
    async def metadata(name: str) -> Response | dict[str, Any]:
        try:
            return server.metadata(server.model(name))
        except ApiError as exc:
            return error(exc.status, exc.message)

    @app.get("/v2/models/{name}/ready", response_model=None)
    async def model_ready(name: str) -> Response | dict[str, Any]:
        try:
            return {"name": server.model(name).name, "ready": True}
        except ApiError as exc:
            return error(exc.status, exc.message)

    @app.post("/v2/models/{name}/infer", dependencies=guard, response_model=None)
    async def infer(name: str, request: Request) -> Response | dict[str, Any]:
        return await _answer(server.infer(request, name, None))

    @app.post("/v2/models/{name}/versions/{version}/infer", dependencies=guard, response_model=None)
    async def infer_version(name: str, version: str, request: Request) -> Response | dict[str, Any]:
        return await _answer(server.infer(request, name, version))

    @app.post("/execute", dependencies=guard, response_model=None)
    async def execute(request: Request) -> Response | dict[str, Any]:
        return await _answer(server.execute(request))
