"""Run the configured checks in order: network, http, requests, error_handling, large_payload, gpu,
clock. Every exchange is bounded by `checks.timeout_s` (a correct request by its request timeout); a
target that cannot be reached makes the checks that need it SKIP with "target unreachable"."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping

from inferswarm.checks.clock import run_clock
from inferswarm.checks.config import CHECK_NAMES, CheckName
from inferswarm.checks.context import CheckContext
from inferswarm.checks.gpu import run_gpu
from inferswarm.checks.http import run_http
from inferswarm.checks.model import Check, CheckReport
from inferswarm.checks.network import run_network
from inferswarm.checks.requests import FAMILIES as REQUEST_FAMILIES
from inferswarm.checks.requests import run_requests
from inferswarm.config.schema import RunConfig
from inferswarm.secrets import Scrubber

RUNNERS: dict[str, Callable[[CheckContext], list[Check]]] = {
    "network": run_network,
    "http": run_http,
    "gpu": run_gpu,
    "clock": run_clock,
}


def agent_list(config: RunConfig) -> list[tuple[str, str]]:
    """(name, URL) of the config's agents: the name given, else the URL's host:port."""
    out = []
    for agent in config.telemetry.agents:
        url = agent.url.rstrip("/")
        out.append((agent.name or urllib.parse.urlsplit(url).netloc, url))
    return out


def run_checks(
    config: RunConfig,
    host_override: str | None = None,
    secrets: Mapping[str, str] | None = None,
    only: Iterable[CheckName] | None = None,
    test_type: str = "client_side",
) -> CheckReport:
    """The checks of `only` (default: `config.checks.enabled`) against `host_override` or the config's
    target, sending `secrets` (resolved secret headers) as the load test would; never raises for what
    the target does, and masks every secret value in what it reports."""
    secret_headers = dict(secrets or {})
    base_url = (host_override or config.target.base_url).rstrip("/")
    wanted = set(config.checks.enabled if only is None else only)
    scrub = Scrubber(secret_headers.values())
    ctx = CheckContext(config, base_url, secret_headers, scrub, agent_list(config))
    report = CheckReport(target=scrub(base_url), test_type=test_type)
    requests_done = False
    for family in CHECK_NAMES:
        if family not in wanted:
            continue
        if family in REQUEST_FAMILIES:
            if not requests_done:
                report.add(run_requests(ctx, [f for f in REQUEST_FAMILIES if f in wanted]))
                requests_done = True
            continue
        report.add(RUNNERS[family](ctx))
    return report
