"""The `tensor` kind against a real KServe ModelServer (Open Inference Protocol v2, JSON and binary).

KServe runs in its own interpreter (its dependencies pin versions this project does not): `$KSERVE_PYTHON`
or `<repo>/.venv-kserve/bin/python`, made by `scripts/kserve-venv`. Without it the tests skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferswarm.emulator.launcher import free_port
from inferswarm.protocols import FailureCategory, ResponseView
from inferswarm.protocols.tensor import TensorCapability, TensorProtocol
from tests.conftest import REPO, base_config
from tests.integration.http import request
from tests.integration.runs import inferswarm, only_run_dir, read_json

pytestmark = pytest.mark.integration

PROTOCOL = TensorProtocol()
START_TIMEOUT_S = 60.0


def kserve_python() -> Path | None:
    configured = os.environ.get("KSERVE_PYTHON")
    path = Path(configured) if configured else REPO / ".venv-kserve" / "bin" / "python"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def kserve_url() -> Iterator[str]:
    python = kserve_python()
    if python is None:
        pytest.skip("KServe is installed by .ci/run into .venv-kserve (pip install kserve); absent here")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = REPO / "tests" / "integration" / "kserve_model.py"
    proc = subprocess.Popen(
        [str(python), "-P", str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"KServe exited {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
                )
            try:
                if request(f"{url}/v2/health/ready", "GET")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"KServe not ready within {START_TIMEOUT_S:g} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def capability(**fields: Any) -> TensorCapability:
    data = {
        "kind": "tensor",
        "name": "double",
        "model": "double",
        "operation": "double",
        "input": {"shape": [4, 8]},
    }
    return TensorCapability.model_validate({**data, **fields})


def send(url: str, cap: TensorCapability) -> tuple[int, ResponseView]:
    prepared = PROTOCOL.prepare(cap, REPO)
    status, headers, body = request(
        url + prepared.path, prepared.method, prepared.body, dict(prepared.headers)
    )
    return status, ResponseView(status, headers.get("content-type", ""), body, extra={"headers": headers})


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_accepts_and_answers_prepared_requests(kserve_url: str, binary: bool) -> None:
    cap = capability(binary=binary)
    status, view = send(kserve_url, cap)
    assert status == 200, view.body[:300]
    assert ("inference-header-content-length" in view.extra["headers"]) is binary
    assert PROTOCOL.classify(cap, view) is None


@pytest.mark.parametrize("datatype", ["INT64", "UINT8", "FP64", "BOOL"])
def test_kserve_binary_datatypes(kserve_url: str, datatype: str) -> None:
    cap = capability(binary=True, input={"shape": [3, 5], "datatype": datatype})
    status, view = send(kserve_url, cap)
    assert status == 200 and PROTOCOL.classify(cap, view) is None


def test_wrong_declared_shape_is_bad_body(kserve_url: str) -> None:
    cap = capability(binary=True, output={"shape": [8, 4]})
    status, view = send(kserve_url, cap)
    failure = PROTOCOL.classify(cap, view)
    assert status == 200 and failure is not None
    assert failure.category is FailureCategory.BAD_BODY and "shape [4, 8], expected [8, 4]" in failure.detail


def test_unknown_output_is_kserves_400(kserve_url: str) -> None:
    cap = capability(output={"name": "nope"})
    status, view = send(kserve_url, cap)
    failure = PROTOCOL.classify(cap, view)
    assert status == 400 and failure is not None and failure.category is FailureCategory.CLIENT_ERROR
    assert "nope" in failure.detail


def test_inferswarm_run_against_kserve(
    kserve_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    tensor = {
        "kind": "tensor",
        "model": "double",
        "operation": "double",
        "input": {"shape": [16, 16]},
        "server_timing": {"header": "Server-Timing", "metric": "compute"},
    }
    config = write_config(
        base_config(
            target={"base_url": kserve_url, "request_timeout_s": 10},
            capabilities=[{**tensor, "name": "json"}, {**tensor, "name": "binary", "binary": True}],
            load={"shape": "stages", "stages": [{"duration_s": 3, "users": 2}]},
        )
    )
    out = tmp_path / "results"
    proc = inferswarm("run", str(config), "--out", str(out))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    results = read_json(only_run_dir(out) / "results.json")
    summary = results["summary"]  # capability name (and "total") -> its totals
    for name in ("json", "binary"):
        assert summary[name]["requests"] > 0 and summary[name]["failure_ratio"] == 0, summary[name]
    # KServe carried the model's Server-Timing: every success has its server time and overhead
    sizes = {s["capability"]: s for s in results["tensor"]["sizes"]}
    for name in ("json", "binary"):
        size = sizes[name]
        assert size["timed_by_server"] == size["successes"] == summary[name]["requests"]
        assert 0 <= size["server_p50_ms"] < size["client_p50_ms"]
        assert size["overhead_p50_ms"] > 0
