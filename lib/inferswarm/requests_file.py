"""The request log's files (`PREFIX_requests.arrows` while a run goes on, `PREFIX_requests.parquet` at its
end) and their reader. Columns and types: `inferswarm.rundir.REQUEST_COLUMN_TYPES`.

While the run goes on, the owner appends one Arrow record batch at a time to an IPC *stream* and hands
each to the OS at once, so a run killed at any moment keeps every batch it wrote; a batch cut in the
middle is dropped by the reader, every one before it is read. At a clean end the stream is rewritten as
Parquet (row groups of `ROW_GROUP_ROWS`, zstd) under a temporary name, renamed, and only then removed.

No Locust here: the report reads these files too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from inferswarm.rundir import REQUEST_COLUMN_TYPES

SCHEMA = pa.schema([(name, pa.type_for_alias(alias)) for name, alias in REQUEST_COLUMN_TYPES.items()])
NODE = "node"
ROW_FIELDS = tuple(name for name in REQUEST_COLUMN_TYPES if name != NODE)
"""A row's fields as the client records them (`inferswarm.locust.outcome.RequestRow`): every column but
`node`, which is the same for every row of a process and is added per batch."""
ROW_GROUP_ROWS = 128 * 1024
"""Rows per Parquet row group: what the conversion holds in memory at once (about 10 MB)."""
STREAM_COMPRESSION = "zstd"
"""Each batch's buffers are compressed: an hour at 2,000 requests/s stays tens of MB on disk."""


def batch_of(node: str, columns: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """A record batch from rows transposed into columns (`ROW_FIELDS` order), `node` on every row.
    Raises ValueError (or pyarrow's ArrowInvalid, a ValueError) on columns that do not fit the schema."""
    if len(columns) != len(ROW_FIELDS):
        raise ValueError(f"{len(columns)} columns, expected {len(ROW_FIELDS)}")
    rows = len(columns[0])
    given = iter(columns)
    arrays = [
        pa.array([node] * rows, field.type) if field.name == NODE else pa.array(next(given), field.type)
        for field in SCHEMA
    ]
    if any(len(array) != rows for array in arrays):
        raise ValueError("columns of different lengths")
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


class StreamWriter:
    """Appends record batches to an Arrow IPC stream file; every batch reaches the OS when written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(path), "wb")  # unbuffered: a write is in the OS when it returns
        options = ipc.IpcWriteOptions(compression=STREAM_COMPRESSION)
        self._writer = ipc.new_stream(self._sink, SCHEMA, options=options)
        self.rows = 0
        self.closed = False
        # pyarrow imports pandas on its first conversion from Python lists (about 0.2 s): done here,
        # before the test, it cannot stall the event loop (and every send due meanwhile) mid-run
        batch_of("", [[] for _ in ROW_FIELDS])

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)
            self._sink.flush()
            self.rows += batch.num_rows

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
            self._sink.close()


class StreamFile:
    """Reads a request log's IPC stream batch by batch, tolerating what a killed writer left: iteration
    stops at the first batch cut short (`cut` is then True); a file too short for its schema has none."""

    def __init__(self, path: Path, columns: Sequence[str] | None = None) -> None:
        self.path = path
        self.columns = list(columns) if columns is not None else None
        self.cut = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.path)) as source:
            try:
                reader = ipc.open_stream(source)
            except (pa.ArrowInvalid, OSError):
                self.cut = True  # not even the schema was written whole
                return
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, OSError):  # the writer was killed inside this batch
                    self.cut = True
                    return
                yield batch if self.columns is None else batch.select(self.columns)


def write_atomic_parquet(batches: Iterator[pa.RecordBatch], path: Path) -> int:
    """Write `batches` as `path` (row groups of `ROW_GROUP_ROWS`) under a temporary name, then rename:
    `path` exists only complete. Returns the rows written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(str(tmp), SCHEMA, compression="zstd") as writer:
            pending: list[pa.RecordBatch] = []
            held = 0
            for batch in batches:
                pending.append(batch)
                held += batch.num_rows
                if held >= ROW_GROUP_ROWS:  # whole row groups out, the rest waits for the next batches
                    table = pa.Table.from_batches(pending, SCHEMA)
                    whole = held - held % ROW_GROUP_ROWS
                    writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
                    rest = table.slice(whole)
                    rows, pending, held = rows + whole, rest.to_batches(), rest.num_rows
            if pending or not rows:
                writer.write_table(pa.Table.from_batches(pending, SCHEMA), row_group_size=ROW_GROUP_ROWS)
                rows += held
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return rows


def stream_to_parquet(stream: Path, parquet: Path) -> bool:
    """Rewrite the stream as Parquet; the stream is removed only once the Parquet file is complete, and
    kept when it was cut short (its reader's rows are then in both). True when the stream was removed."""
    source = StreamFile(stream)
    write_atomic_parquet(source.batches(), parquet)
    if source.cut:
        return False
    stream.unlink()
    return True


Source = Literal["parquet", "stream"]


READ_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class RequestsRead:
    """What `read_requests` found: the rows (only the columns asked for) and where they came from."""

    rows: int
    batches: Callable[[], Iterator[pa.RecordBatch]]
    """The rows a batch at a time: a Parquet file is read as it is walked (an hour at 2,000 requests/s
    is 7.2 million rows; reading it whole takes twice its size again in buffers)."""
    source: Source
    path: Path
    schema: pa.Schema
    cut: bool = False
    """The stream ended inside a batch (a killed run): every complete batch before it is in `table`."""

    @property
    def table(self) -> pa.Table:
        """All the rows at once (small logs, tests)."""
        return pa.Table.from_batches(list(self.batches()), self.schema)


def read_requests(parquet: Path, stream: Path, columns: Sequence[str]) -> RequestsRead | None:
    """The request log's `columns`: from the Parquet file when there is one, else from the stream a run
    that did not end cleanly left (batch by batch, each cut down to `columns` as it is read). None
    when neither exists. Raises OSError or ValueError (pyarrow's errors) when the file is unreadable or
    lacks a column."""
    if parquet.is_file():
        # capability and node names are read as dictionaries: their strings would be the largest thing
        # the report holds
        dictionaries = [c for c in ("capability", "node") if c in columns]
        handle = pq.ParquetFile(str(parquet), read_dictionary=dictionaries)
        missing = [c for c in columns if c not in handle.schema_arrow.names]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")

        def walk() -> Iterator[pa.RecordBatch]:
            batches: Iterator[pa.RecordBatch] = handle.iter_batches(
                batch_size=READ_BATCH_ROWS, columns=list(columns)
            )
            return batches

        schema = pa.schema([handle.schema_arrow.field(name) for name in columns])
        return RequestsRead(handle.metadata.num_rows, walk, "parquet", parquet, schema)
    if not stream.is_file():
        return None
    missing = [c for c in columns if c not in SCHEMA.names]
    if missing:
        raise ValueError(f"no column {', '.join(missing)}")
    reader = StreamFile(stream, columns)
    batches = list(reader.batches())
    schema = pa.schema([SCHEMA.field(name) for name in columns])
    rows = sum(batch.num_rows for batch in batches)
    return RequestsRead(rows, lambda: iter(batches), "stream", stream, schema, reader.cut)
