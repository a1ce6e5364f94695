"""The results history database: its schema, how a URL becomes a connection, and the
series the trends report reads.

Any SQLAlchemy URL names the database; SQLite (one file, the default
``<--out>/history.db``) and PostgreSQL (a team's shared server) are supported and tested.
The schema is created and upgraded by the Alembic migrations in ``migrations/`` whenever
a database is opened, so a history written by an older xfbench is brought up to date in
place, its data kept. A database this xfbench cannot vouch for is refused and left
untouched: one written by a newer xfbench (an Alembic revision it does not know), or one
that holds tables but no ``alembic_version`` (not a history at all).

Every failure is a :class:`HistoryError` whose message names the problem and the fix;
passwords in URLs are never printed (:func:`display_url`). Opening is bounded in time: a
PostgreSQL server that does not answer fails after ``CONNECT_TIMEOUT_S`` seconds, a
SQLite file locked by another writer after ``SQLITE_BUSY_TIMEOUT_S``.

Tables (the head revision; ``migrations/versions/`` builds them):

- ``runs``: one row per run folder, keyed by the run's name (``20261126-042912-vm-cpu``);
  its machine, mode, start, commit and the commit's time, the whole fingerprint;
- ``cases``: one row per case of a run (summary.csv's identity and context columns);
- ``measurements``: one row per statistic of a case that summary.csv gives a value
  (``p50_ms`` with its 95% interval, ``throughput_sps`` with its own, percentiles,
  memory, cold-start parts); an empty cell is no row;
- ``models``: models.csv's rows (accuracy, parity, FLOPs, ...).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from bench.history import (  # defined there, free of SQLAlchemy; used as db's
    SERIES_COLUMNS,
    HistoryError,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The environment variable naming the history database when ``--db`` does not.
ENV_VAR = "XFBENCH_DB"
#: The default database: this file in the run folders' folder (``--out``).
DEFAULT_FILE = "history.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Seconds a PostgreSQL connection may take before it fails.
CONNECT_TIMEOUT_S = 5
#: Seconds a SQLite statement waits for another process's write to finish.
SQLITE_BUSY_TIMEOUT_S = 30
#: PostgreSQL advisory lock held while the schema is created or upgraded, so two
#: xfbench processes opening a new database at once do not both create it.
_MIGRATION_LOCK_KEY = 0x7866_6265_6E63_6801
VERSION_TABLE = "alembic_version"
SUPPORTED = "sqlite:///PATH/history.db or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("device_label", sa.Text),  # cpu | gpu, as in the run folder's name
    sa.Column("mode", sa.Text),  # quick | full
    sa.Column("started_at", sa.DateTime(timezone=True)),  # UTC
    sa.Column("elapsed_s", sa.Float),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("commit", sa.Text),
    sa.Column("commit_time", sa.DateTime(timezone=True)),  # UTC: the committer date
    sa.Column("commit_time_source", sa.Text),  # fingerprint | git | run start
    sa.Column("dirty", sa.Boolean),
    sa.Column("python", sa.Text),
    sa.Column("os", sa.Text),
    sa.Column("cpu_model", sa.Text),
    sa.Column("gpus", sa.Text),  # JSON
    sa.Column("options", sa.Text),  # JSON
    sa.Column("fingerprint", sa.Text, nullable=False),  # fingerprint.json as written
    sa.Column("fingerprint_sha256", sa.Text, nullable=False),
    sa.Column("source_path", sa.Text),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("xfbench_version", sa.Text),  # of the xfbench that added the run
    # Revision 0002: why a person took the run out of the trends (NULL: it counts).
    sa.Column("excluded_reason", sa.Text),
)
sa.Index("ix_runs_host_device_commit", runs.c.host, runs.c.device_label, runs.c.commit_time)

#: summary.csv's identity and context columns, stored per case: (name, type).
CASE_FIELDS: tuple[tuple[str, type], ...] = (
    ("host", str),
    ("device", str),
    ("device_name", str),
    ("framework", str),
    ("model", str),
    ("runtime", str),
    ("exporter", str),
    ("phase", str),
    ("batch_size", int),
    ("threads", int),
    ("processes", int),
    ("rounds", int),
    ("calls_per_round", int),
    ("status", str),
    ("reason", str),
    ("unstable", bool),
    ("busy", bool),
    ("other_cpus", float),
    ("steal_cpus", float),
)
_SQL_TYPES = {str: sa.Text, int: sa.Integer, bool: sa.Boolean, float: sa.Float}

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("case_id", sa.Text, nullable=False),
    *(sa.Column(name, _SQL_TYPES[kind], nullable=name != "status") for name, kind in CASE_FIELDS),
    sa.UniqueConstraint("run_id", "case_id", name="uq_cases_run_case"),
)
sa.Index("ix_cases_host_device_case", cases.c.host, cases.c.device, cases.c.case_id)

#: summary.csv's statistics, one measurements row each: statistic -> (value column,
#: interval low column, interval high column).
STATISTICS: dict[str, tuple[str, str | None, str | None]] = {
    "p50_ms": ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"),
    "throughput_sps": ("throughput_sps", "throughput_ci_low_sps", "throughput_ci_high_sps"),
    **{
        name: (name, None, None)
        for name in (
            "spread_pct",
            "p25_ms",
            "p75_ms",
            "p90_ms",
            "p99_ms",
            "iqr_ms",
            "mean_ms",
            "min_ms",
            "max_ms",
            "peak_rss_mb",
            "peak_device_mb",
            "import_ms",
            "load_ms",
            "first_call_ms",
            "process_ms",
            "rss_increase_mb",
        )
    },
}

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column(
        "case_pk", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("statistic", sa.Text, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
)

#: models.csv's columns after run: (name, type).
MODEL_FIELDS: tuple[tuple[str, type], ...] = (
    ("host", str),
    ("framework", str),
    ("model", str),
    ("parameters", int),
    ("test_accuracy", float),
    ("quality", str),
    ("time_to_accuracy_s", float),
    ("train_seconds", float),
    ("exporter", str),
    ("onnx_opset", int),
    ("onnx_nodes", int),
    ("onnx_parity_max_abs_diff", float),
    ("reference_max_abs_diff", float),
    ("initializers_stripped", int),
    ("flops_per_sample", int),
    ("op_histogram", str),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column(
        "run_id",
        sa.Text,
        sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("framework", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    *(
        sa.Column(name, sa.BigInteger if kind is int else _SQL_TYPES[kind])
        for name, kind in MODEL_FIELDS
        if name not in ("framework", "model")
    ),
)

TABLES = ("runs", "cases", "measurements", "models")


# --- URLs and connections ----------------------------------------------------------


def display_url(url: str | URL) -> str:
    """The URL as it may be printed: its password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<an unreadable URL>"


