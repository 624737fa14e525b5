"""Which header names carry credentials: their values must come from the environment, never from YAML,
and are masked wherever a config is written out; `Scrubber` masks their values (and the forms a server
may echo them in) in text made from what a server said."""

from __future__ import annotations

import base64
from collections.abc import Iterable

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


MASK = "***"
MIN_FORM_CHARS = 4
"""A derived form shorter than this is not scrubbed (it would mask ordinary words); whole values are."""


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Every form in which a secret header value may come back in a server's text, longest first.

    For `Bearer <token>`: the value, the token alone, and the base64 of each (standard and URL-safe, with
    and without padding). For `Basic <base64>`: also the decoded `user:pass` and the password.
    """
    forms: set[str] = set()
    for value in values:
        value = value.strip()
        if not value:
            continue
        forms.add(value)
        parts = {value}
        _, space, rest = value.partition(" ")
        if space and rest.strip():
            parts.add(rest.strip())  # the credential without its scheme ("Bearer ", "Token ")
        for part in list(parts):
            decoded = _base64_text(part)
            if decoded:
                parts.add(decoded)
                _, colon, password = decoded.partition(":")
                if colon:
                    parts.add(password)
        for part in list(parts):
            raw = part.encode()
            for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
                parts.update((encoded, encoded.rstrip("=")))
        forms.update(p for p in parts if len(p) >= MIN_FORM_CHARS)
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def _base64_text(text: str) -> str | None:
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if decoded.isprintable() else None


class Scrubber:
    """Masks secret values in text that a server or an exception made (a failure message, an error body).

    Messages are often cut to a bounded length after the server's text was put in them, so a secret may
    survive only as its start at the very end: a tail of the text that begins a secret form is masked
    too, when it is at least `MIN_FORM_CHARS` long or, for `<scheme> <credential>`, reaches the credential
    ("Bearer s3" is masked, a message ending in "Bear" is not).
    """

    __slots__ = ("_tails", "forms")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.forms = secret_forms(values)
        self._tails = tuple((f, max(MIN_FORM_CHARS, f.rfind(" ") + 2)) for f in self.forms)

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, text: str) -> str:
        """Every secret form masked, and a tail that starts one (text cut to a bounded length)."""
        return self._tail(self.replace(text))

    def replace(self, text: str) -> str:
        """Every whole occurrence of a secret form masked."""
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def _tail(self, text: str) -> str:
        cut = len(text)
        for form, shortest in self._tails:
            start = max(len(text) - len(form) + 1, 0)
            while True:
                at = text.find(form[0], start, len(text) - shortest + 1)
                if at < 0:
                    break
                if at < cut and form.startswith(text[at:]):
                    cut = at
                    break
                start = at + 1
        return text if cut == len(text) else text[:cut] + MASK
