"""The Open Inference Protocol tensor codec: exact round trips, JSON and binary, and its refusals."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from inferswarm.protocols.tensor_codec import (
    NUMERIC,
    TensorData,
    decode_request,
    decode_response,
    encode_binary,
    encode_json,
    header_length_of,
    split,
)


def sample(datatype: str, shape: tuple[int, ...] = (2, 3)) -> np.ndarray[Any, Any]:
    dtype = NUMERIC[datatype]
    rng = np.random.default_rng(3)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    # the extremes too: a JSON float or a narrowing would lose them
    values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    values.flat[0], values.flat[1] = info.min, info.max
    return values


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_json_round_trip_is_exact(datatype: str) -> None:
    x = sample(datatype)
    body = encode_json([TensorData("t", datatype, x)], id="1", key="outputs")
    out = decode_response(body)["t"]
    assert out.datatype == datatype and out.shape == [2, 3]
    assert out.array.dtype == NUMERIC[datatype] and out.array.tobytes() == x.tobytes()


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_binary_round_trip_is_exact(datatype: str) -> None:
    x = sample(datatype)
    body, length = encode_binary([TensorData("t", datatype, x)], ["o"], id="1")
    header = json.loads(body[:length])
    assert header["inputs"][0]["parameters"] == {"binary_data_size": x.nbytes}
    assert "data" not in header["inputs"][0]
    assert header["outputs"] == [{"name": "o", "parameters": {"binary_data": True}}]
    assert body[length:] == x.astype(NUMERIC[datatype]).tobytes()
    for known in (length, None):  # with the header's length, and found by parsing
        out = decode_request(body, known)[1]["t"]
        assert out.array.dtype == NUMERIC[datatype] and out.array.tobytes() == x.tobytes()


def test_big_endian_input_goes_out_little_endian() -> None:
    x = np.arange(6, dtype=">i4").reshape(2, 3)
    body, length = encode_binary([TensorData("t", "INT32", x)])
    assert body[length:] == np.arange(6, dtype="<i4").tobytes()
    _, inputs = decode_request(body, length)
    assert inputs["t"].array.dtype.str == "<i4" and np.array_equal(inputs["t"].array, x)


def test_several_binary_tensors_in_order() -> None:
    a, b = sample("FP16", (3,)), sample("UINT8", (2, 2))
    body, length = encode_binary([TensorData("a", "FP16", a), TensorData("b", "UINT8", b)])
    _, inputs = decode_request(body, length)
    assert inputs["a"].array.tobytes() == a.tobytes() and inputs["b"].array.tobytes() == b.tobytes()


def test_json_requests_outputs_binary_when_asked() -> None:
    body = encode_json([TensorData("t", "FP32", sample("FP32"))], ["o"], outputs_binary=True)
    assert json.loads(body)["outputs"] == [{"name": "o", "parameters": {"binary_data": True}}]


def test_bytes_is_json_only() -> None:
    words = np.array(["a", "bc"], dtype=object)
    out = decode_response(encode_json([TensorData("s", "BYTES", words)], key="outputs"))["s"]
    assert out.datatype == "BYTES" and out.array.tolist() == ["a", "bc"]
    with pytest.raises(ValueError, match="JSON only"):
        encode_binary([TensorData("s", "BYTES", words)])


def test_binary_header_length_mismatch_is_a_value_error() -> None:
    response, length = encode_binary([TensorData("t", "FP32", sample("FP32"))], key="outputs")
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_response(response, length - 1)
    with pytest.raises(ValueError, match="outside"):
        decode_response(response, len(response) + 1)


def test_binary_size_mismatches_are_value_errors() -> None:
    response, length = encode_binary([TensorData("t", "FP32", sample("FP32"))], key="outputs")
    with pytest.raises(ValueError, match="cut short"):
        decode_response(response[:-1], length)
    with pytest.raises(ValueError, match="header declares"):
        decode_response(response + b"\0", length)
    wrong = response.replace(b'"binary_data_size":24', b'"binary_data_size":20')
    with pytest.raises(ValueError, match="20 bytes"):
        decode_response(wrong, length)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"outputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1.0]}]}, "1 values"),
        ({"outputs": [{"name": "t", "shape": [1], "datatype": "FP33", "data": [1.0]}]}, "datatype"),
        ({"outputs": [{"name": "t", "shape": [-1], "datatype": "FP32", "data": [1.0]}]}, "shape"),
        ({"outputs": [{"name": "t", "shape": [1], "datatype": "INT8", "data": ["x"]}]}, "not INT8"),
        ({"outputs": [{"shape": [1], "datatype": "INT8", "data": [1]}]}, "no name"),
        ({"model_name": "m"}, "no outputs"),
    ],
)
def test_malformed_json_answers(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_response(json.dumps(document).encode())


def test_garbage_is_a_value_error() -> None:
    for body in (b"", b"\x00\x01binary", b"[1,2]"):
        with pytest.raises(ValueError):
            decode_response(body)


def test_nan_cannot_go_as_json() -> None:
    with pytest.raises(ValueError, match="binary"):
        encode_json([TensorData("t", "FP32", np.array([np.nan], "<f4"))])


def test_whitespace_after_json_is_not_binary_data() -> None:
    body = encode_json([TensorData("t", "INT8", np.array([1], "<i1"))], key="outputs")
    assert decode_response(body + b"\n")["t"].array.tolist() == [1]
    document, rest = split(body + b"\n")
    assert document["outputs"][0]["name"] == "t" and rest == b"\n"


def test_header_length_of_headers() -> None:
    assert header_length_of({"inference-header-content-length": "12"}) == 12
    assert header_length_of({"Content-Type": "application/json"}) is None
    with pytest.raises(ValueError):
        header_length_of({"Inference-Header-Content-Length": "x"})


# The Open Inference Protocol's REST request and response objects (kserve/open-inference-protocol,
# "Inference Request JSON Object" / "Inference Response JSON Object"), as JSON Schema.
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"enum": [*NUMERIC, "BYTES"]},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
    "additionalProperties": False,
}
INFERENCE_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
INFERENCE_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "id": {"type": "string"},
        "parameters": {"type": ["object", "null"]},
        "outputs": {"type": "array", "items": _TENSOR},
    },
    "additionalProperties": False,
}


@pytest.mark.parametrize("binary", [False, True])
def test_requests_fit_the_protocols_json_objects(binary: bool) -> None:
    import jsonschema

    tensors = [TensorData("input-0", "FP32", sample("FP32")), TensorData("mask", "BOOL", sample("BOOL"))]
    if binary:
        body, length = encode_binary(tensors, outputs=["output-0"], id="7")
        document, raw = split(body, length)
        assert all(t["parameters"]["binary_data_size"] > 0 and "data" not in t for t in document["inputs"])
        assert len(raw) == sum(t["parameters"]["binary_data_size"] for t in document["inputs"])
        assert document["outputs"] == [{"name": "output-0", "parameters": {"binary_data": True}}]
    else:
        document = json.loads(encode_json(tensors, outputs=["output-0"], id="7"))
        assert all(len(t["data"]) == 6 for t in document["inputs"])  # flattened, row-major
    jsonschema.validate(document, INFERENCE_REQUEST)
    # and the answer a v2 server gives is read back through the same shapes
    answer = {
        "model_name": "m",
        "id": "7",
        "outputs": [{"name": "output-0", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}],
    }
    jsonschema.validate(answer, INFERENCE_RESPONSE)
    decoded = decode_response(json.dumps(answer).encode())["output-0"]
    assert decoded.array.tolist() == [[1, 2, 3], [4, 5, 6]] and decoded.datatype == "FP32"
