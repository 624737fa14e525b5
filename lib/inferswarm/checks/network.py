"""Network: TCP connect time to the target's host:port (N samples), and the TLS handshake with the
certificate's expiry for an https target. Seed 003's `network_connectivity` (there: ping latency)."""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from inferswarm.checks.context import CheckContext, Timer
from inferswarm.checks.model import Check, Status, details_json

CERT_WARN_DAYS = 14
"""A certificate that expires sooner than this is a WARN: a multi-day soak would outlive it."""


def connect_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no TCP connection within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"host name does not resolve: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


def tcp_samples(host: str, port: int, samples: int, timeout_s: float) -> list[float]:
    """Milliseconds to open (and close) a TCP connection, `samples` times; raises OSError on the first
    that fails (a dead target fails once, quickly, not N times)."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=timeout_s):
            times.append((time.perf_counter() - started) * 1000.0)
    return times


def check_connect(ctx: CheckContext) -> Check:
    host, port = ctx.host_port
    timer = Timer("network_connectivity", ctx.scrub)
    timeout = ctx.checks.timeout_s
    try:
        times = tcp_samples(host, port, ctx.checks.tcp_samples, timeout)
    except OSError as exc:
        ctx.unreachable = f"{host}:{port}: {connect_error(exc, timeout)}"
        return timer.check(Status.FAIL, f"TCP connect to {ctx.unreachable}")
    facts = {
        "host": host,
        "port": port,
        "samples": len(times),
        "min_ms": round(min(times), 3),
        "median_ms": round(statistics.median(times), 3),
        "max_ms": round(max(times), 3),
    }
    return timer.check(Status.PASS, details_json(facts))


def _not_after(cert: Mapping[str, object]) -> datetime | None:
    text = cert.get("notAfter")
    if not isinstance(text, str):
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text), UTC)


def check_tls(ctx: CheckContext, context: ssl.SSLContext | None = None) -> Check:
    name = "tls_handshake"
    if not ctx.https:
        return Check(name, Status.SKIP, "http:// target: no TLS to check")
    skipped = ctx.skip_unreachable(name)
    if skipped is not None:
        return skipped
    host, port = ctx.host_port
    timeout = ctx.checks.timeout_s
    context = context or ssl.create_default_context()
    timer = Timer(name, ctx.scrub)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            started = time.perf_counter()
            with context.wrap_socket(raw, server_hostname=host) as tls:
                handshake_ms = (time.perf_counter() - started) * 1000.0
                cert = tls.getpeercert() or {}
                version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return timer.check(Status.FAIL, f"certificate not accepted: {exc.verify_message or exc}")
    except (OSError, ssl.SSLError) as exc:
        return timer.check(Status.FAIL, f"TLS handshake with {host}:{port}: {connect_error(exc, timeout)}")
    expires = _not_after(cert)
    facts: dict[str, object] = {"version": version, "handshake_ms": round(handshake_ms, 3)}
    status = Status.PASS
    if expires is not None:
        days = (expires - datetime.now(UTC)).total_seconds() / 86400
        facts.update(not_after=expires.isoformat(timespec="seconds"), days_left=round(days, 1))
        if days < CERT_WARN_DAYS:
            status = Status.WARN
            facts["warning"] = f"the certificate expires in less than {CERT_WARN_DAYS} days"
    return timer.check(status, details_json(facts), handshake_ms)


def run_network(ctx: CheckContext) -> list[Check]:
    return [check_connect(ctx), check_tls(ctx)]
