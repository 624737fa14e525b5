"""The Open Inference Protocol's (KServe v2, Triton, MLServer) tensor encodings, JSON and binary.

JSON: `{"id", "inputs": [{"name", "shape", "datatype", "data"}], "outputs": [{"name"}]}`, data flattened in
row-major order. Binary (the binary tensor extension): the same JSON header, where a binary tensor has
`"parameters": {"binary_data_size": N}` and no `data`, followed by each binary tensor's raw bytes in the
order the header lists them; the JSON part's length travels in `Inference-Header-Content-Length`. Binary
data is little-endian whatever the host. BYTES (strings) are JSON-only here: the binary form of BYTES
(length-prefixed elements) is not needed by anything inferswarm sends.

Every error is a ValueError with a short message that never quotes tensor data.
No Locust or gevent here: the emulator and the reports use it too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The request and response header holding the JSON part's length in a binary body."""

NUMERIC: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Every numeric datatype and its little-endian numpy dtype."""
DATATYPES = (*NUMERIC, "BYTES")

MAX_RANK = 16


class TensorData(NamedTuple):
    """One named tensor: what is sent, and what a decoded answer holds."""

    name: str
    datatype: str
    array: np.ndarray[Any, Any]


class DecodedTensor(NamedTuple):
    shape: list[int]
    datatype: str
    array: np.ndarray[Any, Any]


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a numeric datatype (ValueError for BYTES or an unknown name)."""
    try:
        return NUMERIC[datatype]
    except KeyError:
        raise ValueError(f"unknown or non-numeric datatype {datatype!r}") from None


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The protocol's name for a numpy dtype, byte order ignored."""
    for name, known in NUMERIC.items():
        if known == dtype.newbyteorder("<"):
            return name
    if dtype.kind in "OSU":
        return "BYTES"
    raise ValueError(f"no datatype for numpy dtype {dtype}")


def little_endian(array: np.ndarray[Any, Any], datatype: str) -> np.ndarray[Any, Any]:
    """The array as the datatype's little-endian dtype, C-contiguous (what goes on the wire)."""
    return np.ascontiguousarray(array, dtype=dtype_of(datatype))


def nbytes(datatype: str, shape: Sequence[int]) -> int:
    """The raw size of a numeric tensor."""
    return dtype_of(datatype).itemsize * math.prod(shape)


def _json_data(tensor: TensorData) -> list[Any]:
    if tensor.datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in tensor.array.reshape(-1).tolist()]
    # tolist() gives Python floats and ints whose repr round-trips exactly, whatever the width
    flat: list[Any] = little_endian(tensor.array, tensor.datatype).reshape(-1).tolist()
    return flat


def _entry(tensor: TensorData) -> dict[str, Any]:
    return {"name": tensor.name, "shape": list(tensor.array.shape), "datatype": tensor.datatype}


def _outputs(names: Sequence[str], binary: bool) -> list[dict[str, Any]]:
    if binary:
        return [{"name": n, "parameters": {"binary_data": True}} for n in names]
    return [{"name": n} for n in names]


