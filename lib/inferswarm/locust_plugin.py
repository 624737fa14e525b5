"""The wiring between an inferswarm config and a Locust process.

`bootstrap()` is called by a locustfile at import time, because Locust discovers user classes by
importing the locustfile before it parses the full command line: it finds the config path (from
`--inferswarm-config` or `INFERSWARM_CONFIG`), validates it, builds the user and shape classes, and
registers the listeners. Everything that needs the running environment happens in Locust's `init`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from locust import events, stats
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm import locust_csv
from inferswarm.config import (
    AGENTS_ENV,
    LOAD_ENV,
    ConfigError,
    CycleLoad,
    RunConfig,
    load_config,
    resolve_secret_headers,
    with_extra_agents,
    with_load_override,
)
from inferswarm.cycles import CycleReporter, cycle_plan, wire_cycle_ledger
from inferswarm.distributed import MASTER_TIMEOUT_S, MasterWatch, WorkerRegistry
from inferswarm.protocols import protocol_for
from inferswarm.runinfo import CSV_PREFIX_NAME, RunRecord, make_run_dir
from inferswarm.runstats import StepStats, status_counts, wire_status_codes
from inferswarm.shapes import RecordingShape, StageRecorder, shape_class_for
from inferswarm.telemetry.locust_wiring import TelemetryHub, WorkerTelemetry
from inferswarm.users import build_user_classes

CONFIG_ARG = "--inferswarm-config"
CONFIG_ENV = "INFERSWARM_CONFIG"
MASTER_TIMEOUT_ARG = "--inferswarm-master-timeout"
MASTER_TIMEOUT_ENV = "INFERSWARM_MASTER_TIMEOUT"
# Locust flushes its CSVs every 5 s by default; a run killed hard would lose that much.
CSV_FLUSH_INTERVAL_S = 1

log = logging.getLogger("inferswarm")


def config_path_from(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(CONFIG_ARG, dest="config")
    known, _ = parser.parse_known_args(argv)
    return known.config or environ.get(CONFIG_ENV) or None


def fail(message: str, code: int = 2) -> None:
    print(f"inferswarm: {message}", file=sys.stderr)
    raise SystemExit(code)


class InferswarmPlugin:
    """Owns the run directory of a local or master Locust process."""

    def __init__(self, config: RunConfig, secrets: dict[str, str]) -> None:
        self.config = config
        self.secrets = secrets
        self.record: RunRecord | None = None
        self.recorder: StageRecorder | None = None
        self.shape: RecordingShape | None = None
        self.telemetry: TelemetryHub | None = None
        self.step_stats: StepStats | None = None
        self.cycles: CycleReporter | None = None
        self.workers: WorkerRegistry | None = None

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
        wire_status_codes(environment)
        wire_cycle_ledger(environment)
        if isinstance(environment.runner, WorkerRunner):
            timeout_s = getattr(options, "inferswarm_master_timeout", None) or MASTER_TIMEOUT_S
            MasterWatch(environment, self.config, timeout_s).start()
            if self.config.telemetry.enabled:  # samples go to the master, which owns the run directory
                WorkerTelemetry(environment, self.config).start()
            return
        stats.CSV_STATS_FLUSH_INTERVAL_SEC = CSV_FLUSH_INTERVAL_S
        # Headless Locust installs its SIGTERM handler only after a shape has finished, so a SIGTERM
        # mid-run would kill it without final CSVs. Until then, treat SIGTERM exactly like Ctrl+C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)

        if options.csv_prefix:
            run_dir = Path(options.csv_prefix).parent
            prefix = Path(options.csv_prefix).name
        else:
            run_dir = make_run_dir(Path(self.config.output.dir), self.config.name)
            prefix = CSV_PREFIX_NAME
            log.warning(
                "no --csv given: Locust's CSVs are not written; run.json and stages go to %s", run_dir
            )

        self.recorder = StageRecorder(run_dir / f"{prefix}_stages.csv")
        self.step_stats = StepStats(environment, run_dir, prefix, self.config.report.warmup_s)
        self.recorder.listeners.append(self.step_stats)
        if isinstance(environment.shape_class, RecordingShape):
            self.shape = environment.shape_class
            self.shape.recorder = self.recorder

        mode = "master" if options.master else "local"
        files = {
            "stages": f"{prefix}_stages.csv",
            "stats": f"{prefix}_stats.csv",
            "stats_history": f"{prefix}_stats_history.csv",
            "failures": f"{prefix}_failures.csv",
            "exceptions": f"{prefix}_exceptions.csv",
            "steps": f"{prefix}_steps.csv",
            "step_latency": f"{prefix}_step_latency.csv",
            "status_codes": f"{prefix}_status_codes.csv",
        }
        if isinstance(self.config.load, CycleLoad):
            self.cycles = CycleReporter(environment, cycle_plan(self.config), run_dir, prefix, status_counts)
            files["cycles"] = f"{prefix}_cycles.csv"
            files["cycle_summary"] = "cycle_summary.txt"
        self.record = RunRecord(run_dir, self.config, self.secrets.values())
        if self.config.telemetry.enabled:
            files["telemetry"] = f"{prefix}_telemetry.csv"
            self.telemetry = TelemetryHub(
                environment,
                self.config,
                run_dir / files["telemetry"],
                self.secrets,
                on_saturation=lambda summary: self._saved(generator_saturation=summary),
            )
        self.record.start(
            mode=mode,
            headless=bool(options.headless),
            target=environment.host or self.config.target.base_url,
            csv_prefix=prefix if options.csv_prefix else None,
            planned_duration_s=self.shape.planned_duration_s if self.shape else None,
            files=files,
            telemetry=self.telemetry.describe() if self.telemetry else {"enabled": False},
            capabilities_info=capability_info(self.config),
        )
        if isinstance(environment.runner, MasterRunner):
            self.workers = WorkerRegistry(
                environment,
                self.config,
                on_change=lambda summary: self._saved(workers=summary),
                test_start=lambda: self.record.data.get("test_start_epoch_s") if self.record else None,
            )
            self.workers.start()
            self._saved(workers=self.workers.summary())
        if self.telemetry is not None:
            self.telemetry.start()
            if environment.web_ui is not None:
                from inferswarm.telemetry import web

                web.install(environment.web_ui, self.telemetry)
        environment.events.test_start.add_listener(self.on_test_start)
        environment.events.quit.add_listener(self.on_quit)

    def _saved(self, **fields: Any) -> None:
        if self.record is not None:
            self.record.update(**fields)

    def on_test_start(self, **_: Any) -> None:
        if self.cycles is not None and self.cycles.started_s is None:
            self.cycles.start()
        if self.record is not None and self.record.data.get("test_start_epoch_s") is None:
            self.record.update(test_start_epoch_s=round(time.time(), 3))

    def on_quit(self, exit_code: int, **_: Any) -> None:
        if self.recorder is not None:
            self.recorder.finish()
        if self.step_stats is not None:
            self.step_stats.close()
        if self.cycles is not None:
            self.cycles.stop()
        telemetry: dict[str, Any] = {}
        if self.telemetry is not None:
            self.telemetry.stop()
            telemetry = {
                "telemetry": {**self.telemetry.describe(), "rows": self.telemetry.csv.rows},
                "generator_saturation": self.telemetry.saturation.summary(),
            }
        if self.workers is not None:
            telemetry["workers"] = self.workers.summary()
        if self.record is not None:
            completed = self.shape is None or self.shape.completed
            self.record.end("completed" if completed else "interrupted", exit_code, **telemetry)


def capability_info(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Per capability, what the report needs to turn requests into images, audio seconds or tokens."""
    info: dict[str, dict[str, Any]] = {}
    for capability in config.capabilities:
        facts = protocol_for(capability.kind).describe(capability, config.assets_path)
        info[capability.name] = {"kind": capability.kind, **facts}
    return info


