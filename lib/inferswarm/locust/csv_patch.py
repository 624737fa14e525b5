"""Locust's CSV files, made final at the end of a run.

Locust rewrites `_stats.csv`, `_failures.csv` and `_exceptions.csv` from a greenlet once a second and
closes them at shutdown without a last write, so the closed files can miss up to a second: in a
distributed run, exactly the workers' final reports, which arrive while the master stops. The writer
greenlet is never stopped either; when something yields after the close (a master's ZeroMQ teardown),
it wakes on the closed files and prints a traceback. `install()` patches the class (before Locust makes
its writer) so that closing first writes the three files from the final statistics, and so that the
greenlet ends quietly once its files are closed.
"""

from __future__ import annotations

from typing import Any

from locust.stats import StatsCSVFileWriter

_installed = False


def _close_files_after_a_final_write(self: StatsCSVFileWriter) -> None:
    if not self.requests_csv_filehandle.closed:
        for handle, writer, write in (
            (self.requests_csv_filehandle, self.requests_csv_writer, self.requests_csv),
            (self.failures_csv_filehandle, self.failures_csv_writer, self.failures_csv),
            (self.exceptions_csv_filehandle, self.exceptions_csv_writer, self.exceptions_csv),
        ):
            handle.seek(0)
            write(writer)
            handle.truncate()
    _original_close(self)


def _stats_writer_until_closed(self: StatsCSVFileWriter) -> None:
    try:
        _original_writer(self)
    except ValueError:
        if self.requests_csv_filehandle.closed:  # the run is over and its files are final
            return
        raise


_original_close: Any = StatsCSVFileWriter.close_files
_original_writer: Any = StatsCSVFileWriter.stats_writer


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    StatsCSVFileWriter.close_files = _close_files_after_a_final_write  # type: ignore[method-assign]
    StatsCSVFileWriter.stats_writer = _stats_writer_until_closed  # type: ignore[method-assign]
