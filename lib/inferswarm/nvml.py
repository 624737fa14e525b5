"""The one seam to NVML (nvidia-ml-py, imported as `pynvml`).

Everything that reads the GPU goes through `open_nvml()`, so tests can hand in a fake module with the
same function names, and a machine without a driver gets a clear reason instead of a crash.
NVML must be initialised in the process that uses it (after Locust forks), never at import.
"""

from __future__ import annotations

import threading
from typing import Any


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; the message says why (no library, no driver, no device...)."""


_lock = threading.Lock()
_state: dict[str, Any] = {}


def _load_module() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # nvidia-ml-py is a dependency, but be honest if it is missing
        raise NvmlUnavailable(f"nvidia-ml-py is not installed: {exc}") from None
    return pynvml


def open_nvml(module: Any = None) -> Any:
    """Initialise NVML once per process and return the module; raises NvmlUnavailable.

    A failure is remembered, so a machine without a GPU pays for the attempt once, not per request.
    """
    if module is not None:
        module.nvmlInit()
        return module
    with _lock:
        if "module" in _state:
            return _state["module"]
        if "error" in _state:
            raise NvmlUnavailable(_state["error"])
        try:
            nvml = _load_module()
            nvml.nvmlInit()
        except NvmlUnavailable as exc:
            _state["error"] = str(exc)
            raise
        except Exception as exc:  # pynvml.NVMLError and OSError when the library is absent
            _state["error"] = f"NVML unavailable: {error_text(exc)}"
            raise NvmlUnavailable(_state["error"]) from None
        _state["module"] = nvml
        return nvml


def error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text


def as_text(value: Any) -> str:
    """NVML returns bytes from old bindings and str from new ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def reset_for_tests() -> None:
    with _lock:
        _state.clear()