def default_url(out: Path) -> URL:
    """``sqlite:///<out>/history.db``, the path absolute."""
    return sa.make_url(f"sqlite:///{(Path(out).resolve() / DEFAULT_FILE).as_posix()}")


def resolve_url(
    db: str | None, out: Path | None = None, *, create_default_folder: bool = False
) -> URL:
    """The history database to use: ``--db`` (``db``), else ``$XFBENCH_DB``, else
    ``sqlite:///<out>/history.db`` (``out`` defaults to ``reports/``).

    With ``create_default_folder``, the default file's folder is created when missing: it
    is the run folders' folder. A folder named by ``--db`` or ``$XFBENCH_DB`` must exist
    (:func:`create_history_engine` says so), since a mistyped path should not start a
    second, empty history somewhere else.
    """
    given = db if db else os.environ.get(ENV_VAR) or None
    if given:
        return parse_url(given, "--db" if db else f"${ENV_VAR}")
    out = Path("reports") if out is None else Path(out)
    if create_default_folder:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"cannot create {out} for the history database ({exc.strerror or exc}); "
                f"choose another --out, or name a database with --db or ${ENV_VAR}"
            ) from None
    return default_url(out)


def parse_url(text: str | URL, where: str = "--db") -> URL:
    """``text`` as a URL of a supported database, or a :class:`HistoryError` saying what
    is wrong with it. ``postgresql://`` (no driver named) means psycopg 3, the driver the
    ``history`` extra installs, where SQLAlchemy alone would pick psycopg2."""
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        shown = str(text)
        shown = re.sub(r":[^:@/]+@", ":***@", shown)  # user:password@ as typed
        raise HistoryError(f"{where}: {shown!r} is not a database URL; write {SUPPORTED}") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise HistoryError(
            f"{where}: {display_url(url)} is a {backend} database; the results history "
            f"supports SQLite and PostgreSQL: write {SUPPORTED}"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def create_history_engine(target: str | URL) -> Engine:
    """An engine for ``target`` with bounded waits, without connecting yet.

    SQLite: the file's folder must exist; foreign keys are enforced, and every
    transaction begins with ``BEGIN IMMEDIATE`` (reads: ``DEFERRED``) so that two
    processes writing at once take turns instead of one failing on a stale read.
    PostgreSQL: connections fail after ``CONNECT_TIMEOUT_S`` seconds.
    """
    url = parse_url(target)
    shown = display_url(url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if not path or path == ":memory:" or url.query.get("mode") == "memory":
            raise HistoryError(
                f"{shown} is an in-memory SQLite database, gone when xfbench exits; name a "
                "file: sqlite:///PATH/history.db"
            )
        folder = Path(path).expanduser().parent
        if not folder.is_dir():
            absolute = Path("/" + path)
            if not Path(path).is_absolute() and absolute.parent.is_dir():
                # sqlite:///tmp/x.db is tmp/x.db under the current folder: a slash short.
                raise HistoryError(
                    f"the folder of the history database {shown} does not exist ({folder}, "
                    "under the current folder: three slashes name a relative path); for "
                    f"{absolute} write four: sqlite:///{absolute}"
                )
            raise HistoryError(
                f"the folder of the history database {shown} does not exist ({folder}); "
                "create it, or correct --db / $XFBENCH_DB"
            )
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        connect_args = {}
        if url.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
    except ImportError as exc:  # the DBAPI module (psycopg, psycopg2, ...) is missing
        raise HistoryError(
            f"the database driver for {shown} is not installed ({exc}); install it: "
            "pip install 'psycopg[binary]' (or the project's history extra: pip install -e "
            "'.[history]')"
        ) from None
    except sa.exc.NoSuchModuleError:
        raise HistoryError(
            f"SQLAlchemy knows no database driver {url.drivername!r} ({shown}); write {SUPPORTED}"
        ) from None
    if url.get_backend_name() == "sqlite":
        _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Foreign keys on, and transactions begun by us (pysqlite's own begin is deferred
    and late, which lets two writers read, then deadlock on the upgrade to a write)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("xfbench_sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _reading(conn: Connection) -> Connection:
    """``conn`` for a read-only transaction (SQLite: no write lock taken)."""
    return conn.execution_options(xfbench_sqlite_begin="DEFERRED")


def driver_message(exc: BaseException, url: URL | None = None) -> str:
    """The database driver's own words for ``exc``, on one line, without the password."""
    orig = getattr(exc, "orig", None) or exc
    # One line: the driver's lines joined as sentences ("refused. Is the server ...").
    lines = [" ".join(line.split()) for line in str(orig).splitlines() if line.strip()]
    text = ". ".join(line.rstrip(".") for line in lines) or type(orig).__name__
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def _unreachable(url: URL, exc: BaseException) -> HistoryError:
    shown = display_url(url)
    if url.get_backend_name() == "sqlite":
        fix = (
            "is it a SQLite file, readable and writable by you? Correct --db / "
            f"${ENV_VAR}, or unset both for the default file <--out>/{DEFAULT_FILE}"
        )
    else:
        fix = (
            "is the server running and reachable, and are the user, password and database "
            f"right? Check --db / ${ENV_VAR}, or unset both to use the default SQLite file "
            f"<--out>/{DEFAULT_FILE}"
        )
    return HistoryError(
        f"cannot open the results history {shown}: {driver_message(exc, url)}; {fix}"
    )


# --- the schema's revision ----------------------------------------------------------


def _alembic_config(conn: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.set_main_option("version_table", VERSION_TABLE)
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@functools.cache
def known_revisions() -> tuple[str, ...]:
    """The schema revisions this xfbench knows, oldest first (``0001``, ``0002``, ...)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return tuple(reversed([s.revision for s in script.walk_revisions()]))


def head_revision() -> str:
    """The newest schema revision: the one this xfbench writes."""
    return known_revisions()[-1]


def database_revision(conn: Connection) -> tuple[str | None, list[str]]:
    """(the database's Alembic revision or None, its tables)."""
    tables = sa.inspect(conn).get_table_names()
    if VERSION_TABLE not in tables:
        return None, tables
    revisions = [r for (r,) in conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    if len(revisions) > 1:
        return ",".join(sorted(revisions)), tables
    return (revisions[0] if revisions else None), tables


def _verdict(url: URL, revision: str | None, tables: list[str], create: bool) -> str:
    """``"current"``, ``"upgrade"`` or ``"create"``, or a :class:`HistoryError` for a
    database this xfbench must not touch."""
    shown = display_url(url)
    others = [t for t in tables if t != VERSION_TABLE]
    if revision is None:
        if others:
            raise HistoryError(
                f"{shown} holds tables ({', '.join(sorted(others)[:5])}"
                f"{', ...' if len(others) > 5 else ''}) but no {VERSION_TABLE}: it is not "
                "an xfbench results history, and xfbench leaves it untouched; point --db / "
                f"${ENV_VAR} at an empty database or at an xfbench history"
            )
        if not create:
            raise HistoryError(
                f"the results history {shown} is empty: add runs to it first with "
                "`xfbench history ingest RUN ...` (with the same --db), or point --db / "
                f"${ENV_VAR} at the history you mean"
            )
        return "create"
    if revision not in known_revisions():
        raise HistoryError(
            f"the results history {shown} is at schema revision {revision}, which this "
            f"xfbench does not know (the newest it knows is {head_revision()}): it was "
            "written by a newer xfbench, and is left untouched; upgrade xfbench (git pull; "
            f"pip install -e '.[history]'), or point --db / ${ENV_VAR} at another database"
        )
    return "current" if revision == head_revision() else "upgrade"


def _migrate(conn: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


def open_history(target: str | URL | Engine, *, create: bool = True) -> Engine:
    """An engine on the history ``target``, its schema at the head revision.

    A new database gets the schema (with ``create``; without, an empty or missing one is
    a :class:`HistoryError` saying to ingest runs first); an older revision is upgraded in
    place, in one transaction (PostgreSQL: under an advisory lock; SQLite: under its
    write lock), so two processes never both migrate. Databases not to be touched are
    refused (see :func:`_verdict`). An engine passed in is checked the same way; one made
    here from a URL is the caller's to dispose of (or use :func:`history_engine`).
    """
    engine = target if isinstance(target, Engine) else create_history_engine(target)
    url = engine.url
    try:
        if url.get_backend_name() == "sqlite" and not create:
            path = Path(url.database or "").expanduser()
            if not path.is_file():
                raise HistoryError(
                    f"there is no results history at {display_url(url)} ({path} does not "
                    "exist): add runs with `xfbench history ingest RUN ...`, or point --db / "
                    f"${ENV_VAR} at the history you mean"
                )
        with _reading(engine.connect()) as conn, conn.begin():
            revision, tables = database_revision(conn)
        if _verdict(url, revision, tables, create) == "current":
            return engine
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
            if url.get_backend_name() == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY}
                )
            revision, tables = database_revision(conn)  # again: another process may have won
            if _verdict(url, revision, tables, create) != "current":
                _migrate(conn)
    except HistoryError:
        if engine is not target:
            engine.dispose()
        raise
    except sa.exc.DBAPIError as exc:
        if engine is not target:
            engine.dispose()
        raise _unreachable(url, exc) from None
    return engine


@contextmanager
def history_engine(target: str | URL | Engine, *, create: bool = True) -> Iterator[Engine]:
    """:func:`open_history` as a context: an engine made here is disposed of at the end."""
    engine = open_history(target, create=create)
    try:
        yield engine
    finally:
        if engine is not target:
            engine.dispose()


# --- reading ------------------------------------------------------------------------

_SERIES_ORDER = ["host", "device", "case_id", "commit_time", "run_time"]
_INT_COLUMNS = ("batch_size", "threads", "processes", "rounds")
_FLOAT_COLUMNS = ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms")
_BOOL_COLUMNS = ("complete", "unstable", "busy")
_TIME_COLUMNS = ("commit_time", "run_time")


def _as_list(values: str | Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)


def load_series(
    engine_or_url: str | URL | Engine,
    *,
    host: str | None = None,
    device: str | None = None,
    models: str | Sequence[str] | None = None,
    frameworks: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every measured median of the history, one row per (run, case), for trends.

    Rows: cases with status ``ok`` and a p50 of complete runs that nobody excluded
    (``runs.excluded_reason``), optionally of one ``host``, one ``device`` (``cpu`` or
    ``cuda``; ``gpu`` means ``cuda``), some ``models`` and ``frameworks``. Columns: exactly
    :data:`SERIES_COLUMNS`; ``commit_time`` and ``run_time`` (the run's start) are
    tz-aware UTC timestamps; ``batch_size``, ``threads``, ``processes``, ``rounds`` are
    nullable integers; ``complete``, ``unstable``, ``busy`` are booleans (an unknown flag
    is False). Sorted by host, device, case_id, commit_time, run_time. A history with no
    such row gives an empty frame with these columns; a missing or empty history is a
    :class:`HistoryError` (nothing to read is not an empty trend).
    """
    import pandas as pd

    r, c, m = runs, cases, measurements
    query = (
        sa.select(
            r.c.run_id,
            c.c.host,
            c.c.device,
            c.c.device_name,
            c.c.case_id,
            c.c.framework,
            c.c.model,
            c.c.runtime,
            c.c.exporter,
            c.c.phase,
            c.c.batch_size,
            c.c.threads,
            r.c.commit,
            r.c.commit_time,
            r.c.started_at.label("run_time"),
            r.c.mode,
            r.c.complete,
            c.c.status,
            c.c.processes,
            c.c.rounds,
            m.c.value.label("p50_ms"),
            m.c.ci_low.label("p50_ci_low_ms"),
            m.c.ci_high.label("p50_ci_high_ms"),
            c.c.unstable,
            c.c.busy,
        )
        .select_from(c.join(r, c.c.run_id == r.c.run_id))
        .join(m, sa.and_(m.c.case_pk == c.c.id, m.c.statistic == "p50_ms"))
        .where(r.c.complete.is_(True), c.c.status == "ok", r.c.excluded_reason.is_(None))
    )
    if host is not None:
        query = query.where(c.c.host == host)
    if device is not None:
        query = query.where(c.c.device == ("cuda" if device == "gpu" else device))
    if (wanted := _as_list(models)) is not None:
        query = query.where(c.c.model.in_(wanted))
    if (wanted := _as_list(frameworks)) is not None:
        query = query.where(c.c.framework.in_(wanted))

    with history_engine(engine_or_url, create=False) as engine:
        try:
            with _reading(engine.connect()) as conn, conn.begin():
                rows = conn.execute(query).all()
        except sa.exc.DBAPIError as exc:
            raise _unreachable(engine.url, exc) from None

    frame = pd.DataFrame([tuple(row) for row in rows], columns=SERIES_COLUMNS)
    for col in _TIME_COLUMNS:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in _INT_COLUMNS:
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in _FLOAT_COLUMNS:
        frame[col] = frame[col].astype("float64")
    for col in _BOOL_COLUMNS:
        frame[col] = frame[col].fillna(False).astype(bool)
    return frame.sort_values(_SERIES_ORDER, kind="stable").reset_index(drop=True)