def _dumps(document: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ValueError("NaN or infinity cannot be sent as JSON; use the binary form") from None


def encode_json(
    inputs: Sequence[TensorData],
    outputs: Sequence[str] = (),
    outputs_binary: bool = False,
    id: str | None = None,
    key: str = "inputs",
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """A JSON request (or, with key="outputs", a JSON response body): every tensor's data inline.
    `outputs`: the output names requested, binary when `outputs_binary`; `extra`: more top-level fields."""
    document: dict[str, Any] = {} if id is None else {"id": id}
    document.update(extra or {})
    document[key] = [{**_entry(t), "data": _json_data(t)} for t in inputs]
    if outputs:
        document["outputs"] = _outputs(outputs, outputs_binary)
    return _dumps(document)


def encode_binary(
    inputs: Sequence[TensorData],
    outputs: Sequence[str] = (),
    id: str | None = None,
    key: str = "inputs",
    extra: Mapping[str, Any] | None = None,
) -> tuple[bytes, int]:
    """A binary-extension body and the length of its JSON part (the `Inference-Header-Content-Length`).
    Outputs are requested binary too. `extra`: more top-level header fields (a response's model_name)."""
    raws = []
    entries = []
    for tensor in inputs:
        if tensor.datatype == "BYTES":
            raise ValueError(f"tensor {tensor.name!r}: BYTES is sent as JSON only")
        raw = little_endian(tensor.array, tensor.datatype).tobytes()
        raws.append(raw)
        entries.append({**_entry(tensor), "parameters": {"binary_data_size": len(raw)}})
    document: dict[str, Any] = {} if id is None else {"id": id}
    document.update(extra or {})
    document[key] = entries
    if outputs:
        document["outputs"] = _outputs(outputs, True)
    header = _dumps(document)
    return header + b"".join(raws), len(header)


def split(body: bytes, header_length: int | None = None) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary part after it. Without `header_length` the header ends where its
    JSON object does (found by parsing), so a response whose length header was not kept still decodes."""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise ValueError(f"header length {header_length} outside a {len(body)}-byte body")
        head, rest = body[:header_length], body[header_length:]
        try:
            document = json.loads(head)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"the first {header_length} bytes are not a JSON object") from None
    else:
        # latin-1 maps each byte to one character: positions are byte offsets, whatever follows the JSON
        text = body.decode("latin-1")
        start = len(text) - len(text.lstrip())
        try:
            document, end = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            raise ValueError("the body does not start with a JSON object") from None
        head, rest = body[:end], body[end:]
        if not head.isascii():  # non-ASCII names: parse the header again as the UTF-8 it is
            try:
                document = json.loads(head)
            except (ValueError, UnicodeDecodeError):
                raise ValueError("the JSON header is not UTF-8") from None
    if not isinstance(document, dict):
        raise ValueError("the JSON header is not an object")
    return document, rest


def _shape(entry: Mapping[str, Any], name: str) -> list[int]:
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ValueError(f"tensor {name!r}: shape is not a list of non-negative integers")
    return shape


def _from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray[Any, Any]:
    if not isinstance(data, list):
        raise ValueError(f"tensor {name!r}: data is not a list")
    try:
        if datatype == "BYTES":
            array = np.array(data, dtype=object)
        else:
            array = np.array(data, dtype=dtype_of(datatype))
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"tensor {name!r}: data is not {datatype}") from None
    if array.size != math.prod(shape):
        raise ValueError(f"tensor {name!r}: {array.size} values for shape {shape}")
    return array.reshape(shape)


def decode_tensors(
    document: Mapping[str, Any], binary: bytes, key: str = "outputs"
) -> dict[str, DecodedTensor]:
    """The tensors listed under `key` ("outputs" in a response, "inputs" in a request), binary ones
    taken in order from `binary`, which they must use up exactly."""
    entries = document.get(key)
    if not isinstance(entries, list):
        raise ValueError(f"no {key} list")
    decoded: dict[str, DecodedTensor] = {}
    offset = 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"an entry of {key} has no name")
        name: str = entry["name"][:64]
        datatype = entry.get("datatype")
        if datatype not in DATATYPES:
            raise ValueError(f"tensor {name!r}: unknown datatype {str(datatype)[:16]!r}")
        shape = _shape(entry, name)
        parameters = entry.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            array = _from_json(entry.get("data"), datatype, shape, name)
        else:
            if datatype == "BYTES":
                raise ValueError(f"tensor {name!r}: binary BYTES is not supported")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"tensor {name!r}: binary_data_size is not a non-negative integer")
            expected = nbytes(datatype, shape)
            if size != expected:
                raise ValueError(f"tensor {name!r}: {size} bytes for {datatype} shape {shape} ({expected})")
            if offset + size > len(binary):
                raise ValueError(f"tensor {name!r}: binary data cut short")
            # frombuffer shares the body's memory (no copy); the dtype is the little-endian one
            array = np.frombuffer(binary, dtype=dtype_of(datatype), count=math.prod(shape), offset=offset)
            array = array.reshape(shape)
            offset += size
        decoded[name] = DecodedTensor(shape, datatype, array)
    # whitespace after a pure JSON body is not binary data
    if offset != len(binary) and (offset or binary.strip()):
        raise ValueError(f"binary part has {len(binary)} bytes, the header declares {offset}")
    return decoded


def decode_response(body: bytes, header_length: int | None = None) -> dict[str, DecodedTensor]:
    """An inference response's outputs by name, JSON or binary. `header_length`: the response's
    `Inference-Header-Content-Length` when it had one (None: pure JSON, or a header found by parsing)."""
    document, binary = split(body, header_length)
    return decode_tensors(document, binary, "outputs")


def decode_request(
    body: bytes, header_length: int | None = None
) -> tuple[dict[str, Any], dict[str, DecodedTensor]]:
    """An inference request's JSON header and its inputs by name."""
    document, binary = split(body, header_length)
    return document, decode_tensors(document, binary, "inputs")


def header_length_of(headers: Mapping[str, str]) -> int | None:
    """`Inference-Header-Content-Length` from headers (any case); None when absent, ValueError when bad."""
    for key, value in headers.items():
        if key.lower() == HEADER_LENGTH.lower():
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"{HEADER_LENGTH} is not an integer") from None
    return None
