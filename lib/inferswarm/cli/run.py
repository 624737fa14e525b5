"""`inferswarm run` and `demo`: Locust as a supervised child, the run directory, the report after it.

The parent owns the run: it makes the run directory, starts the reference target when asked, runs
Locust in a session of its own, forwards signals once, and writes into run.json only what a dead child
could not (its final status) and what only the parent knows (the reference target's own counts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from inferswarm.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    EXIT_NO_MEASUREMENT,
    PROJECT_ROOT,
    error,
)
from inferswarm.config import (
    AGENTS_ENV,
    CAPABILITIES_ENV,
    LOAD_ENV,
    ConfigError,
    RunConfig,
    load_config,
    resolve_secret_headers,
    with_capability_override,
    with_extra_agents,
    with_load_override,
)
from inferswarm.config.schema import url_problem
from inferswarm.emulator.launcher import ReferenceTarget, free_port
from inferswarm.lifeline import PARENT_PID_ENV, STOP_SIGNALS, die_with_parent
from inferswarm.rundir import (
    CSV_PREFIX_NAME,
    RUN_JSON,
    RunFiles,
    RunRecord,
    end_fields,
    make_run_dir,
    overwrite_in_place,
    read_run_json,
    write_json_atomic,
)


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
        if not args.worker:
            # Locust's master for the workers it forks binds port 5557 on every interface by default:
            # two such runs on one machine collide, and the port is open to the network. The forked
            # workers read the same options, so one free loopback port serves both ends.
            port = str(free_port())
            flags += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port]
    if args.master or (args.processes and not args.worker):
        # A worker lost mid-stage hands its users to the others at once, not at the next stage.
        flags += ["--enable-rebalancing"]
    return flags


def bind_problem(host: str, port: int) -> str | None:
    """Why a master could not listen on host:port (Locust's `*` = every interface), or None. Asked before
    Locust starts so that a port in use is one line, not Locust's traceback and an empty run directory."""
    bind_host = None if host in ("*", "0.0.0.0") else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"{host}: {exc.strerror}"
    with socket.socket(family, kind, proto) as sock:
        # As ZeroMQ binds: a port left in TIME_WAIT by an earlier master is free to take.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


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


@dataclass(frozen=True)
class ChildExit:
    code: int
    """The child's return code (negative: killed by that signal)."""
    signal: str | None
    """The first stop signal this process received while the child ran (SIGINT, SIGTERM, SIGHUP)."""


def run_locust(cmd: list[str], env: dict[str, str] | None = None) -> ChildExit:
    """Run Locust as a child in its own session, tied to this process's life.

    The first SIGINT, SIGTERM or SIGHUP is forwarded: Locust stops and writes its files. A second is
    not (it would cut that writing short, losing the last stage row); a third kills the child. The
    child dies with us (`inferswarm.lifeline`), so no load outlives a killed `inferswarm run`.
    """
    env = {**(os.environ if env is None else env), PARENT_PID_ENV: str(os.getpid())}
    proc = subprocess.Popen(cmd, start_new_session=True, env=env, preexec_fn=die_with_parent())
    received: list[str] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if proc.poll() is not None:
            return
        if len(received) == 1:
            proc.send_signal(signum)
        elif len(received) == 2:
            say("inferswarm: stopping; Locust is writing its results (signal again to kill it now)")
        else:
            proc.kill()

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ChildExit(code, received[0] if received else None)


def say(message: str) -> None:
    """Print a status line; a terminal that hung up (SIGHUP) must not turn into a traceback."""
    with contextlib.suppress(OSError):
        print(message, flush=True)


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
        data.update(settle_request_log(run_dir, data))
    data.update(extra)
    try:
        write_json_atomic(run_dir / RUN_JSON, data)
    except OSError:  # a full disk: run.json must still end in a final status
        overwrite_in_place(run_dir / RUN_JSON, json.dumps(data, indent=2) + "\n")


def settle_request_log(run_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    """An owner that died left its request log as the stream it appends to: rewritten here as Parquet,
    as the owner does at a clean end, so a killed run's directory has the same files as any other.
    The stream stays too when its last batch was cut (its whole batches are in both). What changes in
    run.json: its `files`."""
    from inferswarm.requests_file import stream_to_parquet

    files = RunFiles(run_dir, CSV_PREFIX_NAME)
    stream, parquet = files.path("requests_stream"), files.path("requests")
    if not stream.is_file() or parquet.exists():
        return {}
    try:
        removed = stream_to_parquet(stream, parquet)
    except (OSError, ValueError) as exc:  # the report still reads the stream
        say(f"inferswarm: {stream.name} stays as it is: {exc}")
        return {}
    listed = dict(data.get("files") or {})
    listed["requests"] = parquet.name
    if removed:
        listed.pop("requests_stream", None)
    return {"files": listed}


def test_started(run_dir: Path) -> bool:
    data = read_run_json(run_dir)
    return data is not None and data.get("test_start_epoch_s") is not None


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


@dataclass(frozen=True)
class SeedOption:
    """One of seed 001's script options (the edge endpoint's load tests) as a load field."""

    flag: str
    shape: str
    field: str
    number: type[int] | type[float]
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


SEED_OPTIONS = (
    SeedOption("--max-clients", "ramp", "max_users", int, "clients to ramp up to (load.max_users)"),
    SeedOption(
        "--step-size",
        "ramp",
        "step_users",
        int,
        "clients added per step, and the first step's (load.step_users)",
    ),
    SeedOption(
        "--time-between-ramp", "ramp", "step_duration_s", float, "seconds per step (load.step_duration_s)"
    ),
    SeedOption(
        "--requests-per-second", "ramp", "per_user_rps", float, "per-client request rate (load.per_user_rps)"
    ),
    SeedOption(
        "--duration", "fps", "duration_s", float, "fps: seconds to send back to back (load.duration_s)"
    ),
    SeedOption(
        "--ready-timeout",
        "readiness",
        "timeout_s",
        float,
        "readiness: give up this long after the first connection (load.timeout_s)",
    ),
)


class OptionError(ValueError):
    """A bad command-line option: one line, exit 2."""


def seed_override(args: argparse.Namespace, shape: str, override: str | None) -> str | None:
    """Seed 001's options given on the command line, merged over `override` (INFERSWARM_LOAD or the
    cycle options) as the JSON load override; None when none was given."""
    given = [(o, getattr(args, o.dest, None)) for o in SEED_OPTIONS]
    chosen = [(o, raw) for o, raw in given if raw is not None]
    if not chosen:
        return None
    flags = ", ".join(o.flag for o, _ in chosen)
    cycle_flags = [
        f
        for f, d in (("-x", "packets"), ("-y", "capabilities"), ("-z", "interval"), ("--cycles", "cycles"))
        if getattr(args, d, None) is not None
    ]
    if cycle_flags:
        raise OptionError(f"{flags}: cannot be combined with the cycle options {', '.join(cycle_flags)}")
    fields: dict[str, Any] = {}
    for option, raw in chosen:
        if option.shape != shape:
            raise OptionError(f"{option.flag}: only for {option.shape} runs; this config's load is {shape!r}")
        try:
            fields[option.field] = option.number(raw)
        except ValueError:
            kind = "a whole number" if option.number is int else "a number"
            raise OptionError(f"{option.flag}: {raw!r} is not {kind}") from None
    base: dict[str, Any] = {}
    if override and override.strip():
        try:
            loaded = json.loads(override)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):  # anything else: with_load_override has already refused it
            base = loaded
    return json.dumps({**base, "shape": shape, **fields})


def apply_seed_options(
    args: argparse.Namespace, config: RunConfig, overridden: RunConfig, override: str | None
) -> tuple[RunConfig, str | None]:
    """`overridden` (config with `override`) with seed 001's options applied, and the override the
    Locust processes get. Raises OptionError naming the options."""
    seeded = seed_override(args, overridden.load.shape, override)
    if seeded is None:
        return overridden, override
    try:
        return with_load_override(config, seeded), seeded
    except ConfigError as exc:
        named = [o.flag for o in SEED_OPTIONS if f"load.{o.field}" == exc.field]
        flags = named or [o.flag for o in SEED_OPTIONS if getattr(args, o.dest, None) is not None]
        raise OptionError(f"{', '.join(flags)}: {exc.field}: {exc.problem}") from None


DETECTOR_KIND = "groundlight"
DETECTOR_MODES = ("BINARY", "COUNT", "MULTI_CLASS")
"""Seed 001's DETECTOR_MODE: `--detector-mode` (a flag: `run`'s positional is the config)."""
IMAGE_OPTIONS = (("--image-width", "image_width", "width"), ("--image-height", "image_height", "height"))


def capability_override(args: argparse.Namespace) -> str | None:
    """`--detector-mode`, `--image-width`, `--image-height` as the JSON capability override the Locust
    processes read from INFERSWARM_CAPABILITIES (the flags replace it); None when neither is given."""
    mode = getattr(args, "detector_mode", None)
    size: dict[str, int] = {}
    for flag, dest, field in IMAGE_OPTIONS:
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        try:
            size[field] = int(raw)
        except ValueError:
            raise OptionError(f"{flag}: {raw!r} is not a whole number") from None
    if mode is None and not size:
        return os.environ.get(CAPABILITIES_ENV) or None
    override: dict[str, Any] = {"kind": DETECTOR_KIND}
    if mode is not None:
        override["select"] = {"mode": mode}
    if size:
        override["set"] = {"image_size": size}
    return json.dumps(override)


def apply_capability_options(args: argparse.Namespace, config: RunConfig) -> tuple[RunConfig, str | None]:
    """`config` with seed 001's DETECTOR_MODE and image size applied, and the override the Locust
    processes get. Raises OptionError naming the options, ConfigError for INFERSWARM_CAPABILITIES."""
    override = capability_override(args)
    mode = getattr(args, "detector_mode", None)
    size_flags = [flag for flag, dest, _ in IMAGE_OPTIONS if getattr(args, dest, None) is not None]
    flags = ([f"--detector-mode {mode}"] if mode else []) + size_flags
    if not flags:
        return with_capability_override(config, override), override
    detectors = [c for c in config.capabilities if c.kind == DETECTOR_KIND]
    chosen = [c for c in detectors if mode is None or getattr(c, "mode", None) == mode]
    fixed = [c for c in chosen if getattr(c, "image", None) is not None]
    if size_flags and fixed:
        raise OptionError(
            f"{', '.join(size_flags)}: capability {fixed[0].name!r} sends the fixed asset image "
            f"{getattr(fixed[0], 'image', None)!r}, not generated ones: give it image_size instead of image"
        )
    try:
        return with_capability_override(config, override), override
    except ConfigError as exc:
        field = f"{exc.field}: " if exc.field not in ("", "kind", "select") else ""
        raise OptionError(f"{', '.join(flags)}: {field}{exc.problem}") from None


def cmd_run(args: argparse.Namespace) -> int:
    problem = check_distributed(args)
    if problem:
        return error(problem)
    host_problem = url_problem(args.host) if args.host else None
    if host_problem:
        return error(f"--host: {host_problem}")
    agents = ",".join(filter(None, [os.environ.get(AGENTS_ENV, ""), *args.agent]))
    load_override = cycle_override(args)
    try:
        from_file = with_extra_agents(load_config(args.config), agents)
        selected, chosen_capabilities = apply_capability_options(args, from_file)
        config, load_override = apply_seed_options(
            args, selected, with_load_override(selected, load_override), load_override
        )
        secrets = resolve_secret_headers(config)
    except ConfigError as exc:
        return error(exc.one_line())
    except OptionError as exc:
        return error(str(exc))
    env = {**os.environ}
    if agents:
        env[AGENTS_ENV] = agents
    if load_override:
        env[LOAD_ENV] = load_override
    if chosen_capabilities:
        env[CAPABILITIES_ENV] = chosen_capabilities
    if args.worker:
        return cmd_run_worker(args, env)
    if {"-h", "--help"} & set(args.locust_args):  # Locust's own options: nothing runs, no run directory
        return run_locust(locust_command(Path(args.config), None, True, None, ["--help"]), env).code
    if args.master and (problem := bind_problem(args.master_bind_host, args.master_port)):
        return error(
            f"--master-port {args.master_port}: cannot listen on {args.master_bind_host}:{args.master_port}: "
            f"{problem} (another master on this machine? choose another port)"
        )
    out = Path(args.out) if args.out else Path(config.output.dir)
    try:
        run_dir = make_run_dir(out, config.name)
        RunRecord(run_dir, config, secrets.values()).save()
    except OSError as exc:  # before anything starts: a file in the way, no permission, a full disk
        where = "--out" if args.out else f"{args.config}: output.dir"
        return error(f"{where} {out}: cannot create a run directory: {exc.strerror or exc}")
    host = args.host
    target: ReferenceTarget | None = None
    try:
        if args.serve_target is not None:
            settings = Path(args.serve_target) if args.serve_target else None
            target = ReferenceTarget(settings).__enter__()
            host = target.url
            print(f"inferswarm: reference target on {host}", flush=True)
        checked = preflight(args, config, host, secrets, run_dir)
        if isinstance(checked, int):
            return checked
        extra_flags = [*distributed_args(args), *args.locust_args]
        cmd = locust_command(Path(args.config), run_dir, not args.web, host, extra_flags, args.web_host)
        if args.master:
            print(
                f"inferswarm: master on port {args.master_port}, waiting for {args.expect_workers} "
                f"worker(s): inferswarm run {args.config} --worker --master-host <this host>",
                flush=True,
            )
        child = run_locust(cmd, env)
        code = child.code
        extra: dict[str, Any] = {}
        if child.signal is not None:
            extra["parent_signal"] = child.signal
        if target is not None:
            extra["reference_target"] = {"url": target.url, "stats": target.stats()}
        if checked is not None:
            extra["preflight"] = checked
        finalize_run_json(run_dir, code, extra)
    finally:
        if target is not None:
            target.stop()
    if code == EXIT_BAD_INPUT and not test_started(run_dir):
        # Locust refused its input (its one line is on stderr) before any load: nothing to keep.
        shutil.rmtree(run_dir, ignore_errors=True)
        return EXIT_BAD_INPUT
    report_code = 0
    if not args.no_report:
        # Its own process: the report never shares an interpreter with Locust's monkey-patching. After
        # a hang-up there is no terminal to print to, but the report's files are still wanted.
        quiet = subprocess.DEVNULL if child.signal == "SIGHUP" else None
        report_code = subprocess.call(
            [sys.executable, "-m", "inferswarm.cli", "report", str(run_dir)], stdout=quiet, stderr=quiet
        )
    say(f"inferswarm: results in {run_dir}")
    if code != 0:
        return shell_status(code)
    # The report's verdicts: no valid measurement (4) or a failed SLO gate (3); anything else it
    # returned (a crash) is not the run's verdict, the files are there to report again.
    return report_code if report_code in (EXIT_GATE_FAILED, EXIT_NO_MEASUREMENT) else 0


def preflight(
    args: argparse.Namespace, config: RunConfig, host: str | None, secrets: dict[str, str], run_dir: Path
) -> dict[str, Any] | int | None:
    """The preflight checks (`checks.preflight`) before any load: their record for run.json (None when
    skipped), or the exit code (1) when one FAILed; then run.json says so and no load is sent. The
    report goes into the run directory as checks.json either way."""
    from inferswarm.checks.model import CHECKS_JSON, summary_line
    from inferswarm.checks.runner import run_checks

    if getattr(args, "no_preflight", False) or not config.checks.preflight:
        return None
    if config.load.readiness_plan(config.load_context()) is not None:
        # A readiness run measures how long the endpoint takes to come up: it may not be up yet.
        say("inferswarm: preflight skipped: the readiness load waits for the endpoint to come up")
        return None
    report = run_checks(config, host, secrets, only=config.checks.preflight)
    data = report.to_dict()
    with contextlib.suppress(OSError):  # run.json keeps the verdict even where this file cannot go
        write_json_atomic(run_dir / CHECKS_JSON, data)
    record = {"summary": data["summary"], "checks": data["tests"]}
    if report.ok:
        say(f"inferswarm: preflight checks: {summary_line(data)} ({CHECKS_JSON})")
        for check in report.tests:
            if check.status.value == "WARN":
                say(f"inferswarm: preflight WARN {check.name}: {check.details}")
        return record
    say(report.table().rstrip("\n"))
    first = report.failed[0]
    print(
        f"inferswarm: preflight check {first.name} failed, no load sent: {first.details}",
        file=sys.stderr,
        flush=True,
    )
    finalize_run_json(
        run_dir, 1, {**end_fields(read_run_json(run_dir) or {}, "preflight_failed", 1), "preflight": record}
    )
    say(f"inferswarm: results in {run_dir} (--no-preflight to run anyway)")
    return 1


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
    return shell_status(run_locust(cmd, env).code)


def cmd_demo(args: argparse.Namespace) -> int:
    configs = PROJECT_ROOT / "configs"
    argv = ["run", str(configs / "demo.yaml"), "--serve-target", str(configs / "demo-target.yaml")]
    argv += ["--out", args.out] if args.out else []
    argv += ["--web"] if args.web else []
    from inferswarm.cli.parser import build_parser

    run_args = build_parser().parse_args(argv)
    run_args.locust_args = []
    return cmd_run(run_args)
