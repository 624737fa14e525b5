"""The reference target's tensor server: Open Inference Protocol v2 (JSON, binary) and seed 003's /execute."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inferswarm.emulator.app import create_app
from inferswarm.emulator.settings import TargetSettings, load_target_settings
from inferswarm.protocols.server_timing import from_json_header, from_server_timing
from inferswarm.protocols.tensor_codec import (
    HEADER_LENGTH,
    TensorData,
    decode_response,
    encode_binary,
    encode_json,
)
from inferswarm.protocols.tensor_ops import apply
from tests.conftest import REPO

FIXED_MS = 5.0
ONE = b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}'
TENSOR = {
    "models": [
        {"name": "double", "operation": "double"},
        {"name": "matmul", "operation": "matmul", "datatype": "FP32"},
        {"name": "tiny", "operation": "identity", "max_elements": 4},
    ],
    "gpu_ms_fixed": FIXED_MS,
    "gpu_ms_per_mb": 0.0,
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = TargetSettings.model_validate({"tensor": TENSOR, "max_body_bytes": 1024 * 1024})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def rng_array(shape: list[int], dtype: str = "<f4") -> np.ndarray[Any, Any]:
    return np.random.default_rng(7).standard_normal(shape).astype(dtype)


def test_no_tensor_section_no_routes() -> None:
    with TestClient(create_app(TargetSettings())) as plain:
        assert plain.get("/v2/health/ready").status_code == 404
        assert plain.post("/execute").status_code == 404


def test_health_metadata_and_ready(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/matmul").json()
    assert meta["name"] == "matmul" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, -1]}]
    assert meta["outputs"][0]["name"] == "output-0"
    assert client.get("/v2/models/double/ready").json() == {"name": "double", "ready": True}
    missing = client.get("/v2/models/nope/ready")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


@pytest.mark.parametrize("model", ["double", "matmul"])
def test_v2_json_infer_is_numpy_exact(client: TestClient, model: str) -> None:
    x = rng_array([3, 4])
    body = encode_json([TensorData("input-0", "FP32", x)], ["output-0"], id="r1")
    response = client.post(f"/v2/models/{model}/infer", content=body)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model_name"] == model and doc["id"] == "r1"
    out = decode_response(response.content)["output-0"]
    expected = apply(model, x)
    assert out.datatype == "FP32" and out.shape == list(expected.shape)
    assert out.array.dtype == np.dtype("<f4") and np.array_equal(out.array, expected)


def test_v2_binary_infer_answers_binary(client: TestClient) -> None:
    x = np.arange(-6, 6, dtype="<i8").reshape(3, 4)
    body, length = encode_binary([TensorData("input-0", "INT64", x)], ["output-0"], id="b")
    headers = {HEADER_LENGTH: str(length), "Content-Type": "application/octet-stream"}
    response = client.post("/v2/models/double/versions/1/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers[HEADER_LENGTH])
    assert json.loads(response.content[:header_length])["outputs"][0]["parameters"] == {
        "binary_data_size": x.nbytes
    }
    out = decode_response(response.content, header_length)["output-0"]
    assert out.array.tobytes() == (x * 2).astype("<i8").tobytes() and out.shape == [3, 4]


def test_server_timing_covers_the_simulated_gpu(client: TestClient) -> None:
    body = encode_json([TensorData("input-0", "FP32", rng_array([2, 2]))])
    response = client.post("/v2/models/double/infer", content=body)
    compute = from_server_timing(response.headers["server-timing"])
    assert compute is not None and compute >= FIXED_MS


def test_execute_multipart_npy_round_trip(client: TestClient) -> None:
    x = rng_array([4, 3])
    npy = io.BytesIO()
    np.save(npy, x)
    files = {"tensor_file": ("tensor.npy", npy.getvalue(), "application/octet-stream")}
    response = client.post("/execute", data={"operation": "matmul"}, files=files)
    assert response.status_code == 200, response.text
    result = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert result.dtype == x.dtype and np.array_equal(result, apply("matmul", x))
    timing = json.loads(response.headers["x-genie-server-timing"])
    assert set(timing) == {"deserialize_ms", "execute_ms", "serialize_ms", "total_ms"}
    assert timing["execute_ms"] >= FIXED_MS
    assert from_json_header(response.headers["x-genie-server-timing"]) == timing["total_ms"]
    assert timing["total_ms"] >= timing["execute_ms"]


@pytest.mark.parametrize(
    ("body", "headers", "fragment"),
    [
        (b"{not json", {}, "JSON"),
        (b'{"inputs":[{"name":"a","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}', {}, "3 values"),
        (b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP33","data":[1]}]}', {}, "datatype"),
        (
            b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}',
            {HEADER_LENGTH: "999"},
            "999",
        ),
        (
            b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"x"}]}',
            {},
            "Unexpected inference output",
        ),
        (b'{"inputs":[{"name":"a","shape":[5],"datatype":"FP32","data":[1,2,3,4,5]}]}', {}, "at most 4"),
    ],
    ids=["bad-json", "shape-data-mismatch", "unknown-datatype", "header-length", "unknown-output", "too-big"],
)
def test_malformed_requests_get_400_with_kserve_error(
    client: TestClient, body: bytes, headers: dict[str, str], fragment: str
) -> None:
    model = "tiny" if fragment == "at most 4" else "double"
    response = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_matmul_refuses_a_1d_tensor_and_a_wrong_datatype(client: TestClient) -> None:
    one_d = encode_json([TensorData("input-0", "FP32", rng_array([4]))])
    assert "2-D" in client.post("/v2/models/matmul/infer", content=one_d).json()["error"]
    ints = encode_json([TensorData("input-0", "INT32", np.ones((2, 2), "<i4"))])
    response = client.post("/v2/models/matmul/infer", content=ints)
    assert response.status_code == 400 and "INT32" in response.json()["error"]


def test_unknown_model_and_version_are_404(client: TestClient) -> None:
    body = encode_json([TensorData("input-0", "FP32", rng_array([1]))])
    for path in ("/v2/models/nope/infer", "/v2/models/double/versions/9/infer", "/v2/models/nope"):
        response = client.request("POST" if path.endswith("infer") else "GET", path, content=body)
        assert response.status_code == 404 and "does not exist" in response.json()["error"]


def test_execute_refuses_bad_uploads(client: TestClient) -> None:
    files = {"tensor_file": ("tensor.npy", b"not npy", "application/octet-stream")}
    response = client.post("/execute", data={"operation": "double"}, files=files)
    assert response.status_code == 400 and ".npy" in response.json()["error"]
    npy = io.BytesIO()
    np.save(npy, rng_array([2]))
    files = {"tensor_file": ("tensor.npy", npy.getvalue(), "application/octet-stream")}
    response = client.post("/execute", data={"operation": "explode"}, files=files)
    assert response.status_code == 400 and "explode" in response.json()["error"]


def test_bodies_beyond_max_body_bytes_are_413(client: TestClient) -> None:
    response = client.post("/v2/models/double/infer", content=b"{" + b" " * (1024 * 1024) + b"}")
    assert response.status_code == 413 and "exceeds" in response.json()["error"]


def test_tensor_target_config_loads() -> None:
    settings = load_target_settings(REPO / "configs" / "tensor-target.yaml")
    assert settings.tensor is not None
    assert {m.name: m.operation for m in settings.tensor.models} == {"double": "double", "matmul": "matmul"}


def test_settings_refuse_unknown_operation_and_duplicates() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        TargetSettings.model_validate({"tensor": {"models": [{"name": "m", "operation": "explode"}]}})
    with pytest.raises(ValueError, match="listed twice"):
        TargetSettings.model_validate({"tensor": {"models": [{"name": "m"}, {"name": "m"}]}})
