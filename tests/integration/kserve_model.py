"""A KServe model for tests/integration/test_kserve.py, run by KServe's own interpreter (.venv-kserve).

`double` answers x * 2 (numpy, the input's dtype) as `output-0`, in binary when the request asked for
binary outputs (KServe's response encoder follows each requested output's `binary_data`).
Usage: python -P kserve_model.py <port>: HTTP only, on 127.0.0.1, one worker (-P: this folder's http.py
must not shadow the standard library's).
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import numpy as np
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class LoopbackConfig(uvicorn.Config):
    """KServe binds 0.0.0.0 whatever it is told: the tests listen on loopback only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


uvicorn.Config = LoopbackConfig  # KServe's REST server looks it up when it starts


class Double(Model):
    def __init__(self) -> None:
        super().__init__("double", return_response_headers=True)  # predict may set response headers
        self.ready = True

    async def predict(self, payload: InferRequest, headers: Any = None, response_headers: Any = None) -> Any:
        started = time.perf_counter()
        tensor = payload.inputs[0]
        x = tensor.as_numpy()
        y = np.asarray(x * 2).astype(x.dtype)
        if response_headers is not None:
            # The model's own time in the standard header, as a server that reports compute time does
            # (KServe adds the model's response headers to the HTTP answer).
            response_headers["Server-Timing"] = f"compute;dur={(time.perf_counter() - started) * 1000:.3f}"
        output = InferOutput(name="output-0", shape=list(y.shape), datatype=tensor.datatype, data=y)
        # KServe needs a non-None response id; a request may come without one
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            requested_outputs=payload.request_outputs,
        )


if __name__ == "__main__":
    port = int(sys.argv[1])
    sys.argv = sys.argv[:1]  # KServe parses the command line itself
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([Double()])
