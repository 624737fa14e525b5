"""`kind: tensor`: config validation, prepared requests per protocol, classification, observations."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from inferswarm.protocols import FailureCategory, ResponseView, protocol_for
from inferswarm.protocols.tensor import TensorCapability, TensorProtocol
from inferswarm.protocols.tensor_codec import (
    HEADER_LENGTH,
    TensorData,
    decode_request,
    encode_binary,
    encode_json,
)
from inferswarm.protocols.tensor_ops import apply

PROTOCOL = TensorProtocol()


def cap(**fields: Any) -> TensorCapability:
    data: dict[str, Any] = {"kind": "tensor", "name": "t", "model": "double", "input": {"shape": [2, 3]}}
    data.update(fields)
    return TensorCapability.model_validate({k: v for k, v in data.items() if v is not None})


def answer(tensor: TensorData, binary: bool = False, status: int = 200) -> ResponseView:
    if binary:
        body, length = encode_binary([tensor], key="outputs")
        return ResponseView(
            status, "application/octet-stream", body, extra={"headers": {HEADER_LENGTH: str(length)}}
        )
    return ResponseView(status, "application/json", encode_json([tensor], key="outputs"))


def right_answer(c: TensorCapability) -> TensorData:
    x = np.zeros(c.input.shape, dtype="<f4")
    return TensorData("output-0", "FP32", apply(c.operation, x))


# -- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": None}, "protocol v2 needs a model"),
        ({"protocol": "raw", "model": None}, "protocol raw needs a path"),
        ({"input": {"shape": [2], "datatype": "FP8"}}, "datatype"),
        ({"input": {"shape": [16384, 16384]}}, "more than 256 MiB"),
        ({"input": {"shape": [0, 3]}}, "below 1"),
        ({"server_timing": {"header": "Server-Timing", "json_header": "X-T"}}, "exactly one"),
        ({"operation": "explode"}, "unknown operation"),
        ({"operation": "matmul", "input": {"shape": [4]}}, "2-D"),
        ({"protocol": "multipart", "path": "/execute", "binary": True, "model": None}, "binary is the v2"),
        ({"expect_bytes": 10}, "expect_bytes is for raw"),
        ({"sizes": [[2], [2]]}, "2 twice"),
        ({"sizes": [[2]], "asset": "x.npy"}, "exclude"),
    ],
)
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"kind": "tensor", "name": "t", "model": "double", "input": {"shape": [2, 3]}}
    data.update(fields)
    with pytest.raises(ValidationError, match=message):
        TensorCapability.model_validate({k: v for k, v in data.items() if v is not None})


def test_v2_path_is_derived() -> None:
    assert cap().path == "/v2/models/double/infer"
    assert cap(model_version="3").path == "/v2/models/double/versions/3/infer"
    assert cap(path="/proxy/infer").path == "/proxy/infer"


def test_registered() -> None:
    assert isinstance(protocol_for("tensor"), TensorProtocol)


# -- prepare ----------------------------------------------------------------------------------------------


def test_prepare_v2_json(tmp_path: Path) -> None:
    c = cap(seed=5)
    request = PROTOCOL.prepare(c, tmp_path)
    assert request.headers["Content-Type"] == "application/json" and HEADER_LENGTH not in request.headers
    assert request.body is not None
    document = json.loads(request.body)
    assert document["id"] == "t" and document["outputs"] == [{"name": "output-0"}]
    _, inputs = decode_request(request.body)
    expected = np.random.default_rng(5).standard_normal([2, 3], dtype=np.float32)
    assert inputs["input-0"].array.tobytes() == expected.tobytes()


def test_prepare_v2_binary_header_length_is_the_json_part(tmp_path: Path) -> None:
    c = cap(binary=True, input={"shape": [4, 4], "datatype": "FP16"})
    request = PROTOCOL.prepare(c, tmp_path)
    assert request.body is not None
    length = int(request.headers[HEADER_LENGTH])
    header = json.loads(request.body[:length])
    assert header["inputs"][0]["parameters"] == {"binary_data_size": 32}
    assert header["outputs"] == [{"name": "output-0", "parameters": {"binary_data": True}}]
    assert len(request.body) == length + 32
    assert request.headers["Content-Type"] == "application/octet-stream"


def test_prepare_raw(tmp_path: Path) -> None:
    c = cap(
        protocol="raw",
        path="/infer",
        model=None,
        file_format="raw",
        input={"shape": [3], "datatype": "INT16"},
    )
    request = PROTOCOL.prepare(c, tmp_path)
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.body == np.random.default_rng(0).integers(-100, 100, [3], dtype="<i2").tobytes()


def test_prepare_multipart_seed_003(tmp_path: Path) -> None:
    c = cap(protocol="multipart", path="/execute", model=None, operation="matmul", form={"device": "cuda"})
    request = PROTOCOL.prepare(c, tmp_path)
    boundary = request.headers["Content-Type"].split("boundary=")[1]
    assert request.body is not None
    parts = request.body.split(f"--{boundary}".encode())
    assert b'name="operation"\r\n\r\nmatmul\r\n' in parts[1]
    assert b'name="device"\r\n\r\ncuda\r\n' in parts[2]
    assert b'name="tensor_file"; filename="tensor.npy"' in parts[3]
    npy = parts[3].split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]
    assert np.load(io.BytesIO(npy)).shape == (2, 3)
    assert parts[4] == b"--\r\n"


def test_asset_is_sent_and_checked(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(6, dtype="<f4").reshape(2, 3))
    request = PROTOCOL.prepare(cap(asset="x.npy", binary=True), tmp_path)
    assert request.body is not None and request.body.endswith(np.arange(6, dtype="<f4").tobytes())
    np.save(tmp_path / "y.npy", np.arange(6, dtype="<f8"))
    with pytest.raises(ValueError, match="declares FP32"):
        PROTOCOL.prepare(cap(asset="y.npy"), tmp_path)


# -- classify ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_right_answer_is_success(binary: bool) -> None:
    c = cap(operation="matmul")
    assert PROTOCOL.classify(c, answer(right_answer(c), binary)) is None


def test_binary_answer_decodes_without_its_length_header() -> None:
    c = cap()
    body, _ = encode_binary([right_answer(c)], key="outputs")
    assert PROTOCOL.classify(c, ResponseView(200, "application/octet-stream", body)) is None


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (TensorData("other", "FP32", np.zeros((2, 3), "<f4")), "no output 'output-0' (got 'other')"),
        (TensorData("output-0", "FP32", np.zeros((3, 2), "<f4")), "shape [3, 2], expected [2, 3]"),
        (TensorData("output-0", "FP64", np.zeros((2, 3), "<f8")), "datatype FP64, expected FP32"),
    ],
    ids=["name", "shape", "datatype"],
)
def test_wrong_answer_is_bad_body_naming_it(tensor: TensorData, fragment: str) -> None:
    failure = PROTOCOL.classify(cap(), answer(tensor))
    assert failure is not None and failure.category is FailureCategory.BAD_BODY
    assert fragment in failure.detail


def test_data_length_must_match_shape() -> None:
    body = json.dumps({"outputs": [{"name": "output-0", "shape": [2, 3], "datatype": "FP32", "data": [1]}]})
    failure = PROTOCOL.classify(cap(), ResponseView(200, "application/json", body.encode()))
    assert (
        failure is not None and failure.category is FailureCategory.BAD_BODY and "1 values" in failure.detail
    )


def test_any_shape_and_explicit_shape() -> None:
    wrong = answer(TensorData("output-0", "FP32", np.zeros((7,), "<f4")))
    assert PROTOCOL.classify(cap(output={"shape": "any"}), wrong) is None
    assert PROTOCOL.classify(cap(output={"shape": [7]}), wrong) is None


def test_400_is_client_error_with_kserve_message() -> None:
    body = b"{\"error\": \"Unexpected inference output 'x' for model 'double'\"}"
    failure = PROTOCOL.classify(cap(), ResponseView(400, "application/json", body))
    assert failure is not None and failure.category is FailureCategory.CLIENT_ERROR
    assert failure.detail.startswith("HTTP 400: Unexpected inference output")


def test_raw_answers_checked_by_size() -> None:
    c = cap(protocol="multipart", path="/execute", model=None, expect_bytes="auto")
    npy = io.BytesIO()
    np.save(npy, np.zeros((2, 3), "<f4"))
    assert c.answer_bytes() == len(npy.getvalue())
    assert PROTOCOL.classify(c, ResponseView(200, "", npy.getvalue())) is None
    failure = PROTOCOL.classify(c, ResponseView(200, "", npy.getvalue()[:-4]))
    assert failure is not None and f"expected {len(npy.getvalue())}" in failure.detail
    empty = PROTOCOL.classify(cap(protocol="raw", path="/x", model=None), ResponseView(200, "", b""))
    assert empty is not None and empty.detail == "empty body"


# -- observations, expand, describe --------------------------------------------------------------------


def test_observations_arithmetic() -> None:
    c = cap(server_timing={"header": "Server-Timing"})
    view = ResponseView(200, "", b"", extra={"headers": {"Server-Timing": "compute;dur=12.5"}})
    assert PROTOCOL.observations(c, view, 40.0) == [("server_ms", 12.5), ("overhead_ms", 27.5)]
    assert PROTOCOL.observations(c, view, 10.0) == [("server_ms", 12.5), ("overhead_ms", 0.0)]
    assert PROTOCOL.observations(c, ResponseView(200), 40.0) == []
    assert PROTOCOL.observations(cap(), view, 40.0) == []


def test_observations_from_a_json_field() -> None:
    c = cap(server_timing={"field": "parameters.compute_ms"})
    view = ResponseView(200, "application/json", b'{"parameters": {"compute_ms": 4}, "outputs": []}')
    assert PROTOCOL.observations(c, view, 10.0) == [("server_ms", 4.0), ("overhead_ms", 6.0)]


def test_expand_names_and_shapes() -> None:
    c = cap(sizes=[[2, 2], [8, 16]])
    copies = c.expand()
    assert [x.name for x in copies] == ["t@2x2", "t@8x16"]
    assert [x.input.shape for x in copies] == [[2, 2], [8, 16]]
    assert all(isinstance(x, TensorCapability) and x.sizes == [] for x in copies)
    assert cap().expand() == [cap()]


def test_describe(tmp_path: Path) -> None:
    c = cap(sizes=[[4, 4]], binary=True).expand()[0]
    assert isinstance(c, TensorCapability)
    facts = PROTOCOL.describe(c, tmp_path)
    request = PROTOCOL.prepare(c, tmp_path)
    assert facts == {
        "tensor": True,
        "protocol": "v2",
        "operation": "identity",
        "datatype": "FP32",
        "shape": [4, 4],
        "elements": 16,
        "bytes_sent": len(request.body or b""),
        "bytes_expected": 64,
        "size": "4x4",
        "base": "t",
    }
