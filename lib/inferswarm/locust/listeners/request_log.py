"""The per-request log: every request's exact timings, one row each (columns: `inferswarm.rundir`).

Each Locust process that sends requests keeps its rows in one list (`outcome.request_rows`), which its
clients append plain tuples to. Workers ship that list to the master as a custom message (`MESSAGE`) at
least every `SHIP_S` and in pieces of at most `BATCH_ROWS` rows: Locust's own stats report
(`report_to_master`) goes only every 3 s and would carry thousands of rows inside the stats message,
which the master handles as one piece. The owner (the master, or the local runner) writes each batch as
it comes as one record batch of `PREFIX_requests.arrows` (an Arrow IPC stream: a killed run keeps every
batch written) and keeps nothing else; at quit it turns the stream into `PREFIX_requests.parquet`
(`inferswarm.requests_file`).

A worker ships what it has when its users stop (before it tells the master it stopped) and at quit, so
the master holds every row before it writes its last batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from inferswarm.locust.outcome import RequestRow, keep_request_rows
from inferswarm.requests_file import ROW_FIELDS, StreamWriter, batch_of, stream_to_parquet

log = logging.getLogger("inferswarm.request_log")

MESSAGE = "inferswarm_requests"
SHIP_S = 1.0
"""Rows wait at most this long (plus one tick) before they are shipped or written."""
BATCH_ROWS = 5000
"""At most this many rows per message and per record batch; more waiting are shipped at once in pieces."""
TICK_S = 0.25
"""How often the buffer is looked at (so a full batch goes out before `SHIP_S` has passed)."""
LOCAL_NODE = "local"


def columns_of(rows: list[RequestRow]) -> list[tuple[Any, ...]]:
    """Rows transposed into columns (`ROW_FIELDS` order): compact on the wire, direct into Arrow."""
    if not rows:
        return [() for _ in ROW_FIELDS]
    return list(zip(*rows, strict=True))


class RequestLog:
    """This process's request rows: shipped to the master (worker) or written to the run directory
    (owner: pass `stream_path` and `parquet_path`)."""

    def __init__(
        self,
        environment: Environment,
        stream_path: Path | None = None,
        parquet_path: Path | None = None,
    ) -> None:
        self.environment = environment
        self.rows: list[RequestRow] = []
        keep_request_rows(environment, self.rows)
        self.parquet_path = parquet_path
        self.writer = StreamWriter(stream_path) if stream_path is not None else None
        self.shipped = 0
        """Rows this process shipped (worker) or wrote (owner)."""
        self.dropped = 0
        """Rows lost: a master that could not be reached, a batch that could not be written."""
        self._last = time.monotonic()
        self._greenlet: gevent.Greenlet[Any, Any] | None = None
        self._closed = False
        runner = environment.runner
        self._worker = isinstance(runner, WorkerRunner)
        if isinstance(runner, MasterRunner):
            runner.register_message(MESSAGE, self._on_message)
        if self._worker:
            # a worker's users are stopped here, before it tells the master: its last rows go first
            environment.events.test_stop.add_listener(self._on_test_stop)
            environment.events.quit.add_listener(self._on_quit)

    @property
    def node(self) -> str:
        runner = self.environment.runner
        return str(runner.client_id) if isinstance(runner, WorkerRunner) else LOCAL_NODE

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(TICK_S)
            if len(self.rows) >= BATCH_ROWS or time.monotonic() - self._last >= SHIP_S:
                self.flush()

    def flush(self) -> None:
        """Ship (worker) or write (owner) every row waiting, in pieces of at most `BATCH_ROWS`."""
        self._last = time.monotonic()
        if not self.rows:
            return
        waiting = self.rows[:]
        del self.rows[:]  # in place: the clients hold this very list
        for first in range(0, len(waiting), BATCH_ROWS):
            piece = waiting[first : first + BATCH_ROWS]
            if self._worker:
                self._ship(piece)
            else:
                self._write(self.node, columns_of(piece))

    def _ship(self, rows: list[RequestRow]) -> None:
        runner = self.environment.runner
        assert isinstance(runner, WorkerRunner)
        try:
            runner.send_message(MESSAGE, {"columns": columns_of(rows)})
        except Exception as exc:  # the master is gone: nothing is kept, it is said once
            self._lost(len(rows), f"could not ship {len(rows)} request rows to the master: {exc}")
            return
        self.shipped += len(rows)

    def _write(self, node: str, columns: Any) -> None:
        if self.writer is None or self.writer.closed:
            return
        try:
            batch = batch_of(node, columns)
        except (ValueError, TypeError) as exc:
            self._lost(len(columns[0]) if columns else 0, f"request rows from {node} not understood: {exc}")
            return
        try:
            self.writer.write(batch)
        except OSError as exc:  # a full disk: the rows of this batch are lost, the run goes on
            self._lost(batch.num_rows, f"could not write {batch.num_rows} request rows: {exc}")
            return
        self.shipped += batch.num_rows

    def _on_message(self, msg: Any, **_: Any) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
        columns = data.get("columns")
        if isinstance(columns, list | tuple) and columns:
            self._write(str(msg.node_id), columns)

    def _lost(self, rows: int, why: str) -> None:
        if not self.dropped:
            log.warning("request log: %s (further losses are only counted)", why)
        self.dropped += rows

    def _on_test_stop(self, **_: Any) -> None:
        self.flush()

    def _on_quit(self, **_: Any) -> None:
        self.close()

    def close(self) -> bool:
        """Last rows out, the greenlet stopped; the owner's stream closed and turned into Parquet. True
        when the Parquet file is complete and the stream removed. Safe to call twice."""
        if self._closed:
            return False
        self._closed = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self.flush()
        if self.writer is None or self.parquet_path is None:
            return False
        self.writer.close()
        if self.dropped:
            log.warning("request log: %d request rows lost", self.dropped)
        try:
            return stream_to_parquet(self.writer.path, self.parquet_path)
        except (OSError, ValueError) as exc:  # the stream stays: the report reads it instead
            log.warning("request log: %s kept, no Parquet file written: %s", self.writer.path.name, exc)
            return False
