"""What inferswarm adds to Locust's master/worker mode: one config everywhere, and a record of workers.

Same config: a worker builds its user classes from its own copy of the config (they exist before it
connects), so right after connecting it sends the master a *fingerprint*: digests of the config
sections a worker acts on, of every asset file it sends, of the inferswarm code, and the Locust
version. The master compares it with its own and either welcomes the worker or refuses it, naming what
differs; a refused worker is dropped from the master's pool and exits with code 2.

Master side (`WorkerRegistry`): which workers joined, were refused, left early, or were lost (went
silent: killed, crashed, network gone), with times, kept in run.json under `workers`.

Worker side (`MasterWatch`): a master that stops sending heartbeats (killed, crashed, unreachable)
makes the worker say so and exit with code 1 after `timeout_s`, instead of Locust's silent minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import __version__ as locust_version
from locust.env import Environment
from locust.runners import (
    HEARTBEAT_LIVENESS,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    WORKER_REPORT_INTERVAL,
    MasterRunner,
    WorkerNode,
    WorkerNodes,
    WorkerRunner,
)

import inferswarm
from inferswarm.config import RunConfig
from inferswarm.rundir import iso
from inferswarm.telemetry.samples import node_name

log = logging.getLogger("inferswarm.locust.distributed")

HELLO = "inferswarm_hello"
WELCOME = "inferswarm_welcome"
REFUSED = "inferswarm_refused"
EXIT_REFUSED = 2
EXIT_MASTER_LOST = 1
MASTER_TIMEOUT_S = 15.0
"""Default silence after which a worker gives up on its master (the master beats every second)."""
WATCH_INTERVAL_S = 0.5
HELLO_RETRY_S = 1.0
"""A master registers its handlers a moment after it starts listening: a hello sent in that moment is
dropped (Locust logs "Unknown message type"), so a worker repeats it until the master answers."""

# Read by the master only (it polls remote telemetry, judges and reports); a worker may differ here.
MASTER_ONLY = ("description", "slo", "report", "output", "assets_dir")
MASTER_ONLY_TELEMETRY = ("agents", "prometheus", "gpu_check", "saturation_cpu_pct")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def code_digest(package_dir: Path | None = None) -> str:
    """One digest of every file of the installed inferswarm package (its code and static files)."""
    root = package_dir or Path(inferswarm.__file__).parent
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def fingerprint(config: RunConfig) -> dict[str, Any]:
    """Digests of what decides a worker's requests; equal fingerprints mean identical traffic."""
    data = config.model_dump(mode="json")
    for key in MASTER_ONLY:
        data.pop(key, None)
    telemetry = {k: v for k, v in data.pop("telemetry").items() if k not in MASTER_ONLY_TELEMETRY}
    assets = config.assets_path.resolve()
    files: dict[str, str] = {}
    for cap in config.capabilities:
        for _, path in cap.resolve_paths(assets):
            files[path.relative_to(assets).as_posix() if path.is_relative_to(assets) else path.name] = (
                _file_digest(path)
            )
    return {
        "name": config.name,
        "target": _digest(data["target"]),
        "load": _digest(data["load"]),
        "telemetry": _digest(telemetry),
        "capabilities": {c["name"]: _digest(c) for c in data["capabilities"]},
        "assets": files,
        "inferswarm": inferswarm.__version__,
        "code": code_digest(),
        "locust": locust_version,
    }


def _differences_in(label: str, mine: dict[str, str], theirs: dict[str, str]) -> list[str]:
    out = [f"{label} {k!r} only on the master" for k in sorted(mine.keys() - theirs.keys())]
    out += [f"{label} {k!r} only on the worker" for k in sorted(theirs.keys() - mine.keys())]
    out += [f"{label} {k!r} differs" for k in sorted(mine.keys() & theirs.keys()) if mine[k] != theirs[k]]
    return out


