"""docker-compose.yml and the Dockerfile as data: compose's variable interpolation and the image layout."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from tests.conftest import REPO

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`, through lists and maps."""
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if name in variables and (variables[name] or op != ":-"):
            return variables[name]
        return default if op else ""

    return VARIABLE.sub(one, value)


def dockerfile() -> tuple[list[str], str, list[str]]:
    """ENTRYPOINT, WORKDIR and the folders COPY puts into the image."""
    text = (REPO / "Dockerfile").read_text()
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)
    workdir = re.search(r"^WORKDIR\s+(\S+)", text, re.M)
    assert entry and workdir, "the Dockerfile needs an exec-form ENTRYPOINT and a WORKDIR"
    copies = re.findall(r"^COPY\s+(\S+)\s+\./(\S+)\s*$", text, re.M)
    return json.loads(entry.group(1)), workdir.group(1), [dst for src, dst in copies if src == dst]


def services(variables: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The services of docker-compose.yml (merge keys resolved), variables interpolated."""
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    result: dict[str, dict[str, Any]] = interpolate(data["services"], variables or {})
    return result
