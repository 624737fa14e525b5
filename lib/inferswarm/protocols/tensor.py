"""`kind: tensor`: a tensor sent to an inference server, its answer checked by name, datatype and shape.

Three wire forms (`protocol`):
- `v2`: the Open Inference Protocol (KServe v2, Triton, MLServer), `POST /v2/models/<model>/infer`, JSON
  or, with `binary: true`, the binary tensor extension for inputs and outputs (tensor_codec);
- `raw`: the tensor's bytes as the body (`.npy` or bare little-endian data, `file_format`);
- `multipart`: seed 003's tensor server, `POST /execute` with an `operation` field and the tensor as a
  file (`tensor_file`, `.npy`).

The input is generated once per process from numpy's seeded generator (or read from an `.npy` asset), so
every process sends the same tensor. `sizes` sweeps shapes: `expand()` makes one capability per shape,
named `<name>@<d1>x<d2>`. The expected output shape follows from `operation` (tensor_ops).

When the server says its own compute time (`server_timing`), each success is observed as `server_ms`
and `overhead_ms` (response time minus server time, at least 0: network, queueing, serialization).
Headers are read from `ResponseView.extra["headers"]` (a mapping of the answer's headers) when the client
supplies them; a binary answer without its `Inference-Header-Content-Length` still decodes (its JSON
header ends where the object does).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from inferswarm.protocols.base import (
    CapabilityBase,
    FailureCategory,
    PreparedRequest,
    Protocol,
    RequestFailure,
    ResponseView,
    classify_exception,
    classify_http_error,
    register_protocol,
)
from inferswarm.protocols.multipart import encode_multipart
from inferswarm.protocols.server_timing import ServerTimingSpec
from inferswarm.protocols.tensor_codec import (
    HEADER_LENGTH,
    TensorData,
    datatype_of,
    decode_response,
    dtype_of,
    encode_binary,
    encode_json,
    header_length_of,
    nbytes,
    split,
)
from inferswarm.protocols.tensor_ops import known_operation, output_shape
from inferswarm.strict import StrictModel

MAX_TENSOR_BYTES = 256 * 1024 * 1024
"""The largest input tensor a capability may declare (it is generated and held in memory)."""
MAX_RANK = 8
MAX_SIZES = 64

NumericType = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
]
AnyType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


def check_shape(shape: list[int], datatype: str) -> list[int]:
    """A shape's bounds (ValueError naming what is wrong)."""
    if not 1 <= len(shape) <= MAX_RANK:
        raise ValueError(f"shape {shape} must have 1 to {MAX_RANK} dimensions")
    if any(d < 1 for d in shape):
        raise ValueError(f"shape {shape} has a dimension below 1")
    size = nbytes(datatype, shape)
    if size > MAX_TENSOR_BYTES:
        raise ValueError(f"shape {shape} of {datatype} is {size} bytes, more than 256 MiB")
    return shape


def size_label(shape: list[int]) -> str:
    return "x".join(str(d) for d in shape)


def v2_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


class TensorSpec(StrictModel):
    name: str = Field(default="input-0", min_length=1, max_length=64)
    datatype: NumericType = "FP32"
    shape: list[int]

    @model_validator(mode="after")
    def _bounded(self) -> TensorSpec:
        check_shape(self.shape, self.datatype)
        return self


class OutputSpec(StrictModel):
    name: str = Field(default="output-0", min_length=1, max_length=64)
    datatype: AnyType | None = None
    """None: the input's datatype (every operation keeps it)."""
    shape: Literal["auto", "any"] | list[int] = "auto"
    """`auto`: what the operation gives for the input's shape; `any`: not checked; or the exact shape."""


