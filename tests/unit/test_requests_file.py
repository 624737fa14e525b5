"""The request log's files: the IPC stream keeps every complete batch when its writer is killed, the
Parquet rewrite is atomic and removes the stream only when it is complete, the reader picks either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inferswarm.requests_file import (
    ROW_FIELDS,
    SCHEMA,
    StreamFile,
    StreamWriter,
    batch_of,
    read_requests,
    stream_to_parquet,
    write_atomic_parquet,
)
from inferswarm.rundir import REQUEST_COLUMNS, RunFiles


def rows(first: int, n: int) -> list[tuple[object, ...]]:
    """`n` rows in ROW_FIELDS order, numbered from `first` (response_ms = the row's number)."""
    return [
        ("cap", 100.0 + i, 100.0 + i, 1.5, float(i), 200, True, "", 10, None, None, None, 64, None)
        for i in range(first, first + n)
    ]


def columns(data: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return list(zip(*data, strict=True))


def write_stream(path: Path, batches: int, per_batch: int) -> list[int]:
    """Write `batches` batches; returns the file's size after each one."""
    writer = StreamWriter(path)
    sizes = []
    for b in range(batches):
        writer.write(batch_of("w1", columns(rows(b * per_batch, per_batch))))
        sizes.append(path.stat().st_size)  # on disk as soon as written: nothing is held back
    writer.close()
    return sizes


def test_the_schema_is_the_run_directory_contract() -> None:
    assert SCHEMA.names == REQUEST_COLUMNS
    assert list(ROW_FIELDS) == [c for c in REQUEST_COLUMNS if c != "node"]
    files = RunFiles(Path("/r"), "p")
    assert files.path("requests") == Path("/r/p_requests.parquet")
    assert files.path("requests_stream") == Path("/r/p_requests.arrows")


def test_a_batch_carries_its_node_and_refuses_what_does_not_fit() -> None:
    batch = batch_of("worker-7", columns(rows(0, 3)))
    assert batch.num_rows == 3 and batch.column("node").to_pylist() == ["worker-7"] * 3
    assert batch.column("response_ms").to_pylist() == [0.0, 1.0, 2.0]
    assert batch.column("ttft_ms").null_count == 3
    with pytest.raises(ValueError):
        batch_of("w", columns(rows(0, 2))[:-1])  # a column short
    with pytest.raises((ValueError, TypeError, pa.ArrowInvalid)):
        batch_of(
            "w",
            [("cap",), (1.0,), (1.0,), (None,), ("slow",), (200,), (True,), ("",), (1,)]
            + [(None,)] * 3
            + [(0,), (None,)],
        )


def test_a_stream_cut_inside_a_batch_keeps_every_complete_batch(tmp_path: Path) -> None:
    path = tmp_path / "locust_requests.arrows"
    sizes = write_stream(path, 3, 400)
    whole = path.read_bytes()
    # killed while the third batch was being written: the file ends somewhere inside it
    path.write_bytes(whole[: (sizes[1] + sizes[2]) // 2])
    reader = StreamFile(path)
    got = list(reader.batches())
    assert reader.cut
    assert [b.num_rows for b in got] == [400, 400]
    assert pa.Table.from_batches(got).column("response_ms").to_pylist() == [float(i) for i in range(800)]

    read = read_requests(tmp_path / "locust_requests.parquet", path, ["capability", "response_ms"])
    assert read is not None and read.source == "stream" and read.cut
    assert read.table.column_names == ["capability", "response_ms"] and read.table.num_rows == 800

    # cut inside its very first bytes: no batch, no crash
    path.write_bytes(whole[:20])
    reader = StreamFile(path)
    assert list(reader.batches()) == [] and reader.cut


def test_a_whole_stream_becomes_parquet_and_goes(tmp_path: Path) -> None:
    stream, parquet = tmp_path / "locust_requests.arrows", tmp_path / "locust_requests.parquet"
    write_stream(stream, 5, 1000)
    assert stream_to_parquet(stream, parquet) is True
    assert not stream.exists() and sorted(p.name for p in tmp_path.iterdir()) == [parquet.name]
    table = pq.read_table(parquet)
    assert table.schema == SCHEMA and table.num_rows == 5000
    assert table.column("response_ms").to_pylist() == [float(i) for i in range(5000)]

    read = read_requests(parquet, stream, ["node", "ok"])
    assert read is not None and read.source == "parquet" and not read.cut
    assert read.table.column_names == ["node", "ok"] and set(read.table.column("node").to_pylist()) == {"w1"}


def test_a_cut_stream_is_converted_but_kept(tmp_path: Path) -> None:
    stream, parquet = tmp_path / "s.arrows", tmp_path / "s.parquet"
    sizes = write_stream(stream, 2, 50)
    stream.write_bytes(stream.read_bytes()[: sizes[1] - 5])
    assert stream_to_parquet(stream, parquet) is False
    assert stream.exists() and pq.read_table(parquet).num_rows == 50


def test_parquet_is_written_in_row_groups_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inferswarm.requests_file as requests_file

    monkeypatch.setattr(requests_file, "ROW_GROUP_ROWS", 1000)
    path = tmp_path / "r.parquet"
    batches = (batch_of("n", columns(rows(i * 300, 300))) for i in range(10))
    assert write_atomic_parquet(batches, path) == 3000
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 3000 and meta.num_row_groups == 3  # 1000 rows each

    def broken() -> object:
        yield batch_of("n", columns(rows(0, 10)))
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic_parquet(broken(), tmp_path / "other.parquet")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]  # no half file, no temporary


def test_no_log_is_none_and_an_empty_one_has_the_schema(tmp_path: Path) -> None:
    stream, parquet = tmp_path / "e.arrows", tmp_path / "e.parquet"
    assert read_requests(parquet, stream, ["ok"]) is None
    StreamWriter(stream).close()
    assert stream_to_parquet(stream, parquet) is True
    table = pq.read_table(parquet)
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_the_writer_does_pyarrows_one_time_setup_before_the_run(tmp_path: Path) -> None:
    # pyarrow imports pandas on its first conversion from Python lists (about 0.2 s). In a Locust
    # process that first conversion was the first batch written, a second into an open-loop run: every
    # send due during it went out late. The writer, made before the test starts, takes that cost.
    script = (
        "import sys; from pathlib import Path\n"
        "from inferswarm.requests_file import StreamWriter\n"
        "assert 'pandas' not in sys.modules, 'imported before the writer: this test proves nothing'\n"
        f"StreamWriter(Path({str(tmp_path / 'x.arrows')!r}))\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
