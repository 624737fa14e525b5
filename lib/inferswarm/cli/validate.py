"""`inferswarm validate`: check a run config and print what the run would do.

It checks everything `inferswarm run` checks before it starts: the file, the agents, capabilities and
load given in the environment (INFERSWARM_AGENTS, INFERSWARM_CAPABILITIES, INFERSWARM_LOAD), and that
every required secret header's environment variable is set.
"""

from __future__ import annotations

import argparse
import os

from inferswarm.cli.common import error
from inferswarm.config import (
    AGENTS_ENV,
    CAPABILITIES_ENV,
    LOAD_ENV,
    ConfigError,
    load_config,
    resolve_secret_headers,
    with_capability_override,
    with_extra_agents,
    with_load_override,
)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = with_extra_agents(load_config(args.config), os.environ.get(AGENTS_ENV))
        config = with_capability_override(config, os.environ.get(CAPABILITIES_ENV))
        config = with_load_override(config, os.environ.get(LOAD_ENV))
        resolve_secret_headers(config)
    except ConfigError as exc:
        return error(exc.one_line())
    names = ", ".join(f"{c.name} ({c.kind})" for c in config.capabilities)
    print(f"{args.config}: ok: {len(config.capabilities)} capabilities: {names}")
    print(f"  {config.load.describe(config.load_context())}")
    tc = config.telemetry
    if tc.enabled:
        sources = [*(a.url for a in tc.agents), *(p.url for p in tc.prometheus)]
        sources += [f"gpu-check via {tc.gpu_check}"] if tc.gpu_check else []
        print(
            f"  telemetry: every {tc.interval_s:g} s on every node; sources: {', '.join(sources) or 'none'}"
        )
    else:
        print("  telemetry: off")
    return 0
