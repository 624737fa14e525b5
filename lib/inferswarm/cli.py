"""`inferswarm` command line: run, demo, report, compare, serve, agent, validate.

Exit codes: 0 success, 2 bad input (config, arguments), 3 an SLO gate failed (or compare found a
regression), otherwise Locust's own exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from inferswarm.config import (
    AGENTS_ENV,
    INTERVAL_MAX_S,
    INTERVAL_MIN_S,
    LOAD_ENV,
    ConfigError,
    load_config,
    resolve_secret_headers,
    with_extra_agents,
    with_load_override,
)
from inferswarm.rundir import (
    CSV_PREFIX_NAME,
    RunRecord,
    end_fields,
    make_run_dir,
    read_run_json,
    write_json_atomic,
)

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _error(message: str) -> int:
    print(f"inferswarm: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


class ReferenceTarget:
    """The reference target as a child process on a free loopback port, for demos and tests."""

    def __init__(self, settings_file: Path | None, port: int | None = None) -> None:
        self.settings_file = settings_file
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReferenceTarget:
        cmd = [
            sys.executable,
            "-m",
            "inferswarm.cli",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if self.settings_file is not None:
            cmd += ["--config", str(self.settings_file)]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        if not wait_for_http(f"{self.url}/health", 30, self.proc):
            self.stop()
            raise RuntimeError(f"reference target did not become healthy on {self.url}")
        return self

    def stats(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
                data = json.load(response)
                return data if isinstance(data, dict) else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *_: object) -> None:
        self.stop()


def locust_command(
    config_file: Path,
    run_dir: Path | None,
    headless: bool,
    host: str | None,
    extra: Sequence[str],
    web_host: str = "127.0.0.1",
) -> list[str]:
    """Locust's command line for a local or master process (`run_dir` set) or a worker (`run_dir` None)."""
    from inferswarm.entry import LOCUSTFILE

    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--inferswarm-config", str(config_file)]
    if run_dir is not None:
        cmd += [
            "--csv",
            str(run_dir / CSV_PREFIX_NAME),
            "--csv-full-history",
            "--html",
            str(run_dir / "locust_report.html"),
            # Failed requests are data in a load test, not a failed run: gates decide the exit code.
            "--exit-code-on-error",
            "0",
        ]
        # The web UI binds loopback unless told otherwise; the run starts when you press Start.
        cmd += ["--headless"] if headless else ["--web-host", web_host]
    if host:
        cmd += ["--host", host]
    return cmd + list(extra)


def distributed_args(args: argparse.Namespace) -> list[str]:
    """The Locust flags for `--master`, `--worker` or `--processes` (already checked)."""
    flags: list[str] = []
    if args.master:
        flags += [
            "--master",
            "--master-bind-host",
            args.master_bind_host,
            "--master-bind-port",
            str(args.master_port),
            "--expect-workers",
            str(args.expect_workers),
            "--expect-workers-max-wait",
            f"{args.worker_wait:g}",
        ]
    if args.worker:
        flags += ["--worker", "--master-host", args.master_host, "--master-port", str(args.master_port)]
        if args.master_timeout is not None:  # else the plugin's default
            flags += ["--inferswarm-master-timeout", f"{args.master_timeout:g}"]
    if args.processes:
        flags += ["--processes", str(args.processes)]
    if args.master or (args.processes and not args.worker):
        # A worker lost mid-stage hands its users to the others at once, not at the next stage.
        flags += ["--enable-rebalancing"]
    return flags


def check_distributed(args: argparse.Namespace) -> str | None:
    """The one-line reason a combination of distributed flags cannot work, or None."""
    master, worker, processes = args.master, args.worker, args.processes
    if worker and not args.master_host:
        return "--worker needs --master-host (the machine running `inferswarm run CONFIG --master`)"
    if args.master_host and not worker:
        return "--master-host is for workers: add --worker"
    if worker:
        given = [
            flag
            for flag, value in (
                ("--serve-target", args.serve_target is not None),
                ("--out", args.out),
                ("--web", args.web),
                ("--expect-workers", args.expect_workers_given),
            )
            if value
        ]
        if given:
            return f"{', '.join(given)}: not for a worker (the master owns the run and its results)"
    if args.master_timeout is not None and not worker:
        return "--master-timeout is for workers: add --worker"
    if args.expect_workers_given and not master:
        return "--expect-workers is for the master: add --master"
    if master and processes:
        return "--processes starts its own master: use it without --master (or with --worker)"
    if processes is not None and (processes == 0 or processes < -1):
        return f"--processes {processes}: give a count of worker processes, or -1 for one per CPU core"
    if args.expect_workers < 1:
        return f"--expect-workers {args.expect_workers}: must be at least 1"
    if args.master_timeout is not None and not 1 <= args.master_timeout <= 3600:
        return f"--master-timeout {args.master_timeout:g}: must be between 1 and 3600 s"
    return None


