"""Which header names carry credentials: their values must come from the environment, never from YAML,
and are masked wherever a config is written out."""

from __future__ import annotations

SENSITIVE_HEADER_WORDS = ("authorization", "token", "api-key", "apikey", "secret", "cookie", "password")


def is_sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_HEADER_WORDS)


def refuse_literal_credentials(headers: dict[str, str]) -> dict[str, str]:
    """Pydantic validator body: credential-looking headers belong in `target.secret_headers`."""
    for name in headers:
        if is_sensitive_header(name):
            raise ValueError(f"header {name!r} looks like a credential; use secret_headers with an env var")
    return headers
