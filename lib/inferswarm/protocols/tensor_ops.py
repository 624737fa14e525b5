"""The operations a tensor capability asks for, as numpy functions of one array.

One table for three users: the reference target computes its answers with it, the `tensor` kind derives
the expected output shape from it, and a CPU baseline can time the same work. Every operation keeps the
input's dtype (its result is cast back), so an answer's datatype is the request's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def _keep(fn: Callable[[Array], Any]) -> Callable[[Array], Array]:
    def run(x: Array) -> Array:
        return np.asarray(fn(x)).astype(x.dtype, copy=False)

    return run


def _matmul(x: Array) -> Any:
    if x.ndim != 2:
        raise ValueError(f"matmul needs a 2-D tensor, got {x.ndim}-D")
    return x @ x.T


def _softmax(x: Array) -> Any:
    if x.ndim < 1:
        raise ValueError("softmax needs at least 1 dimension")
    wide = x.astype(np.float64)
    shifted = np.exp(wide - wide.max(axis=-1, keepdims=True))  # shifted by the max: no overflow
    return shifted / shifted.sum(axis=-1, keepdims=True)


OPERATIONS: dict[str, Callable[[Array], Array]] = {
    "identity": _keep(lambda x: x),
    "double": _keep(lambda x: x * 2),
    "add_one": _keep(lambda x: x + 1),
    "relu": _keep(lambda x: np.maximum(x, 0)),
    "sum": _keep(lambda x: np.sum(x).reshape(1)),
    "matmul": _keep(_matmul),
    "softmax": _keep(_softmax),
}


def known_operation(value: str) -> str:
    """A pydantic validator body: `value` when it names an operation, else the one-line error."""
    if value not in OPERATIONS:
        raise ValueError(f"unknown operation {value!r}; valid: {', '.join(OPERATIONS)}")
    return value


def output_shape(operation: str, input_shape: Sequence[int]) -> list[int]:
    """The shape `operation` gives for an input of `input_shape` (ValueError when it takes no such input)."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; valid: {', '.join(OPERATIONS)}")
    if operation == "sum":
        return [1]
    if operation == "matmul":
        if len(input_shape) != 2:
            raise ValueError(f"matmul needs a 2-D shape, got {list(input_shape)}")
        return [input_shape[0], input_shape[0]]
    if operation == "softmax" and not input_shape:
        raise ValueError("softmax needs at least 1 dimension")
    return list(input_shape)


def apply(operation: str, array: Array) -> Array:
    """`operation` on `array` (ValueError for an unknown operation or an input it does not take)."""
    output_shape(operation, array.shape)
    with np.errstate(all="ignore"):  # overflow wraps or saturates as the dtype does; never a warning
        return OPERATIONS[operation](array)
