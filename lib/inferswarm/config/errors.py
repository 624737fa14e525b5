"""Config errors as one line: `file: field.path: problem`, shared by every config model.

`one_line()` turns a pydantic ValidationError into the most useful single problem: unknown keys first
(with a "did you mean" from the valid keys at that place), field paths without pydantic's union tags,
and a missing field that a misspelt key explains is not reported twice.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from inferswarm.strict import no_such_name


class ConfigError(Exception):
    """A config problem, reported as `file: field.path: problem`."""

    def __init__(self, file: str | Path | None, field: str, problem: str) -> None:
        self.file = str(file) if file is not None else "<config>"
        self.field = field
        self.problem = problem
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.file}: {self.field}: " if self.field else f"{self.file}: "
        return " ".join((where + self.problem).splitlines())


def _fields_of(annotation: Any, raw: Any) -> dict[str, Any] | None:
    """Model fields for an annotation (resolving unions by the raw input's tag), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict(annotation.model_fields)
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            fields = arg.model_fields
            for tag in ("kind", "shape"):
                if tag in fields and isinstance(raw, dict):
                    allowed = get_args(fields[tag].annotation)
                    if raw.get(tag) in allowed:
                        return dict(fields)
        elif get_origin(arg) is not None or get_args(arg):
            found = _fields_of(arg, raw)
            if found is not None:
                return found
    return None


def _walk(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> tuple[str, list[str] | None]:
    """Render a pydantic location as `a.b[0].c` without union tags; also return the valid keys there."""
    parts: list[str] = []
    annotation: Any = model
    raw = data
    valid: list[str] | None = None
    tagged: Any = None  # the raw mapping whose union tag was already skipped
    for element in loc:
        if isinstance(element, int):
            parts.append(f"[{element}]")
            raw = raw[element] if isinstance(raw, list) and element < len(raw) else None
            args = get_args(annotation)
            annotation = args[0] if args else Any
            continue
        fields = _fields_of(annotation, raw)
        is_union = fields is not None and not (
            isinstance(annotation, type) and issubclass(annotation, BaseModel)
        )
        if (
            is_union
            and isinstance(raw, dict)
            and raw is not tagged
            and element in (raw.get("kind"), raw.get("shape"))
        ):
            tagged = raw
            continue  # a discriminated union's tag (even one named like a field of its model)
        if fields is None or element not in fields:
            if (
                isinstance(raw, dict)
                and element not in raw
                and element in (raw.get("kind"), raw.get("shape"))
            ):
                continue  # a discriminated union's tag, not a real key
            valid = sorted(fields) if fields is not None else None
            parts.append(("." if parts else "") + str(element))
            raw = raw.get(element) if isinstance(raw, dict) else None
            annotation = Any
            continue
        parts.append(("." if parts else "") + str(element))
        raw = raw.get(element) if isinstance(raw, dict) else None
        annotation = fields[element].annotation
    return "".join(parts), valid


def _describe(model: type[BaseModel], error: Any, data: Any, tags: dict[str, list[str]]) -> tuple[str, str]:
    path, valid = _walk(model, tuple(error["loc"]), data)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = path.rsplit(".", 1)[-1]
        hint = ""
        if valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
        return path, f"unknown key {key!r}{hint}"
    if kind == "missing":
        return path, "required field is missing"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("discriminator", "").strip("'")
        expected = error.get("ctx", {}).get("expected_tags", "")
        got = error.get("ctx", {}).get("tag", "")
        return f"{path}.{tag}" if path else tag, f"unknown {tag} {got!r}; valid: {expected}"
    if kind == "union_tag_not_found":
        tag = error.get("ctx", {}).get("discriminator", "").strip("'")
        valid_tags = ", ".join(tags.get(tag, []))
        return f"{path}.{tag}" if path else tag, f"required field is missing (one of: {valid_tags})"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    return path, message


def _prioritised(described: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Unknown keys first; a "missing" error explained by a misspelt key's suggestion is dropped."""
    suggested = set()
    for field, problem in described:
        match = re.search(r"did you mean '([^']+)'", problem)
        if match:
            parent = field.rsplit(".", 1)[0] if "." in field else ""
            suggested.add(f"{parent}.{match.group(1)}" if parent else match.group(1))
    kept = [d for d in described if not (d[1] == "required field is missing" and d[0] in suggested)]
    return sorted(kept, key=lambda d: not d[1].startswith("unknown key"))


def validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    source: str | Path | None,
    tags: dict[str, list[str]] | None = None,
) -> ConfigError:
    """The one-line ConfigError for a failed `model.model_validate(data)`.

    `tags`: the valid values of each discriminator (e.g. `kind`, `shape`), named when one is missing.
    """
    described = _prioritised([_describe(model, e, data, tags or {}) for e in exc.errors()])
    field, problem = described[0]
    extra = len(described) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return ConfigError(source, field, problem + more)


def looks_like_other_kind(data: Any, own: type[BaseModel], other: type[BaseModel]) -> bool:
    """Whether a mapping's top-level keys belong to the `other` kind of file and none to `own` only."""
    if not isinstance(data, dict):
        return False
    keys = {k for k in data if isinstance(k, str)}
    own_keys, other_keys = set(own.model_fields), set(other.model_fields)
    return bool(keys & (other_keys - own_keys)) and not keys & (own_keys - other_keys)


def unknown_name(
    source: str | Path | None, field: str, what: str, name: str, known: list[str]
) -> ConfigError:
    """A reference to a capability (or other named thing) that does not exist, with a suggestion."""
    return ConfigError(source, field, no_such_name(what, name, known))
