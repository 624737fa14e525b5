"""The wiring between an inferswarm config and a Locust process.

`bootstrap()` is called by a locustfile at import time, because Locust discovers user classes by
importing the locustfile before it parses the full command line: it finds the config path (from
`--inferswarm-config` or `INFERSWARM_CONFIG`), validates it, builds the user and shape classes, and
registers the plugin. Everything that needs the running environment happens in Locust's `init`, in one
of two roots: a worker sends (its counts, its telemetry, its hello to the master); the owner (the
master or the local runner) owns the run directory and everything written into it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

from locust import events, runners, stats
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm import derived
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
from inferswarm.config.errors import unknown_name
from inferswarm.load import SearchLoad
from inferswarm.locust import csv_patch
from inferswarm.locust.arrivals import RateDriver, Schedules, WorkerRates
from inferswarm.locust.distributed import MASTER_TIMEOUT_S, MasterWatch, WorkerRegistry
from inferswarm.locust.lifeline import StopCause
from inferswarm.locust.listeners.cycles import CycleLedger, CycleReporter
from inferswarm.locust.listeners.readiness import (
    ReadinessLedger,
    ReadinessMonitor,
    RoutePoller,
    detector_ids,
)
from inferswarm.locust.listeners.request_log import RequestLog
from inferswarm.locust.listeners.run_record import RunRecorder
from inferswarm.locust.listeners.status_codes import StatusCodes
from inferswarm.locust.listeners.step_stats import StepStats
from inferswarm.locust.listeners.telemetry import TelemetryHub, WorkerTelemetry
from inferswarm.locust.search import SearchDriver
from inferswarm.locust.shape import RecordingShape, StageRecorder, shape_class_for
from inferswarm.locust.user import build_user_classes
from inferswarm.protocols import protocol_for
from inferswarm.rundir import CSV_PREFIX_NAME, RunFiles, RunRecord, make_run_dir

CONFIG_ARG = "--inferswarm-config"
CONFIG_ENV = "INFERSWARM_CONFIG"
MASTER_TIMEOUT_ARG = "--inferswarm-master-timeout"
MASTER_TIMEOUT_ENV = "INFERSWARM_MASTER_TIMEOUT"
# Locust flushes its CSVs every 5 s by default; a run killed hard would lose that much.
CSV_FLUSH_INTERVAL_S = 1
WORKER_REPORT_INTERVAL_S = 1.0

log = logging.getLogger("inferswarm")


def config_path_from(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(CONFIG_ARG, dest="config")
    known, _ = parser.parse_known_args(argv)
    return known.config or environ.get(CONFIG_ENV) or None


def fail(message: str, code: int = 2) -> None:
    print(f"inferswarm: {message}", file=sys.stderr)
    raise SystemExit(code)


class WorkerRoot:
    """A worker process: counts and samples locally, ships to the master, leaves when it goes silent."""

    def __init__(
        self,
        environment: Environment,
        config: RunConfig,
        master_timeout_s: float,
        schedules: Schedules | None = None,
    ) -> None:
        StopCause().install()
        # Locust's workers report their statistics every 3 s; the master's per-step windows (and a
        # search's verdicts) would then mix up to 3 s of the next step into each. Every second instead.
        runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
        if schedules is not None:
            WorkerRates(environment, schedules)
        self.status_codes = StatusCodes(environment)
        self.cycles = CycleLedger(environment) if config.load.records_slots else None
        if config.load.readiness_plan(config.load_context()) is not None:
            ReadinessLedger(environment)
        MasterWatch(environment, config, master_timeout_s).start()
        if config.output.request_log:  # rows go to the master, which owns the run directory
            RequestLog(environment).start()
        if config.telemetry.enabled:  # samples go to the master, which owns the run directory
            lag = schedules.read_max_lag_ms if schedules is not None else None
            WorkerTelemetry(environment, config, lag).start()


class OwnerRoot:
    """The master or the local runner: owns the run directory, run.json and the report's inputs."""

    def __init__(
        self,
        environment: Environment,
        config: RunConfig,
        secrets: dict[str, str],
        options: Any,
        schedules: Schedules | None = None,
    ) -> None:
        self.environment = environment
        self.config = config
        stats.CSV_STATS_FLUSH_INTERVAL_SEC = CSV_FLUSH_INTERVAL_S
        # Headless Locust installs its SIGTERM handler only after a shape has finished, so a SIGTERM
        # mid-run would kill it without final CSVs. Until then, SIGTERM and SIGHUP stop it exactly like
        # Ctrl+C; a second signal is ignored while the files are written; a lost parent stops it too.
        self.stop = StopCause()
        self.stop.install()

        if options.csv_prefix:
            files = RunFiles(Path(options.csv_prefix).parent, Path(options.csv_prefix).name)
        else:
            files = RunFiles(make_run_dir(Path(config.output.dir), config.name), CSV_PREFIX_NAME)
            log.warning(
                "no --csv given: Locust's CSVs are not written; run.json and stages go to %s", files.run_dir
            )
        self.status_codes = StatusCodes(environment, files.path("status_codes"))
        self.step_stats = StepStats(environment, files, config.report.warmup_s)
        self.recorder = StageRecorder(files.path("stages"))
        self.recorder.listeners += [self.step_stats, self.status_codes]
        if schedules is not None:
            self.recorder.listeners.append(RateDriver(environment, config.load_context(), schedules))
        self.shape: RecordingShape | None = None
        if isinstance(environment.shape_class, RecordingShape):
            self.shape = environment.shape_class
            self.shape.recorder = self.recorder
        self.cycles: CycleReporter | None = None
        plan = config.load.cycle_plan(config.load_context())
        if plan is not None:
            ledger = CycleLedger(environment)
            self.cycles = CycleReporter(
                environment,
                plan,
                ledger,
                self.status_codes,
                files.path("cycles"),
                files.path("cycle_summary"),
            )
        self.run = RunRecorder(environment, RunRecord(files.run_dir, config, secrets.values()))
        if self.shape is not None and isinstance(config.load, SearchLoad):
            self.shape.planner = SearchDriver(
                config.load,
                config.load_context(),
                self.step_stats,
                save=lambda summary: self.run.saved(search=summary),
                latency_entry=derived.FROM_INTENDED if config.load.over == "rps" else derived.OK,
            )
        self.requests: RequestLog | None = None
        if config.output.request_log:
            self.requests = RequestLog(environment, files.path("requests_stream"), files.path("requests"))
        self.readiness: ReadinessMonitor | None = None
        readiness = config.load.readiness_plan(config.load_context())
        if readiness is not None:
            routes = None
            if readiness.poll_routes:
                routes = RoutePoller(
                    environment.host or config.target.base_url,
                    detector_ids(config, readiness.capabilities),
                    min(max(readiness.interval_s, 1.0), 5.0),
                    config.target.headers,
                )
            self.readiness = ReadinessMonitor(
                environment,
                readiness,
                files.path("readiness"),
                end_run=self.end_shape,
                save=lambda summary: self.run.saved(readiness=summary),
                routes=routes,
                routes_csv_path=files.path("readiness_routes") if routes is not None else None,
            )
        self.telemetry: TelemetryHub | None = None
        if config.telemetry.enabled:
            self.telemetry = TelemetryHub(
                environment,
                config,
                files.path("telemetry"),
                secrets,
                on_saturation=lambda summary: self.run.saved(generator_saturation=summary),
                schedule_lag_ms=schedules.read_max_lag_ms if schedules is not None else None,
            )
        self.run.record.start(
            mode="master" if options.master else "local",
            headless=bool(options.headless),
            target=environment.host or config.target.base_url,
            csv_prefix=files.prefix if options.csv_prefix else None,
            planned_duration_s=self.shape.planned_duration_s if self.shape else None,
            files=files.names(
                cycles=self.cycles is not None,
                telemetry=self.telemetry is not None,
                readiness=self.readiness is not None,
                readiness_routes=self.readiness is not None and self.readiness.routes is not None,
                request_log=self.requests is not None,
            ),
            telemetry=self.telemetry.describe() if self.telemetry else {"enabled": False},
            capabilities_info=capability_info(config),
        )
        self.workers: WorkerRegistry | None = None
        if isinstance(environment.runner, MasterRunner):
            self.workers = WorkerRegistry(
                environment,
                config,
                on_change=lambda summary: self.run.saved(workers=summary),
                test_start=lambda: self.run.test_start_epoch_s,
            )
            self.workers.start()
            self.run.saved(workers=self.workers.summary())
        if self.requests is not None:
            self.requests.start()
        if self.telemetry is not None:
            self.telemetry.start()
            if environment.web_ui is not None:
                from inferswarm.locust.listeners import telemetry_web

                telemetry_web.install(environment.web_ui, self.telemetry)
        environment.events.test_start.add_listener(self.on_test_start)
        environment.events.test_stop.add_listener(self.on_test_stop)
        environment.events.quit.add_listener(self.on_quit)

    def on_test_start(self, **_: Any) -> None:
        if self.cycles is not None and self.cycles.started_s is None:
            self.cycles.start()
        if self.readiness is not None:
            self.readiness.start()

    def end_shape(self) -> None:
        """A load kind's end condition was met: the shape ends at its next tick (the run stops)."""
        if self.shape is not None:
            self.shape.end()
        elif self.environment.runner is not None:
            self.environment.runner.quit()

    def on_test_stop(self, **_: Any) -> None:
        if self.shape is not None:
            self.shape.stopped()

    def on_quit(self, exit_code: int, **_: Any) -> None:
        self.recorder.finish()
        self.step_stats.close()
        self.status_codes.save()
        if self.cycles is not None:
            self.cycles.stop()
        if self.readiness is not None:
            self.readiness.stop()
        extra: dict[str, Any] = {}
        if self.telemetry is not None:
            self.telemetry.stop()
            extra = {
                "telemetry": {**self.telemetry.describe(), "rows": self.telemetry.csv.rows},
                "generator_saturation": self.telemetry.saturation.summary(),
            }
        if self.workers is not None:
            extra["workers"] = self.workers.summary()
        if self.requests is not None and self.requests.close():  # the stream became the Parquet file
            files = self.run.record.data["files"]
            extra["files"] = {key: name for key, name in files.items() if key != "requests_stream"}
        self.run.end(self.shape is None or self.shape.completed, exit_code, **extra, **self.stop.fields())


