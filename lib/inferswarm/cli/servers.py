"""`inferswarm serve` (the reference target) and `inferswarm agent` (telemetry of the target machine)."""

from __future__ import annotations

import argparse

from inferswarm.cli.common import error
from inferswarm.config import INTERVAL_MAX_S, INTERVAL_MIN_S, ConfigError


def cmd_serve(args: argparse.Namespace) -> int:
    from inferswarm.emulator.settings import load_target_settings

    try:
        settings = load_target_settings(args.config)
    except ConfigError as exc:
        return error(exc.one_line())
    import uvicorn

    from inferswarm.emulator.app import create_app

    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    if not INTERVAL_MIN_S <= args.interval <= INTERVAL_MAX_S:
        return error(
            f"--interval {args.interval:g}: must be between {INTERVAL_MIN_S:g} and {INTERVAL_MAX_S:g} s"
        )
    from inferswarm.telemetry.agent import serve

    serve(args.host, args.port, args.interval, args.name, args.log_level)
    return 0
