"""The argument parser and `main`: each subcommand's function lives in a module of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from inferswarm.cli.check import add_check_parser
from inferswarm.cli.compare import cmd_compare
from inferswarm.cli.orchestrators import add_orchestrators_parser
from inferswarm.cli.report import cmd_report
from inferswarm.cli.run import DETECTOR_MODES, SEED_OPTIONS, cmd_demo, cmd_run
from inferswarm.cli.servers import cmd_agent, cmd_serve
from inferswarm.cli.trend import add_trend_parser
from inferswarm.cli.validate import cmd_validate
from inferswarm.config import AGENTS_ENV

DESCRIPTION = "inferswarm: Locust-based distributed load tests for AI inference endpoints"


class _ExpectWorkers(argparse.Action):
    """Remembers that --expect-workers was given (its default of 1 is not a request for a master)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.expect_workers_given = True


def add_distributed_arguments(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "distributed (Locust master/worker)",
        "One master owns the run directory and the report; workers only generate load. Every worker "
        "must run the master's config and inferswarm version: a different one is refused (exit 2).",
    )
    role = group.add_mutually_exclusive_group()
    role.add_argument("--master", action="store_true", help="run the master: workers connect to it")
    role.add_argument("--worker", action="store_true", help="run a worker of --master-host")
    group.add_argument(
        "--expect-workers",
        type=int,
        default=1,
        action=_ExpectWorkers,
        metavar="N",
        help="headless master: start once N workers are connected (default 1)",
    )
    group.add_argument(
        "--worker-wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="headless master: give up (exit 1) when the workers are not all there after this long (300)",
    )
    group.add_argument("--master-host", help="worker: the master's host name or address")
    group.add_argument("--master-port", type=int, default=5557, help="the master's port for workers (5557)")
    group.add_argument(
        "--master-bind-host",
        default="*",
        metavar="ADDRESS",
        help="master: the interface workers connect to (default: all)",
    )
    group.add_argument(
        "--master-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="worker: exit (code 1) after this long without a heartbeat from the master (15)",
    )
    group.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="fork N worker processes on this machine (-1: one per core); alone: with a local master",
    )
    group.add_argument(
        "--web-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="with --web: the address the web UI binds (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    group.set_defaults(expect_workers_given=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferswarm", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run a load test described by a config file",
        epilog="Arguments after -- go to Locust unchanged, e.g. -- --loglevel DEBUG",
    )
    run.add_argument("config", help="run config (YAML)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", default=True, help="no web UI (default)")
    mode.add_argument(
        "--web", action="store_true", help="Locust web UI on 127.0.0.1:8089; press Start, Ctrl+C to end"
    )
    run.add_argument("--out", help="base directory for the run directory (default: config output.dir)")
    run.add_argument("--host", help="override the target base URL")
    run.add_argument(
        "--serve-target",
        nargs="?",
        const="",
        default=None,
        metavar="SETTINGS",
        help="start the reference target on a free loopback port for this run (optional settings YAML)",
    )
    run.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="URL",
        help=f"poll an `inferswarm agent` for target telemetry (repeatable; also {AGENTS_ENV}=URL,URL)",
    )
    run.add_argument("--no-report", action="store_true", help="skip `inferswarm report` at the end")
    cycle = run.add_argument_group("cycle mode", "send x requests spread over y capabilities every z seconds")
    cycle.add_argument("-x", "--packets", type=int, help="requests per cycle")
    cycle.add_argument(
        "-y", "--capabilities", nargs="+", metavar="NAME", help="capabilities to spread them over"
    )
    cycle.add_argument("-z", "--interval", type=float, metavar="SECONDS", help="seconds between cycle starts")
    cycle.add_argument("--cycles", type=int, help="how many cycles (default 10, or the config's)")
    seed = run.add_argument_group(
        "edge endpoint tests (seed 001's option names)",
        "override the ramp, fps or readiness load of the config; see docs/edge.md",
    )
    for option in SEED_OPTIONS:
        metavar = "N" if option.number is int else ("RPS" if option.field == "per_user_rps" else "SECONDS")
        seed.add_argument(option.flag, dest=option.dest, metavar=metavar, help=option.help)
    seed.add_argument(
        "--detector-mode",
        choices=DETECTOR_MODES,
        help="seed 001's DETECTOR_MODE: run only the groundlight capabilities of this mode",
    )
    seed.add_argument(
        "--image-width", metavar="PIXELS", help="image_size.width of every groundlight capability"
    )
    seed.add_argument(
        "--image-height", metavar="PIXELS", help="image_size.height of every groundlight capability"
    )
    add_distributed_arguments(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="analyse a run directory: report.html, PNGs, results.json, summary.md; exit 3 on a failed SLO, "
        "4 when there is no valid measurement (target unreachable)",
    )
    report.add_argument("run_dir")
    report.add_argument("--no-png", action="store_true", help="skip the PNG export (needs Chromium)")
    report.set_defaults(func=cmd_report)

    comp = sub.add_parser(
        "compare", help="compare run B with run A; exit 3 when B regressed beyond tolerance"
    )
    comp.add_argument("run_a", help="the baseline run directory")
    comp.add_argument("run_b", help="the run to judge")
    comp.add_argument("--out", help="where compare.html/.md/.json go (default: RUN_B)")
    comp.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="allowed change in the bad direction, e.g. p95_ms=0.05 (relative; failure_ratio absolute)",
    )
    comp.set_defaults(func=cmd_compare)

    demo = sub.add_parser("demo", help="run configs/demo.yaml against a freshly started reference target")
    demo.add_argument("--web", action="store_true", help="watch it in the Locust web UI")
    demo.add_argument("--out", help="base directory for the run directory (default: results)")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="start the reference GPU-service target")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", help="target settings (YAML): slots, queue, service times")
    serve.add_argument(
        "--orch-webhook-url",
        metavar="URL",
        help="the emulated gateway's orchestrator webhook (like go-livepeer's -orchWebhookUrl); "
        "sets gateway.webhook_url, so the settings need a gateway section",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=cmd_serve)

    agent = sub.add_parser(
        "agent",
        help="serve this machine's GPU and host telemetry (/telemetry JSON, /metrics Prometheus)",
        epilog="Run it on the GPU server; add it to the run config under telemetry.agents.",
    )
    agent.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to reach it from a master)")
    agent.add_argument("--port", type=int, default=9109)
    agent.add_argument("--interval", type=float, default=1.0, help="seconds between samples (0.1 to 10)")
    agent.add_argument("--name", help="node name in the telemetry (default agent@<hostname>)")
    agent.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    agent.set_defaults(func=cmd_agent)

    add_orchestrators_parser(sub)
    add_trend_parser(sub)
    add_check_parser(sub)

    validate = sub.add_parser("validate", help="check a run config and print what it would do")
    validate.add_argument("config")
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is passed to Locust untouched (argparse would try to read it).
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra and args.command != "run":
        parser.error("arguments after -- are only for `inferswarm run`")
    args.locust_args = extra
    result: int = args.func(args)
    return result
