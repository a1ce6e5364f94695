"""The results history: every finished run in a database (SQLAlchemy; SQLite by default,
PostgreSQL for a team), and the trends and change points over runs drawn from it.

:class:`HistoryError` lives here, free of SQLAlchemy, so that code which only reports
the history's failures (the command line, the after-run hook) can catch it where the
history's packages are not installed.
"""


class HistoryError(Exception):
    """The history database cannot be used as asked. The message names the problem and
    the fix; the command line prints it as one ``xfbench: error:`` line (exit status 2),
    and a benchmark run only warns with it (the run is never lost over its history)."""


#: The columns of :func:`bench.history.db.load_series`, in order: the contract between the
#: database and the trends report (here, so that the trends need no SQLAlchemy).
SERIES_COLUMNS = [
    "run_id", "host", "device", "device_name", "case_id", "framework", "model", "runtime",
    "exporter", "phase", "batch_size", "threads", "commit", "commit_time", "run_time",
    "mode", "complete", "status", "processes", "rounds", "p50_ms", "p50_ci_low_ms",
    "p50_ci_high_ms", "unstable", "busy",
]  # fmt: skip