def cycle_grace_s(config: RunConfig) -> float:
    """How long the last cycle's requests may take: the longest request timeout."""
    timeouts = [c.request_timeout_s or config.target.request_timeout_s for c in config.capabilities]
    return max(timeouts, default=config.target.request_timeout_s)


def bootstrap(namespace: dict[str, Any]) -> InferswarmPlugin:
    """Populate a locustfile's namespace from the run config; exit 2 with one line on a bad config."""
    path = config_path_from(sys.argv[1:], os.environ)
    if path is None:
        fail(f"no run config: pass {CONFIG_ARG} FILE or set {CONFIG_ENV}")
        raise AssertionError("unreachable")
    try:
        config = with_extra_agents(load_config(path), os.environ.get(AGENTS_ENV))
        config = with_load_override(config, os.environ.get(LOAD_ENV))
        secrets = resolve_secret_headers(config)
    except ConfigError as exc:
        fail(exc.one_line())
        raise AssertionError("unreachable") from exc
    for user_class in build_user_classes(config, secrets):
        namespace[user_class.__name__] = user_class
    shape = shape_class_for(config.load, cycle_grace_s(config))
    namespace[shape.__name__] = shape
    plugin = InferswarmPlugin(config, secrets)
    locust_csv.install()
    events.init_command_line_parser.add_listener(plugin.add_arguments)
    events.init.add_listener(plugin.on_init)
    return plugin
