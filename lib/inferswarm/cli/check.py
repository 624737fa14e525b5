"""`inferswarm check CONFIG`: the preflight checks on their own (seed 003's client-side script).

Prints a table, writes `checks.json` (seed 003's shape plus a summary) and exits 1 when a check FAILs,
0 otherwise (WARN and SKIP do not fail), 2 for bad input. `add_check_parser` also gives `inferswarm run`
its `--no-preflight` flag: the preflight is these checks, run before any load.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferswarm.cli.common import error
from inferswarm.config import AGENTS_ENV, ConfigError, load_config, resolve_secret_headers, with_extra_agents
from inferswarm.config.schema import url_problem

EXIT_CHECK_FAILED = 1


def add_check_parser(sub: Any) -> None:
    """The `check` subcommand, and `--no-preflight` on `run` (when `run` is already there)."""
    check = sub.add_parser(
        "check",
        help="preflight checks of a config's target: reachable, healthy, correct and bad requests, GPU, "
        "clock; exit 1 when a check fails",
        epilog="See docs/checks.md. On the GPU machine, `inferswarm agent` answers GET /checks.",
    )
    check.add_argument("config", help="run config (YAML); its `checks:` section says what runs")
    check.add_argument("--host", help="override the target base URL")
    check.add_argument(
        "--out",
        metavar="DIR",
        help="directory for checks.json (default: <output.dir>/checks-<UTC time>)",
    )
    check.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="URL",
        help=f"an `inferswarm agent` to ask about GPUs and its clock (repeatable; also {AGENTS_ENV})",
    )
    check.set_defaults(func=cmd_check)
    run = sub.choices.get("run")
    if run is not None:
        run.add_argument(
            "--no-preflight",
            action="store_true",
            help="skip the preflight checks (checks.preflight) before the load",
        )


def default_out(base: Path, now: datetime | None = None) -> Path:
    """`base/checks-<UTC time>`, with a numeric suffix when two checks start in one second."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    path = base / f"checks-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = base / f"checks-{stamp}-{suffix}"
    return path


def cmd_check(args: argparse.Namespace) -> int:
    from inferswarm.checks.model import CHECKS_JSON
    from inferswarm.checks.runner import run_checks
    from inferswarm.rundir import write_json_atomic

    if args.host:
        problem = url_problem(args.host)
        if problem:
            return error(f"--host: {problem}")
    agents = ",".join(filter(None, [os.environ.get(AGENTS_ENV, ""), *args.agent]))
    try:
        config = with_extra_agents(load_config(args.config), agents)
        secrets = resolve_secret_headers(config)
    except ConfigError as exc:
        return error(exc.one_line())
    out = Path(args.out) if args.out else default_out(Path(config.output.dir))
    if out.exists() and not out.is_dir():
        return error(f"--out {out}: not a directory")
    report = run_checks(config, args.host, secrets)
    print(report.table(), end="", flush=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / CHECKS_JSON, report.to_dict())
    except OSError as exc:
        return error(f"--out {out}: cannot write {CHECKS_JSON}: {exc.strerror or exc}")
    print(f"inferswarm: {out / CHECKS_JSON}", flush=True)
    return 0 if report.ok else EXIT_CHECK_FAILED