class TensorCapability(CapabilityBase):
    kind: Literal["tensor"]
    protocol: Literal["v2", "raw", "multipart"] = "v2"
    model: str | None = Field(default=None, pattern=MODEL_NAME)
    model_version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    binary: bool = False
    """v2: the binary tensor extension for the input and the outputs."""
    input: TensorSpec
    sizes: list[list[int]] = Field(default_factory=list, max_length=MAX_SIZES)
    """A sweep of input shapes: `expand()` gives one capability per shape."""
    operation: str = "identity"
    output: OutputSpec = Field(default_factory=OutputSpec)
    form: dict[str, str] = Field(default_factory=dict)
    """multipart: more form fields, sent before the file."""
    file_field: str = Field(default="tensor_file", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    file_format: Literal["npy", "raw"] = "npy"
    """raw and multipart: the tensor as an .npy file or as its bare little-endian bytes."""
    expect_bytes: int | Literal["auto"] | None = Field(default=None)
    """raw and multipart: the answer's exact size; `auto`: the output's size in `file_format`."""
    server_timing: ServerTimingSpec | None = None
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    asset: str | None = None
    """An .npy file under assets_dir sent instead of generated data (its shape and dtype must match)."""

    @model_validator(mode="before")
    @classmethod
    def _derive_path(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("path") is not None:
            return data
        protocol = data.get("protocol", "v2")
        if protocol == "v2":
            model = data.get("model")
            if not isinstance(model, str):
                raise ValueError("protocol v2 needs a model (the path is /v2/models/<model>/infer)")
            version = data.get("model_version")
            return {**data, "path": v2_path(model, version if isinstance(version, str) else None)}
        raise ValueError(f"protocol {protocol} needs a path (the server's endpoint, e.g. /execute)")

    _known_operation = field_validator("operation")(known_operation)

    @field_validator("expect_bytes")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("expect_bytes must be at least 1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TensorCapability:
        if self.protocol == "v2":
            if self.model is None:
                raise ValueError("protocol v2 needs a model")
            if self.expect_bytes is not None:
                raise ValueError("expect_bytes is for raw and multipart answers (v2 answers are decoded)")
        else:
            if self.binary:
                raise ValueError("binary is the v2 binary extension; raw and multipart are binary already")
            if self.model is not None or self.model_version is not None:
                raise ValueError("model and model_version are for protocol v2")
        if self.form and self.protocol != "multipart":
            raise ValueError("form is for protocol multipart")
        if self.asset is not None and self.sizes:
            raise ValueError("asset and sizes exclude each other (an asset has one shape)")
        if self.sizes and isinstance(self.output.shape, list):
            raise ValueError("with sizes, output.shape must be auto or any")
        for shape in [self.input.shape, *self.sizes]:
            check_shape(shape, self.input.datatype)
            output_shape(self.operation, shape)  # matmul needs 2-D: a config error, not a failed run
        labels = [size_label(s) for s in self.sizes]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"sizes lists {twice[0]} twice")
        if self.expect_bytes == "auto" and self.output_bytes() is None:
            raise ValueError("expect_bytes auto needs a numeric output datatype and a known output shape")
        return self

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        return [] if self.asset is None else [("asset", (assets_dir / self.asset).resolve())]

    def expand(self) -> list[CapabilityBase]:
        """One capability per size of the sweep, named `<name>@<d1>x<d2>`; without sizes, itself.
        Copies skip validation: this one validated every size."""
        return [
            self.model_copy(
                update={
                    "name": f"{self.name}@{size_label(size)}",
                    "input": self.input.model_copy(update={"shape": list(size)}),
                    "sizes": [],
                }
            )
            for size in self.sizes
        ] or [self]

    @property
    def output_datatype(self) -> str:
        return self.output.datatype or self.input.datatype

    def expected_shape(self) -> list[int] | None:
        """The output shape an answer must have; None when any shape is accepted."""
        if self.output.shape == "auto":
            return output_shape(self.operation, self.input.shape)
        if self.output.shape == "any":
            return None
        return list(self.output.shape)

    def output_bytes(self) -> int | None:
        """The output tensor's raw size, when its datatype is numeric and its shape known."""
        shape = self.expected_shape()
        if shape is None or self.output_datatype == "BYTES":
            return None
        return nbytes(self.output_datatype, shape)

    def answer_bytes(self) -> int | None:
        """raw and multipart: the answer's size that `expect_bytes` asks for, if any."""
        if self.expect_bytes is None or isinstance(self.expect_bytes, int):
            return self.expect_bytes
        shape = self.expected_shape()
        assert shape is not None  # validated
        return _file_size(self.output_datatype, tuple(shape), self.file_format)


@lru_cache(maxsize=256)
def _file_size(datatype: str, shape: tuple[int, ...], file_format: str) -> int:
    """A tensor's size as `file_format`: its bytes, plus the .npy header numpy writes for it."""
    dtype = dtype_of(datatype)
    size = dtype.itemsize * math.prod(shape)
    if file_format == "raw":
        return size
    header = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(dtype)
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return len(header.getvalue()) + size


def generate(datatype: str, shape: list[int], seed: int) -> np.ndarray[Any, Any]:
    """The input tensor: numpy's seeded generator, small integers so `double` or `sum` rarely overflow."""
    rng = np.random.default_rng(seed)
    dtype = dtype_of(datatype)
    if dtype.kind == "f":
        wide = np.float64 if dtype.itemsize == 8 else np.float32
        return rng.standard_normal(shape, dtype=wide).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape, dtype=np.uint8).astype(dtype)
    low = 0 if dtype.kind == "u" else -100
    return rng.integers(low, 100, shape, dtype=dtype)


def input_array(capability: TensorCapability, assets_dir: Path) -> np.ndarray[Any, Any]:
    spec = capability.input
    if capability.asset is None:
        return generate(spec.datatype, spec.shape, capability.seed)
    path = (assets_dir / capability.asset).resolve()
    array = np.load(path, allow_pickle=False)
    if list(array.shape) != spec.shape or datatype_of(array.dtype) != spec.datatype:
        raise ValueError(
            f"asset {capability.asset}: {datatype_of(array.dtype)} {list(array.shape)}, "
            f"the input declares {spec.datatype} {spec.shape}"
        )
    return np.ascontiguousarray(array, dtype=dtype_of(spec.datatype))


def file_bytes(array: np.ndarray[Any, Any], file_format: str) -> bytes:
    if file_format == "raw":
        return array.tobytes()
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def multipart_body(
    fields: dict[str, str], file_field: str, filename: str, data: bytes, boundary: str
) -> bytes:
    """The multipart kind's encoding of the fields, then the tensor as a file part from memory."""
    closing = f"--{boundary}--\r\n".encode()
    head = encode_multipart(fields, {}, boundary)[: -len(closing)]
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + part + data + b"\r\n" + closing


def response_headers(response: ResponseView) -> Mapping[str, str]:
    headers = response.extra.get("headers")
    return headers if isinstance(headers, Mapping) else {}


def _bad(detail: str) -> RequestFailure:
    return RequestFailure(FailureCategory.BAD_BODY, detail)


_PREPARED: dict[tuple[str, str], PreparedRequest] = {}
"""Prepared requests by (capability, assets_dir): `describe` measures the body `prepare` built."""
MAX_PREPARED = 64


@register_protocol
class TensorProtocol(Protocol[TensorCapability]):
    wants_headers = True  # Server-Timing, X-Genie-Server-Timing, Inference-Header-Content-Length

    model = TensorCapability

    def prepare(self, capability: TensorCapability, assets_dir: Path) -> PreparedRequest:
        key = (capability.model_dump_json(), str(assets_dir))
        cached = _PREPARED.get(key)
        if cached is not None:
            return cached
        array = input_array(capability, assets_dir)
        headers: dict[str, str]
        if capability.protocol == "v2":
            tensor = TensorData(capability.input.name, capability.input.datatype, array)
            outputs = [capability.output.name]
            if capability.binary:
                body, length = encode_binary([tensor], outputs, id=capability.name)
                headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)}
            else:
                body = encode_json([tensor], outputs, id=capability.name)
                headers = {"Content-Type": "application/json"}
        elif capability.protocol == "raw":
            body = file_bytes(array, capability.file_format)
            headers = {"Content-Type": "application/octet-stream"}
        else:
            # a fixed boundary: the body is built once, and its length is the same in every process
            boundary = f"inferswarm-tensor-{capability.seed:016x}"
            fields = {"operation": capability.operation, **capability.form}
            filename = "tensor.npy" if capability.file_format == "npy" else "tensor.bin"
            data = file_bytes(array, capability.file_format)
            body = multipart_body(fields, capability.file_field, filename, data, boundary)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        headers.update(capability.headers)
        prepared = PreparedRequest(capability.method, capability.path, headers, body)
        if len(_PREPARED) >= MAX_PREPARED:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = prepared
        return prepared

    def classify(self, capability: TensorCapability, response: ResponseView) -> RequestFailure | None:
        if response.error is not None and response.status == 0:
            return classify_exception(response.error)
        failure = classify_http_error(response, capability.success.status)
        if failure is not None:
            return failure
        if capability.protocol == "v2":
            return self._check_outputs(capability, response)
        if not response.body:
            return _bad("empty body")
        expected = capability.answer_bytes()
        if expected is not None and len(response.body) != expected:
            return _bad(f"body {len(response.body)} bytes, expected {expected}")
        return None

    def _check_outputs(self, capability: TensorCapability, response: ResponseView) -> RequestFailure | None:
        try:
            outputs = decode_response(response.body, header_length_of(response_headers(response)))
        except ValueError as exc:
            return _bad(f"undecodable answer: {exc}")
        wanted = capability.output.name
        output = outputs.get(wanted)
        if output is None:
            got = ", ".join(repr(n[:32]) for n in list(outputs)[:3]) or "none"
            return _bad(f"no output {wanted!r} (got {got})")
        if output.datatype != capability.output_datatype:
            expected = capability.output_datatype
            return _bad(f"output {wanted!r} datatype {output.datatype}, expected {expected}")
        shape = capability.expected_shape()
        if shape is not None and output.shape != shape:
            return _bad(f"output {wanted!r} shape {output.shape[:MAX_RANK]}, expected {shape}")
        return None

    def observations(
        self, capability: TensorCapability, answer: ResponseView, elapsed_ms: float
    ) -> list[tuple[str, float]]:
        spec = capability.server_timing
        if spec is None:
            return []
        headers = response_headers(answer)
        document: Any = None
        if spec.needs_document:
            try:
                document, _ = split(answer.body, header_length_of(headers))
            except ValueError:
                return []
        server_ms = spec.read(headers, document)
        if server_ms is None:
            return []
        # A server's clock may run past the client's by a hair: overhead is never negative.
        return [("server_ms", server_ms), ("overhead_ms", max(elapsed_ms - server_ms, 0.0))]

    def describe(self, capability: TensorCapability, assets_dir: Path) -> dict[str, Any]:
        prepared = self.prepare(capability, assets_dir)
        shape = capability.input.shape
        return {
            "tensor": True,
            "protocol": capability.protocol,
            "operation": capability.operation,
            "datatype": capability.input.datatype,
            "shape": list(shape),
            "elements": math.prod(shape),
            "bytes_sent": len(prepared.body or b""),
            "bytes_expected": capability.output_bytes(),
            "size": size_label(shape),
            "base": capability.name.split("@", 1)[0],
        }
