"""The embedded webhook as the gateway sees it: GET /orchestrators names the pinned orchestrator."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from inferswarm.orchestrators.webhook import Webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook("127.0.0.1", 0, ["https://a:8935", "https://b:8935"]).start()
    yield hook
    hook.stop()


def fetch(url: str, method: str = "GET") -> tuple[int, object]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_answers_every_orchestrator_until_one_is_pinned(webhook: Webhook) -> None:
    assert webhook.url == f"http://127.0.0.1:{webhook.port}/orchestrators"
    assert fetch(webhook.url) == (200, [{"address": "https://a:8935"}, {"address": "https://b:8935"}])
    webhook.pin("https://b:8935")
    assert fetch(webhook.url) == (200, [{"address": "https://b:8935"}])
    webhook.pin(None)
    assert len(fetch(webhook.url)[1]) == 2  # type: ignore[arg-type]
    assert webhook.fetches == 3


def test_other_methods_get_405_and_other_paths_404(webhook: Webhook) -> None:
    assert fetch(webhook.url, "POST")[0] == 405
    assert fetch(webhook.url, "DELETE")[0] == 405
    assert fetch(webhook.url.replace("/orchestrators", "/other"))[0] == 404
    assert webhook.fetches == 0


def test_waiting_for_the_gateway_to_fetch_the_new_pin(webhook: Webhook) -> None:
    fetch(webhook.url)
    webhook.pin("https://a:8935")
    assert webhook.wait_for_fetch(0.2) is False  # a fetch before the pin does not count
    threading.Timer(0.2, fetch, args=(webhook.url,)).start()
    started = time.monotonic()
    assert webhook.wait_for_fetch(5.0) is True
    assert time.monotonic() - started < 4.0
    stop = threading.Event()
    stop.set()
    webhook.pin("https://b:8935")
    assert webhook.wait_for_fetch(5.0, stop) is False  # a stop ends the wait
