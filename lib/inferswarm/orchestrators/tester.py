"""One orchestrator-matrix run: discover, pin each orchestrator in turn, run its jobs, post its stats.

The run directory is written as the run goes (discovery first, then a job row per job and a stat row per
cell as each ends), so a stop at any moment leaves everything done so far on disk, and run.json always
ends with a status. A stop (SIGTERM, SIGINT, SIGHUP) lets the job in flight finish, its cell's stat be
made and posted, then ends the run as `stopped`: no job or stat is lost, none is left half-made.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferswarm.orchestrators.config import OrchestratorsConfig, redact
from inferswarm.orchestrators.discovery import Cell, Discovery, DiscoveryError, discover, plan_cells
from inferswarm.orchestrators.jobs import JobResult, run_job
from inferswarm.orchestrators.leaderboard import Poster, PostOutcome, make_stat, stat_row
from inferswarm.orchestrators.load_step import LoadResult, load_row, run_load_step
from inferswarm.orchestrators.webhook import Webhook
from inferswarm.protocols import protocol_for
from inferswarm.rundir import (
    ORCH_DISCOVERY,
    ORCH_JOB_COLUMNS,
    ORCH_JOBS_CSV,
    ORCH_KIND,
    ORCH_LOAD_COLUMNS,
    ORCH_LOAD_CSV,
    ORCH_STAT_COLUMNS,
    ORCH_STATS_CSV,
    ORCH_STATS_JSONL,
    RUN_JSON,
    CsvAppender,
    end_fields,
    iso,
    make_run_dir,
    opening_fields,
    scrub,
    write_json_atomic,
)
from inferswarm.secrets import Scrubber

EXIT_OK, EXIT_POST_FAILED, EXIT_BAD_INPUT, EXIT_NO_MEASUREMENT = 0, 1, 2, 4


@dataclass(frozen=True)
class Secrets:
    token: str | None
    leaderboard: str | None

    def values(self) -> list[str]:
        return [v for v in (self.token, self.leaderboard) if v]


def resolve_secrets(config: OrchestratorsConfig, environ: dict[str, str] | None = None) -> Secrets:
    """The secrets from their environment variables; ValueError (one line) when a required one is unset."""
    env = os.environ if environ is None else environ
    token = env.get(config.gateway.token_env or "", "") or None
    if config.gateway.token_required and token is None:
        raise ValueError(f"gateway.token_env: environment variable {config.gateway.token_env} is not set")
    secret = env.get(config.leaderboard.secret_env, "") or None
    if config.leaderboard.posts and secret is None:
        raise ValueError(
            f"leaderboard.secret_env: environment variable {config.leaderboard.secret_env} is not set "
            "(the leaderboard refuses unsigned stats; --dry-run writes them without posting)"
        )
    return Secrets(token, secret)


@dataclass
class Tally:
    orchestrators: set[str] = field(default_factory=set)
    cells: int = 0
    jobs: int = 0
    successes: int = 0
    posted: int = 0
    failed: int = 0

    def summary(self, dry_run: bool) -> dict[str, Any]:
        return {
            "orchestrators": len(self.orchestrators),
            "cells": self.cells,
            "jobs": self.jobs,
            "successes": self.successes,
            "stats_posted": self.posted,
            "stats_failed": self.failed,
            "dry_run": dry_run,
        }


class MatrixRun:
    """One run into one run directory. `run()` returns the exit code."""

    def __init__(
        self,
        config: OrchestratorsConfig,
        secrets: Secrets,
        out: Path,
        stop: threading.Event,
        webhook: Webhook | None = None,
        log: Callable[[str], None] | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.environ = environ
        """The environment of a load step's `inferswarm run` (None: this process's)."""
        self.secrets = secrets
        self.stop = stop
        self.webhook = webhook
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.scrub = Scrubber(secrets.values())
        self.run_dir = make_run_dir(out, config.name)
        self.tally = Tally()
        self.poster = Poster(config.leaderboard, secrets.leaderboard, stop)
        self.record = opening_fields(
            config.name, config.description, config.source, config.model_dump(mode="json"), secrets.values()
        )
        self.record.update(
            kind=ORCH_KIND,
            region=config.region,
            gateway={"url": config.gateway.url, "cli_url": config.gateway.discovery_url},
            leaderboard=config.leaderboard.url,
            webhook=webhook.url if webhook else None,
            summary=self.tally.summary(not config.leaderboard.posts),
        )

    def _save(self, **fields: Any) -> None:
        self.record.update(fields)
        write_json_atomic(self.run_dir / RUN_JSON, scrub(self.record, self.scrub))

    def run(self) -> int:
        now = time.time()
        self._save(started_at=iso(now), start_epoch_s=round(now, 3))
        code, status, reason = EXIT_OK, "complete", ""
        try:
            code, reason = self._run()
        except BaseException as exc:  # the record must end with a status whatever happened
            code, status, reason = EXIT_POST_FAILED, "failed", f"{type(exc).__name__}: {exc}"
            self._end(status, code, reason)
            raise
        if self.stop.is_set():
            status = "stopped"
        elif code == EXIT_NO_MEASUREMENT:
            status = "failed"
        self._end(status, code, reason)
        return code

    def _end(self, status: str, code: int, reason: str) -> None:
        self._save(
            **end_fields(self.record, status, code),
            reason=self.scrub(reason) if reason else None,
            summary=self.tally.summary(not self.config.leaderboard.posts),
        )

    def _run(self) -> tuple[int, str]:
        config = self.config
        try:
            found = discover(config)
        except DiscoveryError as exc:
            self.log(f"discovery: {exc}")
            return EXIT_NO_MEASUREMENT, f"discovery: {exc}"
        cells, dropped = plan_cells(config, found)
        self._write_discovery(found, cells, dropped)
        for notice in found.notices:
            self.log(f"discovery: {notice}")
        self.log(
            f"discovery ({found.source}): {len(found.orchestrators)} orchestrators, {len(cells)} cells "
            f"to test ({len(dropped)} filtered out)"
        )
        if not cells:
            return EXIT_NO_MEASUREMENT, "no (orchestrator, pipeline, model) left to test"
        if config.leaderboard.posts:
            problem = self.poster.check_region(config.region)
            if problem:
                self.log(f"leaderboard: {problem}")
                return EXIT_POST_FAILED, f"leaderboard: {problem}"
        if self.webhook is not None:
            self.webhook.set_all([o.service_uri for o in found.orchestrators if o.service_uri])
        jobs_csv = CsvAppender(self.run_dir / ORCH_JOBS_CSV, ORCH_JOB_COLUMNS)
        stats_csv = CsvAppender(self.run_dir / ORCH_STATS_CSV, ORCH_STAT_COLUMNS)
        self._save(
            files={
                "discovery": ORCH_DISCOVERY,
                "jobs": ORCH_JOBS_CSV,
                "stats": ORCH_STATS_CSV,
                "stats_jsonl": ORCH_STATS_JSONL,
            }
        )
        try:
            with (self.run_dir / ORCH_STATS_JSONL).open("ab") as jsonl:
                self._run_cells(cells, jobs_csv, stats_csv, jsonl)
        finally:
            jobs_csv.close()
            stats_csv.close()
            if self.webhook is not None:
                self.webhook.pin(None)
        return (EXIT_POST_FAILED, "some stats were not posted") if self.tally.failed else (EXIT_OK, "")

    def _write_discovery(self, found: Discovery, cells: list[Cell], dropped: list[dict[str, str]]) -> None:
        document = {
            "source": found.source,
            "gateway": redact(self.config.gateway.discovery_url),
            "orchestrators": [o.as_json() for o in found.orchestrators],
            "notices": found.notices,
            "cells": [
                {
                    "orchestrator": c.orchestrator,
                    "service_uri": c.service_uri,
                    "pipeline": c.pipeline,
                    "model": c.model,
                    "warm": c.warm,
                }
                for c in cells
            ],
            "filtered_out": dropped,
        }
        write_json_atomic(self.run_dir / ORCH_DISCOVERY, scrub(document, self.scrub))

    def _pin(self, cell: Cell) -> bool:
        """Point the gateway at the cell's orchestrator; False when it did not pick the change up."""
        if self.webhook is None:
            return True
        self.webhook.pin(cell.service_uri)
        hook = self.config.webhook
        if hook.wait_for_poll and not self.webhook.wait_for_fetch(hook.poll_timeout_s, self.stop):
            if not self.stop.is_set():
                self.log(
                    f"{cell.orchestrator}: the gateway did not fetch the webhook within "
                    f"{hook.poll_timeout_s:g} s; its cells are tested anyway and may be misattributed"
                )
            return False
        if hook.settle_s:
            self.stop.wait(hook.settle_s)
        return True

    def _job_url(self, cell: Cell) -> str:
        return self.config.gateway.orchestrator_urls.get(cell.orchestrator, self.config.gateway.url)

    def _run_cells(
        self, cells: list[Cell], jobs_csv: CsvAppender, stats_csv: CsvAppender, jsonl: Any
    ) -> None:
        load_csv = CsvAppender(self.run_dir / ORCH_LOAD_CSV, ORCH_LOAD_COLUMNS) if self.config.load else None
        if load_csv is not None:
            self._save(files={**self.record["files"], "load": ORCH_LOAD_CSV})
        try:
            for orchestrator, group in itertools.groupby(cells, key=lambda c: c.orchestrator):
                if self.stop.is_set():
                    break
                own = list(group)
                self.log(f"orchestrator {orchestrator} ({own[0].service_uri or 'no service URI'})")
                self._pin(own[0])
                answered = self._run_jobs(own, jobs_csv, stats_csv, jsonl)
                if load_csv is not None and not self.stop.is_set():
                    self._load(own[0], answered, load_csv)
        finally:
            if load_csv is not None:
                load_csv.close()

    def _load(self, first: Cell, answered: list[Cell], load_csv: CsvAppender) -> None:
        """The orchestrator's load step, still pinned to it, from the cells that answered."""
        if not answered:
            result = LoadResult("skipped", note="no cell answered its test job")
        else:
            self.log(f"  load step: {len(answered)} cells")
            result = run_load_step(
                self.config,
                first.orchestrator,
                answered,
                self._job_url(first),
                self.run_dir,
                self.stop,
                self.environ,
            )
            self.log(
                f"  load step {result.status}: {result.rps} req/s, p95 {result.p95_ms} ms of successes, "
                f"failure ratio {result.failure_ratio} ({result.run_dir}) {result.note}".rstrip()
            )
        load_csv.rows([load_row(first.orchestrator, first.service_uri, answered, self.config, result)])

    def _run_jobs(
        self, cells: list[Cell], jobs_csv: CsvAppender, stats_csv: CsvAppender, jsonl: Any
    ) -> list[Cell]:
        """One orchestrator's cells, each job written as it ends; the cells with a successful job."""
        config = self.config
        protocol = protocol_for("livepeer")
        headers = {"Authorization": f"Bearer {self.secrets.token}"} if self.secrets.token else {}
        answered: list[Cell] = []
        for cell in cells:
            if self.stop.is_set():
                break
            job = config.pipeline(cell.pipeline)
            assert job is not None  # plan_cells keeps only configured pipelines
            capability = job.capability(cell.model)
            request = protocol.prepare(capability, config.assets_path)
            request = type(request)(
                request.method, request.path, {**request.headers, **headers}, request.body
            )
            results: list[JobResult] = []
            for index in range(config.jobs_per_cell):
                if index and self.stop.is_set():
                    break
                result = run_job(
                    cell,
                    index,
                    capability,
                    request,
                    self._job_url(cell),
                    config.gateway.request_timeout_s,
                    self.scrub,
                )
                results.append(result)
                jobs_csv.rows([result.row()])
            self._finish_cell(
                cell, results, capability.request_fields(), job.capture_response, stats_csv, jsonl
            )
            if any(r.ok for r in results):
                answered.append(cell)
        return answered

    def _finish_cell(
        self,
        cell: Cell,
        results: list[JobResult],
        fields: dict[str, Any],
        capture: bool,
        stats_csv: CsvAppender,
        jsonl: Any,
    ) -> None:
        stat = make_stat(self.config.region, results, fields, capture, self.scrub)
        jsonl.write(stat.body + b"\n")
        jsonl.flush()
        outcome: PostOutcome = self.poster.post(stat.body)
        stats_csv.rows([stat_row(stat, cell.service_uri, outcome)])
        tally = self.tally
        tally.orchestrators.add(cell.orchestrator)
        tally.cells += 1
        tally.jobs += stat.jobs
        tally.successes += stat.successes
        tally.posted += outcome.status == "posted"
        tally.failed += outcome.status == "failed"
        rtt = stat.stat["round_trip_time"]
        errors = ", ".join(f"{e['error_code']}x{e['count']}" for e in stat.stat["errors"]) or "-"
        post = outcome.status + (f" ({outcome.error})" if outcome.error else "")
        self.log(
            f"  {cell.pipeline} {cell.model}{'' if cell.warm else ' (cold)'}: "
            f"{stat.successes}/{stat.jobs} ok, rtt {rtt:.3f} s of {stat.rtt_of}, errors {errors}; "
            f"stat {self.scrub(post)}"
        )
        self._save(summary=tally.summary(not self.config.leaderboard.posts))


def stats_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The stats a run made, as posted (for tests and tools)."""
    path = run_dir / ORCH_STATS_JSONL
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
