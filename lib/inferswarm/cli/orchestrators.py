"""`inferswarm orchestrators CONFIG`: the Livepeer orchestrator matrix, once or on a cron schedule.

Exit codes: 0 every stat made (and posted, unless a dry run); 1 a stat could not be posted, or the
leaderboard refused the region; 2 bad input; 4 no measurement (the gateway did not answer discovery,
or nothing was left to test).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets as token_source
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from inferswarm.cli.common import EXIT_BAD_INPUT, error
from inferswarm.config import ConfigError
from inferswarm.lifeline import STOP_SIGNALS

WEBHOOK_FLAG = "--orch-webhook-url"


def add_orchestrators_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "orchestrators",
        help="test every orchestrator of a Livepeer gateway on its pipelines and models, post signed "
        "stats to the leaderboard (once, or --every CRON)",
        epilog="Secrets: the gateway token and the leaderboard's HMAC key come from the environment "
        "variables the config names (LIVEPEER_GATEWAY_TOKEN, LEADERBOARD_SECRET by default).",
    )
    parser.add_argument("config", help="orchestrators config (YAML, kind: orchestrators)")
    parser.add_argument("--out", help="base directory of the run directories (default: config output_dir)")
    parser.add_argument("--dry-run", action="store_true", help="make and write the stats, post nothing")
    parser.add_argument("--every", metavar="CRON", help='run on a cron schedule, e.g. "0 * * * *"')
    parser.add_argument(
        "--runs", type=int, metavar="N", help="with --every: stop after N runs (default: until stopped)"
    )
    parser.add_argument(
        "--serve-target",
        nargs="?",
        const="",
        default=None,
        metavar="SETTINGS",
        help="start the reference target's gateway and leaderboard emulation on loopback and test it",
    )
    parser.add_argument(
        "--webhook-host",
        metavar="ADDRESS",
        help="bind the webhook here instead of the config's webhook.host (0.0.0.0 in a container)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the matrix report")
    parser.set_defaults(func=cmd_orchestrators)


class StopSignals:
    """The first stop signal sets `stop` (the job in flight finishes, its stat is posted); later ones
    only say that it is still finishing."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: list[str] = []

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) == 1:
            print(f"inferswarm: {name}: stopping after the job in flight", file=sys.stderr, flush=True)
        else:
            print("inferswarm: still finishing the job in flight", file=sys.stderr, flush=True)
        self.stop.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[threading.Event]:
        previous = {sig: signal.signal(sig, self) for sig in STOP_SIGNALS}
        try:
            yield self.stop
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def cmd_orchestrators(args: argparse.Namespace) -> int:
    from inferswarm.orchestrators.config import load_orchestrators_config
    from inferswarm.orchestrators.schedule import cron_problem

    try:
        config = load_orchestrators_config(args.config)
    except ConfigError as exc:
        return error(exc.one_line())
    if args.every is not None:
        problem = cron_problem(args.every)
        if problem:
            return error(f"--every: {problem}")
    if args.runs is not None and (args.runs < 1 or args.every is None):
        return error("--runs: a number of runs of at least 1, with --every")
    if args.dry_run:
        config = config.model_copy(
            update={"leaderboard": config.leaderboard.model_copy(update={"dry_run": True})}
        )
        config._source = Path(args.config).resolve()
    signals = StopSignals()
    with signals.installed() as stop:
        try:
            return _run(config, args, stop)
        except _BadInput as exc:
            return error(str(exc))


class _BadInput(Exception):
    pass