class Plugin:
    """Registered by `bootstrap`: adds inferswarm's Locust arguments and builds a root in `init`."""

    def __init__(self, config: RunConfig, secrets: dict[str, str]) -> None:
        self.config = config
        self.secrets = secrets
        spec = config.load.arrivals()
        self.schedules = Schedules(spec, config.load_context().capabilities) if spec is not None else None
        """Open-loop load: this process's send times, shared by its users and set by its root."""
        self.root: WorkerRoot | OwnerRoot | None = None

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            CONFIG_ARG,
            env_var=CONFIG_ENV,
            default=None,
            help="inferswarm run config (YAML)",
            include_in_web_ui=False,
        )
        parser.add_argument(
            MASTER_TIMEOUT_ARG,
            env_var=MASTER_TIMEOUT_ENV,
            type=float,
            default=MASTER_TIMEOUT_S,
            help="a worker exits (code 1) after this many seconds without a heartbeat from its master",
            include_in_web_ui=False,
        )

    def on_init(self, environment: Environment, **_: Any) -> None:
        options = environment.parsed_options
        if options is None:
            return
        given = getattr(options, "inferswarm_config", None)
        if given and self.config.source and Path(given).resolve() != self.config.source:
            fail(f"{CONFIG_ARG} {given} differs from the config the user classes were built from")
        if isinstance(environment.runner, WorkerRunner):
            timeout_s = getattr(options, "inferswarm_master_timeout", None) or MASTER_TIMEOUT_S
            self.root = WorkerRoot(environment, self.config, timeout_s, self.schedules)
        else:
            self.root = OwnerRoot(environment, self.config, self.secrets, options, self.schedules)
        freeze_heap()


