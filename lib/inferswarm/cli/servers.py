"""`inferswarm serve` (the reference target) and `inferswarm agent` (telemetry of the target machine)."""

from __future__ import annotations

import argparse
import contextlib

from pydantic import ValidationError

from inferswarm.cli.common import error
from inferswarm.config import INTERVAL_MAX_S, INTERVAL_MIN_S, ConfigError


def cmd_serve(args: argparse.Namespace) -> int:
    from inferswarm.emulator.settings import load_target_settings

    try:
        settings = load_target_settings(args.config)
    except ConfigError as exc:
        return error(exc.one_line())
    if args.orch_webhook_url is not None:
        if settings.gateway is None:
            return error("--orch-webhook-url: the target settings have no gateway section to route with")
        try:
            gateway = settings.gateway.model_validate(
                settings.gateway.model_dump() | {"webhook_url": args.orch_webhook_url}
            )
        except ValidationError:
            return error(f"--orch-webhook-url {args.orch_webhook_url[:200]!r}: must be an http(s) URL")
        settings = settings.model_copy(update={"gateway": gateway})
    import uvicorn

    from inferswarm.emulator.app import create_app
    from inferswarm.emulator.serving import server_config

    # Bounded headers, idle keep-alive closed, and a read timeout for half-sent requests (serving.py).
    server = uvicorn.Server(server_config(create_app(settings), args.host, args.port, args.log_level))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn handles SIGINT itself; a second one ends here
        server.run()
    return 0 if server.started else error(f"could not serve on {args.host}:{args.port}")


def cmd_agent(args: argparse.Namespace) -> int:
    if not INTERVAL_MIN_S <= args.interval <= INTERVAL_MAX_S:
        return error(
            f"--interval {args.interval:g}: must be between {INTERVAL_MIN_S:g} and {INTERVAL_MAX_S:g} s"
        )
    from inferswarm.telemetry.agent import serve

    serve(args.host, args.port, args.interval, args.name, args.log_level)
    return 0
