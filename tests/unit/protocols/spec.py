"""The real Livepeer gateway OpenAPI spec from ../shared/contracts (tests skip when it is not there).

JSON requests are validated by openapi-core. Multipart requests are parsed the way the gateway's Go
decoder parses them (every form value is a string, cast to the field's schema type; file parts must carry
a filename) and the result is validated against the operation's schema with jsonschema: openapi-core
itself would reject the gateway's own wire convention ("true" for a boolean, bytes for `format: binary`).
"""

from __future__ import annotations

import email.parser
import email.policy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

SPEC_PATH = Path(__file__).resolve().parents[4] / "shared" / "contracts" / "livepeer-gateway.openapi.yaml"
SERVER = "https://dream-gateway.livepeer.cloud"


def require_spec() -> None:
    if not SPEC_PATH.is_file():
        pytest.skip(f"the gateway spec is not here ({SPEC_PATH}); it lives in the shared contracts checkout")
    pytest.importorskip("openapi_core", reason="openapi-core is a dev dependency: pip install -e '.[dev]'")


@cache
def _openapi() -> Any:
    from openapi_core import OpenAPI

    return OpenAPI.from_file_path(str(SPEC_PATH))


@cache
def raw_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def _schema(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    node: Any = raw_spec()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _cast(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        pass
    return value  # left as a string, so a wrong type fails validation below


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart(), "the body is not multipart"
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode()
    return fields, files


def validate_request(path: str, headers: dict[str, str], body: bytes) -> None:
    """Raise when the request breaks the spec (path, method, content type, required fields, types)."""
    require_spec()
    operation = raw_spec()["paths"][path]["post"]  # KeyError: no such path/method in the spec
    content_type = headers.get("Content-Type", "")
    declared = operation["requestBody"]["content"]
    media = content_type.split(";")[0].strip()
    assert media in declared, f"{path} takes {list(declared)}, not {media}"
    if media == "application/json":
        from openapi_core.testing import MockRequest

        request = MockRequest(SERVER, "post", path, headers=headers, data=body, content_type=content_type)
        _openapi().validate_request(request)
        return
    import jsonschema

    schema = _schema(declared[media]["schema"])
    fields, files = parse_multipart(content_type, body)
    instance: dict[str, Any] = {}
    for name, value in fields.items():
        instance[name] = _cast(value, schema["properties"].get(name, {}))
    for name, data in files.items():
        prop = schema["properties"].get(name, {})
        assert prop.get("format") == "binary", f"file part {name!r} is not a binary field of {path}"
        assert data, f"file part {name!r} is empty"
        instance[name] = "<file>"
    for name in instance:
        assert name in schema["properties"], f"{name!r} is not a field of {path}"
    jsonschema.Draft202012Validator(schema).validate(instance)


def validate_response(path: str, status: int, body: bytes, content_type: str = "application/json") -> None:
    require_spec()
    from openapi_core.testing import MockRequest, MockResponse

    request = MockRequest(SERVER, "post", path, content_type="application/json")
    response = MockResponse(body, status_code=status, content_type=content_type)
    _openapi().validate_response(request, response)


ROOT_CONFIGS = Path(__file__).resolve().parents[3] / "configs"
