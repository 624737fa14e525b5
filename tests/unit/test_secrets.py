from __future__ import annotations

import base64

import pytest

from inferswarm.rundir import scrub
from inferswarm.secrets import (
    MIN_FORM_CHARS,
    Scrubber,
    is_sensitive_header,
    refuse_literal_credentials,
    secret_forms,
)


@pytest.mark.parametrize("name", ["Authorization", "x-api-token", "X-API-Key", "Cookie", "X-Client-Secret"])
def test_credential_headers(name: str) -> None:
    assert is_sensitive_header(name)
    with pytest.raises(ValueError, match=f"header '{name}' looks like a credential"):
        refuse_literal_credentials({name: "v"})


@pytest.mark.parametrize(
    "name", ["Livepeer", "Livepeer-Orch-Search-Timeout", "Content-Type", "Prefer", "User-Agent"]
)
def test_ordinary_headers(name: str) -> None:
    assert not is_sensitive_header(name)
    assert refuse_literal_credentials({name: "v"}) == {name: "v"}


TOKEN = "s3cr3t-T0KEN-0123456789abcdef"


def b64(text: str, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def test_the_forms_of_a_bearer_token() -> None:
    forms = set(secret_forms([f"Bearer {TOKEN}", "", "  "]))
    assert {f"Bearer {TOKEN}", TOKEN, b64(TOKEN), b64(TOKEN).rstrip("="), b64(f"Bearer {TOKEN}")} <= forms
    assert all(len(f) >= MIN_FORM_CHARS for f in forms) and "" not in forms


def test_the_forms_of_basic_credentials() -> None:
    forms = set(secret_forms([f"Basic {b64('user:hunter22')}"]))
    assert {"user:hunter22", "hunter22", b64("hunter22"), b64("user:hunter22")} <= forms


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"HTTP 400: bad token Bearer {TOKEN} here", "HTTP 400: bad token *** here"),
        (f"token {TOKEN}", "token ***"),
        (f"b64 {b64(TOKEN)} / {b64(TOKEN, urlsafe=True).rstrip('=')}", "b64 *** / ***"),
        (f"header {b64('Bearer ' + TOKEN)}", "header ***"),
        # cut at a message bound: the start of a form at the very end is masked too
        (f"HTTP 401: expected {TOKEN[:9]}", "HTTP 401: expected ***"),
        ("HTTP 401: send Bearer s3", "HTTP 401: send ***"),
        # ordinary text stays
        ("HTTP 401: missing Bearer", "HTTP 401: missing Bearer"),
        ("HTTP 401: no s3c", "HTTP 401: no s3c"),
        ("", ""),
    ],
)
def test_scrubber(text: str, scrubbed: str) -> None:
    assert Scrubber([f"Bearer {TOKEN}"])(text) == scrubbed


def test_a_scrubber_without_secrets_changes_nothing() -> None:
    scrubber = Scrubber([])
    assert not scrubber and scrubber(f"Bearer {TOKEN}") == f"Bearer {TOKEN}"


def test_run_json_scrub_masks_every_form_but_no_tails() -> None:
    data = {"argv": [f"--token={TOKEN}", b64(TOKEN)], "note": f"ends with {TOKEN[:8]}"}
    assert scrub(data, [f"Bearer {TOKEN}"]) == {
        "argv": ["--token=***", "***"],
        "note": f"ends with {TOKEN[:8]}",  # whole values only: run.json holds no cut messages
    }
