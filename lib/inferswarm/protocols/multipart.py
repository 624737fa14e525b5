"""`kind: multipart`: form fields from `params` and files from `test-assets/`, encoded once.

Field values follow the Livepeer gateway's convention: booleans as "true"/"false", lists and mappings as
JSON strings, everything else as str().
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from inferswarm.protocols.base import CapabilityBase, PreparedRequest, Protocol, register_protocol


class MultipartCapability(CapabilityBase):
    kind: Literal["multipart"]
    params: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    """Form field name -> asset path, relative to the config's `assets_dir`."""

    @model_validator(mode="after")
    def _has_parts(self) -> MultipartCapability:
        if not self.params and not self.files:
            raise ValueError("a multipart capability needs at least one of params or files")
        clash = set(self.params) & set(self.files)
        if clash:
            raise ValueError(f"field {sorted(clash)[0]!r} is both a param and a file")
        return self

    def resolve_paths(self, assets_dir: Path) -> list[tuple[str, Path]]:
        return [(f"files.{name}", (assets_dir / rel).resolve()) for name, rel in self.files.items()]


def form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def encode_multipart(fields: dict[str, str], files: dict[str, Path], boundary: str) -> bytes:
    """RFC 7578 body. Fields first, then files, each in the order given."""
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, path in files.items():
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{path.name}"\r\nContent-Type: {mime}\r\n\r\n'
        ).encode()
        out += path.read_bytes() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


@register_protocol
class MultipartProtocol(Protocol[MultipartCapability]):
    model = MultipartCapability

    def prepare(self, capability: MultipartCapability, assets_dir: Path) -> PreparedRequest:
        boundary = f"inferswarm-{uuid.uuid4().hex}"
        fields = {k: form_value(v) for k, v in capability.params.items()}
        files = {name: (assets_dir / rel).resolve() for name, rel in capability.files.items()}
        body = encode_multipart(fields, files, boundary)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"}
        headers.update(capability.headers)
        return PreparedRequest(capability.method, capability.path, headers, body)
