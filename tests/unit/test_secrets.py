from __future__ import annotations

import pytest

from inferswarm.secrets import is_sensitive_header, refuse_literal_credentials


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