def differences(master: dict[str, Any], worker: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words; empty when they match."""
    out: list[str] = []
    for key, what in (("inferswarm", "inferswarm version"), ("locust", "Locust version")):
        if master.get(key) != worker.get(key):
            out.append(f"{what}: master {master.get(key)}, worker {worker.get(key)}")
    if master.get("code") != worker.get("code") and master.get("inferswarm") == worker.get("inferswarm"):
        out.append(f"inferswarm code: master {master.get('code')}, worker {worker.get('code')}")
    if master.get("name") != worker.get("name"):
        out.append(f"config name: master {master.get('name')!r}, worker {worker.get('name')!r}")
    for key in ("target", "load", "telemetry"):
        if master.get(key) != worker.get(key):
            out.append(f"config section {key!r} differs")
    out += _differences_in("capability", master.get("capabilities") or {}, worker.get("capabilities") or {})
    out += _differences_in("asset", master.get("assets") or {}, worker.get("assets") or {})
    return out


class _VettedNodes(WorkerNodes):
    """Locust's worker pool, in which a worker whose fingerprint is unchecked, or was refused, is never
    ready.

    Locust adds a connecting worker to its pool right after `worker_connect` fires, and a headless
    master starts once enough workers are ready: between the two, a worker that is about to be refused
    could be counted, and so could a refused worker whose repeated `client_ready` (Locust's connect
    retry, after a slow ack) re-adds it. The run would then start without the workers it waited for,
    and end before they connect. Such workers are also taken out of the pool (`WorkerRegistry._hold`);
    this closes the moment before that.
    """

    def __init__(self, nodes: WorkerNodes, pending: set[str], refused: set[str]) -> None:
        super().__init__()
        self._worker_nodes = nodes._worker_nodes
        self._pending = pending
        self._refused = refused

    def get_by_state(self, state: str) -> list[WorkerNode]:
        return [
            node
            for node in super().get_by_state(state)
            if node.id not in self._pending and node.id not in self._refused
        ]


def _take_out(runner: MasterRunner, client_id: str) -> WorkerNode | None:
    """Remove a worker from Locust's pool (and its user dispatcher); the node, if it was there."""
    client = runner.clients.get(client_id)
    if client is not None:
        del runner.clients[client_id]
        if runner._users_dispatcher is not None:
            runner._users_dispatcher.remove_worker(client)
    return client


class WorkerRegistry:
    """The master's view of its workers; every change is handed to `on_change` (run.json)."""

    def __init__(
        self,
        environment: Environment,
        config: RunConfig,
        on_change: Callable[[dict[str, Any]], None],
        test_start: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.environment = environment
        self.fingerprint = fingerprint(config)
        self.on_change = on_change
        self.test_start = test_start
        self.joined: dict[str, dict[str, Any]] = {}
        self.refused: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self.left: list[dict[str, Any]] = []
        self._last_seen: dict[str, float] = {}
        self._users: dict[str, int] = {}
        self._requests: dict[str, list[int]] = {}
        self._gone: set[str] = set()
        self._refused_ids: set[str] = set()
        self._pending: set[str] = set()
        self._quitting = False
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        runner.register_message(HELLO, self._on_hello)
        runner.clients = _VettedNodes(runner.clients, self._pending, self._refused_ids)
        events = self.environment.events
        events.worker_connect.add_listener(self._on_connect)
        events.heartbeat_sent.add_listener(self._on_heartbeat)
        events.worker_report.add_listener(self._on_report)
        events.quitting.add_listener(self._on_quitting)
        # Workers can connect before this registry starts: Locust's master listens from its creation,
        # and the workers `--processes` forks connect at once. Unvetted, such a worker took users before
        # its hello was answered, and the requests it reported meanwhile were missing from its count.
        for node in list(runner.clients.all):
            self._on_connect(node.id)
        self._greenlet = gevent.spawn(self._watch)

    def summary(self) -> dict[str, Any]:
        joined = [
            {**w, "requests": self._requests.get(i, [0, 0])[0], "failures": self._requests.get(i, [0, 0])[1]}
            for i, w in self.joined.items()
        ]
        return {
            "fingerprint": self.fingerprint,
            "report_interval_s": WORKER_REPORT_INTERVAL,
            "joined": joined,
            "refused": self.refused,
            "lost": self.lost,
            "left": self.left,
        }

    def _elapsed(self, epoch_s: float) -> float | None:
        start = self.test_start()
        return round(epoch_s - start, 3) if start is not None else None

    def _on_connect(self, client_id: str, **_: Any) -> None:
        # Locust counts a worker as ready the moment it connects; hold it out of the pool until its
        # fingerprint has been checked, so a headless master never starts with a worker it will refuse.
        if client_id in self._refused_ids:  # a refused worker connecting again stays out
            gevent.spawn(_take_out, self.environment.runner, client_id)
        elif client_id not in self.joined and client_id not in self._gone:
            self._pending.add(client_id)
            gevent.spawn(self._hold, client_id)  # after Locust has added the node

    def _hold(self, client_id: str) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        if client_id in self._pending:  # else its hello was answered already
            _take_out(runner, client_id)

    def _admit(self, runner: MasterRunner, client_id: str) -> None:
        """Put a held worker (back) into Locust's pool, as Locust does for a new worker."""
        self._pending.discard(client_id)
        if client_id in runner.clients:
            return
        runner.clients[client_id] = WorkerNode(client_id, heartbeat_liveness=HEARTBEAT_LIVENESS)
        if runner._users_dispatcher is not None:
            runner._users_dispatcher.add_worker(worker_node=runner.clients[client_id])
            if runner.state == STATE_RUNNING and not runner._users_dispatcher.dispatch_in_progress:
                runner.start(runner.target_user_count, runner.spawn_rate)

    def _on_hello(self, msg: Any, **_: Any) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        client_id = str(msg.node_id)
        data = msg.data if isinstance(msg.data, dict) else {}
        now = time.time()
        who = {
            "id": client_id,
            "node": data.get("node"),
            "hostname": data.get("hostname"),
            "pid": data.get("pid"),
        }
        if client_id in self.joined:  # a repeated hello: our answer was still on its way
            runner.send_message(WELCOME, {"code": self.fingerprint["code"]}, client_id=client_id)
            return
        problems = differences(self.fingerprint, data.get("fingerprint") or {})
        if problems and client_id in self._gone:
            runner.send_message(REFUSED, {"problems": problems}, client_id=client_id)
            return
        if problems:
            self._pending.discard(client_id)
            self._refuse(runner, client_id, who, problems, now)
            return
        self._admit(runner, client_id)
        self.joined[client_id] = {
            **who,
            "index": runner.get_worker_index(client_id),
            "joined_at": iso(now),
            "joined_epoch_s": round(now, 3),
        }
        runner.send_message(WELCOME, {"code": self.fingerprint["code"]}, client_id=client_id)
        log.info("worker %s (%s) joined with the master's config and version", who["node"], client_id)
        self.on_change(self.summary())

    def _refuse(
        self, runner: MasterRunner, client_id: str, who: dict[str, Any], problems: list[str], now: float
    ) -> None:
        # Out of the pool before it takes users; Locust moves any it already had to the others.
        client = _take_out(runner, client_id)
        self._gone.add(client_id)
        self._refused_ids.add(client_id)
        runner.send_message(REFUSED, {"problems": problems}, client_id=client_id)
        self.refused.append({**who, "at": iso(now), "epoch_s": round(now, 3), "problems": problems})
        log.error("refused worker %s (%s): %s", who["node"], client_id, "; ".join(problems))
        self.on_change(self.summary())
        if client is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING) and runner.worker_count:
            runner.start(runner.target_user_count, runner.spawn_rate)

    def _on_heartbeat(self, client_id: str, timestamp: float, **_: Any) -> None:
        self._last_seen[client_id] = timestamp

    def _on_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if isinstance(data.get("user_count"), int):
            self._users[client_id] = data["user_count"]
        # What this worker's reports added to the master's Aggregated row (derived entries are not in it).
        total = data.get("stats_total")
        if isinstance(total, dict) and client_id in self.joined:
            counts = self._requests.setdefault(client_id, [0, 0])
            counts[0] += int(total.get("num_requests") or 0)
            counts[1] += int(total.get("num_failures") or 0)

    def _on_quitting(self, **_: Any) -> None:
        self._quitting = True  # workers leaving now are the normal end, not a loss
        self._check()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _watch(self) -> None:
        while True:
            gevent.sleep(WATCH_INTERVAL_S)
            try:
                self._check()
            except Exception:  # the record must never take the run down
                log.exception("worker registry check failed")

    def _check(self) -> None:
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        now = time.time()
        changed = False
        present = {c.id: c for c in runner.clients.all}
        for client_id, entry in self.joined.items():
            if client_id in self._gone:
                continue
            client = present.get(client_id)
            if client is not None and client.state == STATE_MISSING:
                last_seen = self._last_seen.get(client_id, entry["joined_epoch_s"])
                self.lost.append(self._gone_entry(entry, now, last_seen))
                log.warning(
                    "lost worker %s (%s): no heartbeat since %s; the run goes on with %d worker(s)",
                    entry["node"],
                    client_id,
                    iso(last_seen),
                    runner.worker_count,
                )
            elif client is None and not self._quitting and runner.state in (STATE_RUNNING, STATE_SPAWNING):
                self.left.append(self._gone_entry(entry, now, self._last_seen.get(client_id, now)))
                log.warning("worker %s (%s) quit during the run", entry["node"], client_id)
            else:
                continue
            self._gone.add(client_id)
            changed = True
        if changed:
            self.on_change(self.summary())

    def _gone_entry(self, entry: dict[str, Any], now: float, last_seen: float) -> dict[str, Any]:
        return {
            "id": entry["id"],
            "index": entry["index"],
            "node": entry["node"],
            "pid": entry["pid"],
            "last_seen_at": iso(last_seen),
            "last_seen_epoch_s": round(last_seen, 3),
            "detected_at": iso(now),
            "detected_epoch_s": round(now, 3),
            "t_s": self._elapsed(last_seen),
            "users": self._users.get(entry["id"]),
        }


class MasterWatch:
    """A worker's side: introduce itself, obey a refusal, and leave when the master goes silent."""

    def __init__(self, environment: Environment, config: RunConfig, timeout_s: float = MASTER_TIMEOUT_S):
        self.environment = environment
        self.config = config
        self.timeout_s = timeout_s
        self._connected_at = time.time()
        self._answered = gevent.event.Event()

    def start(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        runner.register_message(WELCOME, self._on_welcome)
        runner.register_message(REFUSED, self._on_refused)
        hello = {
            "fingerprint": fingerprint(self.config),
            "node": node_name("worker"),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }
        gevent.spawn(self._introduce, hello)
        gevent.spawn(self._watch)

    def _introduce(self, hello: dict[str, Any]) -> None:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        while not self._answered.is_set():
            runner.send_message(HELLO, hello)
            self._answered.wait(HELLO_RETRY_S)

    def _master(self) -> str:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        return f"{runner.master_host}:{runner.master_port}"

    def _on_welcome(self, **_: Any) -> None:
        if self._answered.is_set():
            return
        self._answered.set()
        log.info("the master at %s accepted this worker (same config and version)", self._master())

    def _on_refused(self, msg: Any, **_: Any) -> None:
        if self._answered.is_set():
            return
        self._answered.set()
        problems = (msg.data or {}).get("problems") or ["no reason given"]
        log.error(
            "the master at %s refused this worker: %s. Start every worker with the master's config file, "
            "assets and inferswarm version.",
            self._master(),
            "; ".join(problems),
        )
        self._leave(EXIT_REFUSED)

    def _watch(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        while True:
            gevent.sleep(WATCH_INTERVAL_S)
            last = runner.last_heartbeat_timestamp or self._connected_at
            silent = time.time() - last
            if silent > self.timeout_s:
                log.error(
                    "no heartbeat from the master at %s for %.0f s (it stopped, crashed or is unreachable); "
                    "this worker exits. Results are written by the master only.",
                    self._master(),
                    silent,
                )
                self._leave(EXIT_MASTER_LOST)
                return

    def _leave(self, code: int) -> None:
        self.environment.process_exit_code = code
        runner = self.environment.runner
        if runner is not None:
            gevent.spawn(runner.quit)