def run_locust(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run Locust as a child in its own session; SIGINT/SIGTERM to us are forwarded exactly once."""
    # A shell starts background jobs with SIGINT ignored, and Locust would inherit that: the signal we
    # forward must work, so the child starts with the default disposition.
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def shell_status(code: int) -> int:
    """A child's return code as a shell reports it: 128+N for a child killed by signal N."""
    return code if code >= 0 else 128 - code


def finalize_run_json(run_dir: Path, exit_code: int, extra: dict[str, Any]) -> None:
    """Fill in what a Locust process that died without its quit handler could not write."""
    data = read_run_json(run_dir)
    if data is None:
        return
    if data.get("ended_at") is None:
        data.update(end_fields(data, "killed" if exit_code < 0 else "failed", exit_code))
    data.update(extra)
    write_json_atomic(run_dir / "run.json", data)


def cycle_override(args: argparse.Namespace) -> str | None:
    """`-x/-y/-z/--cycles` as the JSON load override the Locust processes read from INFERSWARM_LOAD."""
    given = {
        "packets": getattr(args, "packets", None),
        "capabilities": getattr(args, "capabilities", None),
        "interval_s": getattr(args, "interval", None),
        "cycles": getattr(args, "cycles", None),
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    if not chosen:
        return os.environ.get(LOAD_ENV) or None
    return json.dumps({"shape": "cycle", **chosen})


def cmd_run(args: argparse.Namespace) -> int:
    problem = check_distributed(args)
    if problem:
        return _error(problem)
    agents = ",".join(filter(None, [os.environ.get(AGENTS_ENV, ""), *args.agent]))
    load_override = cycle_override(args)
    try:
        config = with_load_override(with_extra_agents(load_config(args.config), agents), load_override)
        secrets = resolve_secret_headers(config)
    except ConfigError as exc:
        return _error(exc.one_line())
    env = {**os.environ}
    if agents:
        env[AGENTS_ENV] = agents
    if load_override:
        env[LOAD_ENV] = load_override
    if args.worker:
        return cmd_run_worker(args, env)
    out = Path(args.out) if args.out else Path(config.output.dir)
    run_dir = make_run_dir(out, config.name)
    host = args.host
    target: ReferenceTarget | None = None
    try:
        if args.serve_target is not None:
            settings = Path(args.serve_target) if args.serve_target else None
            target = ReferenceTarget(settings).__enter__()
            host = target.url
            print(f"inferswarm: reference target on {host}", flush=True)
        # run.json exists from the first moment, even if Locust never gets to write its own.
        RunRecord(run_dir, config, secrets.values()).save()
        extra_flags = [*distributed_args(args), *args.locust_args]
        cmd = locust_command(Path(args.config), run_dir, not args.web, host, extra_flags, args.web_host)
        if args.master:
            print(
                f"inferswarm: master on port {args.master_port}, waiting for {args.expect_workers} "
                f"worker(s): inferswarm run {args.config} --worker --master-host <this host>",
                flush=True,
            )
        code = run_locust(cmd, env)
        extra: dict[str, Any] = {}
        if target is not None:
            extra["reference_target"] = {"url": target.url, "stats": target.stats()}
        finalize_run_json(run_dir, code, extra)
    finally:
        if target is not None:
            target.stop()
    report_code = 0
    if not args.no_report:
        # Its own process: the report never shares an interpreter with Locust's monkey-patching.
        report_code = subprocess.call([sys.executable, "-m", "inferswarm.cli", "report", str(run_dir)])
    print(f"inferswarm: results in {run_dir}", flush=True)
    if code != 0:
        return shell_status(code)
    return EXIT_GATE_FAILED if report_code == EXIT_GATE_FAILED else 0


def cmd_run_worker(args: argparse.Namespace, env: dict[str, str]) -> int:
    """A worker: no run directory, no report; the master writes everything. Exit codes: Locust's, 2
    when the master refused this worker's config or version, 1 when the master went silent."""
    print(
        f"inferswarm: worker of the master at {args.master_host}:{args.master_port}; "
        "results are written by the master",
        flush=True,
    )
    cmd = locust_command(
        Path(args.config), None, True, args.host, [*distributed_args(args), *args.locust_args]
    )
    return shell_status(run_locust(cmd, env))


def cmd_demo(args: argparse.Namespace) -> int:
    configs = PROJECT_ROOT / "configs"
    argv = ["run", str(configs / "demo.yaml"), "--serve-target", str(configs / "demo-target.yaml")]
    argv += ["--out", args.out] if args.out else []
    argv += ["--web"] if args.web else []
    run_args = build_parser().parse_args(argv)
    run_args.locust_args = []
    return cmd_run(run_args)


def cmd_report(args: argparse.Namespace) -> int:
    from inferswarm.report.render import write_report
    from inferswarm.report.results import format_level

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _error(f"{run_dir}: not a run directory")
    results, messages = write_report(run_dir, png=not args.no_png)
    for note in results.notes:
        print(f"report: {note}")
    for message in messages:
        print(f"report: {message}")
    sat = results.saturation
    if sat is not None:
        level = format_level(sat.level)
        print(f"report: saturation at {level} {results.step_axis.label} ({sat.reason})")
    for gate in results.slo.gates:
        value = "no data" if gate.value is None else f"{gate.value:g}"
        print(f"report: SLO {'PASS' if gate.passed else 'FAIL'} {gate.gate} ({gate.scope}: {value})")
    print(f"report: {run_dir / 'report.html'}", flush=True)
    return 0 if results.slo.passed else EXIT_GATE_FAILED


def _tolerances(items: list[str]) -> dict[str, float]:
    from inferswarm.slo import check_tolerance

    out: dict[str, float] = {}
    for item in items:
        metric, _, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--tolerance {item}: {text!r} is not a number") from None
        try:
            check_tolerance(metric, value)
        except ValueError as exc:
            raise ValueError(f"--tolerance {item}: {exc}") from None
        out[metric] = value
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from inferswarm.report.compare import write_compare
    from inferswarm.report.results import ResultsFileError

    a_dir, b_dir = Path(args.run_a), Path(args.run_b)
    for run_dir in (a_dir, b_dir):
        if not run_dir.is_dir():
            return _error(f"{run_dir}: not a run directory")
    try:
        tolerances = _tolerances(args.tolerance)
    except ValueError as exc:
        return _error(str(exc))
    out = Path(args.out) if args.out else b_dir
    try:
        rows = write_compare(a_dir, b_dir, out, tolerances)
    except ResultsFileError as exc:  # another schema version, or not a results.json at all
        return _error(str(exc))
    for row in rows:
        change = "-" if row.change is None else f"{100 * row.change:+.1f}%"
        flag = "  REGRESSION" if row.regression else ""
        print(f"{row.scope:>20} {row.metric:>20} {row.a:>12.3f} {row.b:>12.3f} {change:>8}{flag}")
    regressions = sum(r.regression for r in rows)
    print(f"compare: {regressions} regression(s); {out / 'compare.html'}")
    return EXIT_GATE_FAILED if regressions else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from inferswarm.emulator.settings import load_target_settings

    try:
        settings = load_target_settings(args.config)
    except ConfigError as exc:
        return _error(exc.one_line())
    import uvicorn

    from inferswarm.emulator.app import create_app

    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    if not INTERVAL_MIN_S <= args.interval <= INTERVAL_MAX_S:
        return _error(
            f"--interval {args.interval:g}: must be between {INTERVAL_MIN_S:g} and {INTERVAL_MAX_S:g} s"
        )
    from inferswarm.telemetry.agent import serve

    serve(args.host, args.port, args.interval, args.name, args.log_level)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = with_extra_agents(load_config(args.config), os.environ.get(AGENTS_ENV))
    except ConfigError as exc:
        return _error(exc.one_line())
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
    parser = argparse.ArgumentParser(prog="inferswarm", description=__doc__.splitlines()[0])
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
    add_distributed_arguments(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="analyse a run directory: report.html, PNGs, results.json, summary.md; exit 3 on a failed SLO",
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


if __name__ == "__main__":
    sys.exit(main())