def _run(config: Any, args: argparse.Namespace, stop: threading.Event) -> int:
    from inferswarm.orchestrators.tester import resolve_secrets
    from inferswarm.orchestrators.webhook import Webhook

    out = Path(args.out or config.output_dir)
    environ = None
    target_cm: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    webhook: Webhook | None = None
    if config.webhook.enabled:
        host, port = args.webhook_host or config.webhook.host, config.webhook.port
        if args.serve_target is not None:
            host, port = "127.0.0.1", 0  # beside a target of our own: any free loopback port
        try:
            webhook = Webhook(host, port, []).start()
        except OSError as exc:
            raise _BadInput(f"webhook: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        if args.serve_target is not None:
            config, environ, target_cm = _with_served_target(config, args.serve_target, webhook)
        try:
            secrets = resolve_secrets(config, environ)
        except ValueError as exc:
            raise _BadInput(f"{args.config}: {exc}") from None
        with target_cm:
            if webhook is not None:
                print(f"inferswarm: webhook for the gateway: {webhook.url}", file=sys.stderr, flush=True)
            return _runs(config, secrets, out, stop, webhook, args, environ)
    finally:
        if webhook is not None:
            webhook.stop()


def _with_served_target(config: Any, settings: str, webhook: Any) -> tuple[Any, dict[str, str], Any]:
    """The config pointed at a reference target of our own, its environment, and the target."""
    import os

    from inferswarm.emulator.launcher import ReferenceTarget
    from inferswarm.emulator.settings import load_target_settings

    settings_file = Path(settings) if settings else None
    try:
        target_settings = load_target_settings(settings_file)
    except ConfigError as exc:
        raise _BadInput(exc.one_line()) from None
    if target_settings.gateway is None:
        raise _BadInput(f"--serve-target {settings or '(defaults)'}: the settings have no `gateway:` section")
    environ = dict(os.environ)
    secret_env = config.leaderboard.secret_env
    # Against an emulated leaderboard the key is optional: one is made up for this run and shared.
    secret = environ.get(secret_env) or token_source.token_hex(16)
    environ[secret_env] = secret
    target_env = {secret_env: secret}
    if target_settings.leaderboard is not None:
        target_env[target_settings.leaderboard.secret_env] = secret
    extra = [WEBHOOK_FLAG, webhook.url] if webhook is not None else []
    target = ReferenceTarget(settings_file, extra_args=extra, env=target_env)
    gateway = config.gateway.model_copy(update={"url": target.url, "cli_url": None, "orchestrator_urls": {}})
    leaderboard = config.leaderboard.model_copy(update={"url": f"{target.url}/api"})
    served = config.model_copy(update={"gateway": gateway, "leaderboard": leaderboard})
    served._source = config.source
    return served, environ, target


def _runs(
    config: Any,
    secrets: Any,
    out: Path,
    stop: threading.Event,
    webhook: Any,
    args: Any,
    environ: dict[str, str] | None,
) -> int:
    from inferswarm.orchestrators.schedule import run_every
    from inferswarm.orchestrators.tester import MatrixRun

    def log(line: str) -> None:
        print(f"inferswarm: {line}", file=sys.stderr, flush=True)

    def once(schedule: dict[str, Any] | None = None) -> int:
        run = MatrixRun(config, secrets, out, stop, webhook, log, environ)
        if schedule is not None:
            run.record["schedule"] = schedule
        log(f"run directory: {run.run_dir}")
        code = run.run()
        if not args.no_report:
            _report(run.run_dir, log)
        log(f"run {run.record['status']}: {_summary(run.record['summary'])} (exit {code})")
        return code

    if args.every is None:
        return once()
    return run_every(args.every, once, stop, log, args.runs)


def _report(run_dir: Path, log: Any) -> None:
    from inferswarm.report.orchestrators import write_matrix_report
    from inferswarm.rundir import ORCH_STATS_CSV

    if not (run_dir / ORCH_STATS_CSV).is_file():
        return  # nothing was tested: run.json says why
    try:
        report = write_matrix_report(run_dir)
    except Exception as exc:  # the run's data is on disk whatever the report does
        log(f"report: not written: {exc}")
        return
    log(f"report: {report.html}")


def _summary(summary: dict[str, Any]) -> str:
    posted = (
        "dry run, nothing posted"
        if summary["dry_run"]
        else (f"{summary['stats_posted']} stats posted, {summary['stats_failed']} not")
    )
    return (
        f"{summary['orchestrators']} orchestrators, {summary['cells']} cells, "
        f"{summary['successes']}/{summary['jobs']} jobs ok, {posted}"
    )


__all__ = ["EXIT_BAD_INPUT", "add_orchestrators_parser", "cmd_orchestrators"]