def freeze_heap() -> None:
    """Everything built so far (modules, config, the root) out of the garbage collector's sight: it lives
    as long as the process. Under load, a full collection then looks only at what the run made since,
    not at the ~100k objects of Locust, pydantic and pyarrow (each one took 50-65 ms of a loaded
    process, every few seconds). Garbage first, so that none of it is kept for good."""
    gc.collect()
    gc.freeze()


def capability_info(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Per capability, what the report needs to turn requests into images, audio seconds or tokens."""
    info: dict[str, dict[str, Any]] = {}
    for capability in config.capabilities:
        facts = protocol_for(capability.kind).describe(capability, config.assets_path)
        info[capability.name] = {"kind": capability.kind, **facts}
    return info


def requested_user_classes(argv: list[str]) -> list[str]:
    """The user classes named on Locust's command line (checked here: Locust's own check ends in an
    exit code of 1 after the run directory exists, with no hint)."""
    if {"-h", "--help", "-V", "--version"} & set(argv):
        return []
    from locust.argument_parser import get_parser

    options, _ = get_parser().parse_known_args(argv)
    return list(options.user_classes or [])


def bootstrap(namespace: dict[str, Any]) -> Plugin:
    """Populate a locustfile's namespace from the run config; exit 2 with one line on a bad config."""
    path = config_path_from(sys.argv[1:], os.environ)
    if path is None:
        fail(f"no run config: pass {CONFIG_ARG} FILE or set {CONFIG_ENV}")
        raise AssertionError("unreachable")
    try:
        config = with_extra_agents(load_config(path), os.environ.get(AGENTS_ENV))
        config = with_capability_override(config, os.environ.get(CAPABILITIES_ENV))
        config = with_load_override(config, os.environ.get(LOAD_ENV))
        secrets = resolve_secret_headers(config)
    except ConfigError as exc:
        fail(exc.one_line())
        raise AssertionError("unreachable") from exc
    plugin = Plugin(config, secrets)
    for user_class in build_user_classes(config, secrets, plugin.schedules):
        namespace[user_class.__name__] = user_class
    shape = shape_class_for(config.load, config.load_context())
    namespace[shape.__name__] = shape
    csv_patch.install()
    events.init_command_line_parser.add_listener(plugin.add_arguments)
    names = [c.name for c in config.capabilities]
    for name in requested_user_classes(sys.argv[1:]):
        if name not in names:
            fail(unknown_name(config.source, "user classes after --", "capability", name, names).one_line())
    events.init.add_listener(plugin.on_init)
    return plugin
