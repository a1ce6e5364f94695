"""Adding run folders to the history database.

A run folder's ``summary.csv`` (its cases and their statistics), ``models.csv`` and
``fingerprint.json`` become one ``runs`` row and its ``cases``, ``measurements`` and
``models`` rows, written in one transaction: a run is in the history whole or not at all.
Every file is read and checked before anything is written, so a damaged row names its
file and line and leaves the database as it was.

A run is known by its name: the ``run`` column of its summary.csv, which is the name of
the folder the run was written to (a copy under another name, such as
``reports/reference``, is still that run). Adding a run that is in the history already
writes nothing and says so; a different run under a name the history holds already (a
different fingerprint: another machine's folder of the same name) is refused, never
merged. Two processes adding one run at the same moment leave one copy (the database's
unique key decides; the other says the run is there already).

Interrupted runs (``incomplete.json``, bench/rundir.py) are refused unless asked for:
their numbers are partial. Stored, they are marked incomplete and left out of the trends.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bench.history import HistoryError

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import URL, Engine

SUMMARY = "summary.csv"
MODELS = "models.csv"
FINGERPRINT = "fingerprint.json"
#: summary.csv's columns a case cannot be stored without.
REQUIRED_CASE_COLUMNS = ("case_id", "framework", "model", "status")
_RUN_NAME = re.compile(r"^\d{8}-\d{6}-(?P<host>.+)-(?P<device>cpu|gpu)(?P<quick>-quick)?(-\d+)?$")


@dataclass(frozen=True)
class IngestResult:
    """What adding one run folder did."""

    run_id: str
    #: True: written now; False: the history held this very run already (nothing written).
    added: bool
    #: The rows the run has: ``cases``, ``measurements``, ``models``.
    counts: dict[str, int]
    source: Path
    complete: bool = True
    #: Where ``commit_time`` came from: ``fingerprint``, ``git`` or ``run start``.
    commit_time_source: str | None = None
    #: When the history got the run (for one already there: the first time).
    ingested_at: datetime | None = None
    #: Why the run is stored but left out of the trends (``xfbench history exclude``).
    excluded_reason: str | None = None

    def describe(self) -> str:
        """One line for the console: ``<run>: added (12 cases, ...)``."""
        name = self.run_id
        if self.source.name != self.run_id:
            name += f" (from {self.source})"
        if not self.added:
            since = f" since {self.ingested_at:%Y-%m-%d %H:%M} UTC" if self.ingested_at else ""
            return f"{name}: already in the history{since}; nothing written"
        counts = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        notes = "" if self.complete else "; stored as incomplete (left out of the trends)"
        if self.excluded_reason:
            notes += f"; left out of the trends: {self.excluded_reason}"
        if self.commit_time_source == "run start":
            notes += "; its commit's time is unknown here, so the run's start stands for it"
        return f"{name}: added to the history ({counts}){notes}"


@dataclass
class ParsedRun:
    """A run folder read and checked, as the rows to write."""

    run: dict[str, Any]
    cases: list[dict[str, Any]] = field(default_factory=list)
    #: Each case's measurements, keyed by its case_id until the case has a database id.
    measurements: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    source: Path = Path()

    @property
    def counts(self) -> dict[str, int]:
        return {
            "cases": len(self.cases),
            "measurements": len(self.measurements),
            "models": len(self.models),
        }


# --- reading a run folder -------------------------------------------------------------


def _error(message: str) -> HistoryError:
    return HistoryError(message)


def _value(text: str | None, kind: type, where: str) -> Any:
    """A CSV cell as ``kind``; an empty cell (or NaN) is None; anything unreadable is a
    :class:`HistoryError` naming the cell."""
    if text is None:
        return None
    text = text.strip()
    if text == "":
        return None
    if kind is str:
        return text
    if kind is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "1.0"):
            return True
        if lowered in ("false", "0", "0.0"):
            return False
        raise _error(f"{where}: {text!r} is not True or False")
    try:
        number = float(text)
    except ValueError:
        raise _error(f"{where}: {text!r} is not a number") from None
    if math.isnan(number):
        return None
    if kind is int:
        if not number.is_integer():
            raise _error(f"{where}: {text!r} is not a whole number")
        return int(number)
    return number


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file whose every row has the header's fields."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise _error(f"{path} is empty: not a summary written by xfbench")
            missing = [c for c in required if c not in header]
            if missing:
                raise _error(
                    f"{path} has no {', '.join(missing)} column: it was not written by xfbench, "
                    f"or is damaged; rebuild it: `xfbench report {path.parent} --output DIR` "
                    f"writes a new one into DIR"
                )
            rows = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise _error(
                        f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                        f"{len(header)}: the file is damaged (cut off or edited); rebuild it with "
                        f"`xfbench report {path.parent} --output DIR` and nothing was added"
                    )
                rows.append((reader.line_num, dict(zip(header, row, strict=True))))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _error(f"cannot read {path}: {exc}") from None


def _utc(value: str | None) -> datetime | None:
    """An ISO 8601 time (``2026-11-26T06:20:56+0000``) in UTC; None if absent or unreadable;
    a time without an offset is taken as UTC."""
    if not value:
        return None
    text = str(value).strip()
    if re.search(r"[+-]\d{4}$", text):  # time.strftime's %z: +0000
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@functools.cache
def _git_commit_time(commit: str) -> datetime | None:
    """The committer date of ``commit`` in this xfbench's git checkout, if it has it."""
    from bench.fingerprint import REPO_ROOT

    if not re.fullmatch(r"[0-9a-f]{7,40}", commit or ""):
        return None
    try:
        out = subprocess.run(
            ["git", "show", "-s", "--format=%cI", commit],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return _utc(out.strip())


def commit_time(git: dict[str, Any], started_at: datetime | None) -> tuple[datetime | None, str]:
    """(the run's commit time, where it came from): the fingerprint's ``commit_time``
    (runs since it was recorded), else git's committer date for the commit where this
    checkout has it, else the run's start (an upper bound: the code was committed before
    it ran)."""
    recorded = _utc(git.get("commit_time"))
    if recorded is not None:
        return recorded, "fingerprint"
    looked_up = _git_commit_time(str(git.get("commit") or ""))
    if looked_up is not None:
        return looked_up, "git"
    return started_at, "run start"


def _fingerprint(run_dir: Path) -> tuple[dict[str, Any], str]:
    path = run_dir / FINGERPRINT
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise _error(
            f"{run_dir} has no {FINGERPRINT}: it is not a run folder written by `xfbench "
            "bench` (a report over several runs has none); add the runs' own folders"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _error(f"{path} is damaged ({exc}); the run cannot be identified") from None
    if not isinstance(data, dict) or not isinstance(data.get("machine"), dict):
        raise _error(f"{path} has no machine record: not a fingerprint written by xfbench")
    return data, text


def read_run(run_dir: Path, *, include_incomplete: bool = False) -> ParsedRun:
    """``run_dir`` read into rows, or a :class:`HistoryError` saying why it cannot be."""
    from bench import __version__
    from bench.history.db import CASE_FIELDS, MODEL_FIELDS, STATISTICS
    from bench.rundir import INCOMPLETE, incomplete_reason

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a folder"
        raise _error(f"{run_dir} {what}: name a run folder (reports/<time>-<host>-<device>)")
    run_dir = run_dir.resolve()
    reason = incomplete_reason(run_dir)
    if reason is not None and not include_incomplete:
        raise _error(
            f"{run_dir.name} is incomplete ({reason}; {INCOMPLETE}): its numbers are partial. "
            "Add it anyway with --include-incomplete (it is then stored as incomplete and "
            "left out of the trends)"
        )
    summary = run_dir / SUMMARY
    if not summary.is_file():
        if reason is not None and not (run_dir / "raw").is_dir():
            raise _error(
                f"{run_dir.name} stopped before it measured anything ({reason}; it holds no "
                f"{SUMMARY} and no raw/): there is nothing to add"
            )
        if (run_dir / "raw").is_dir():
            raise _error(
                f"{run_dir} has no {SUMMARY}: rebuild it with `xfbench report {run_dir}` "
                f"(or `xfbench report {run_dir} --output DIR` and copy DIR/{SUMMARY} and "
                f"DIR/{MODELS} in), then add the run again"
            )
        raise _error(
            f"{run_dir} is not an xfbench run folder (no {SUMMARY}, no raw/): name a folder "
            "that `xfbench bench` wrote (reports/<time>-<host>-<device>)"
        )
    fingerprint, fingerprint_text = _fingerprint(run_dir)
    rows = _read_csv(summary, REQUIRED_CASE_COLUMNS)

    names = {r.get("run") for _, r in rows if r.get("run")}
    if len(names) > 1:
        raise _error(
            f"{summary} holds the cases of {len(names)} runs ({', '.join(sorted(names)[:3])}"
            f"{', ...' if len(names) > 3 else ''}): it is a report over several runs, not a "
            "run; add each run's own folder"
        )
    run_id = names.pop() if names else run_dir.name
    machine = fingerprint["machine"]
    git = machine.get("git") if isinstance(machine.get("git"), dict) else {}
    options = fingerprint.get("options") if isinstance(fingerprint.get("options"), dict) else {}
    started_at = _utc(machine.get("time"))
    named = _RUN_NAME.match(run_id)
    if started_at is None and named:
        started_at = datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    devices = options.get("devices") or []
    device_label = (
        ("gpu" if "cuda" in devices else "cpu") if devices else (named["device"] if named else None)
    )
    mode = fingerprint.get("mode") or (("quick" if named["quick"] else "full") if named else None)
    when, source = commit_time(git, started_at)
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    fleet = fingerprint.get("fleet") if isinstance(fingerprint.get("fleet"), dict) else {}
    # A part of `xfbench fleet --local N`: its workers timed at once on one machine, so its
    # timings would put false change points in the machine's trends. Stored, but left out
    # (`xfbench history exclude --undo` puts it in, for whoever wants it).
    excluded = (
        f"timed by `xfbench fleet --local {fleet['local']}`: its workers shared one machine, "
        "so its timings are not comparable"
        if fleet.get("local")
        else None
    )
    parsed = ParsedRun(
        run={
            "run_id": run_id,
            "host": str(machine.get("host") or (named["host"] if named else "unknown")),
            "device_label": device_label,
            "mode": mode,
            "started_at": started_at,
            "elapsed_s": _number(fingerprint.get("elapsed_s")),
            "complete": reason is None,
            "commit": git.get("commit"),
            "commit_time": when,
            "commit_time_source": source,
            "dirty": git.get("dirty") if isinstance(git.get("dirty"), bool) else None,
            "python": machine.get("python"),
            "os": machine.get("os"),
            "cpu_model": machine.get("cpu_model"),
            "gpus": json.dumps(machine.get("gpus", [])),
            "options": json.dumps(options, sort_keys=True),
            "fingerprint": fingerprint_text,
            "fingerprint_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "source_path": str(run_dir),
            "ingested_at": datetime.now(UTC),
            "xfbench_version": __version__,
            # Only where set: a history at revision 0001 (the migration test) has no column.
            **({"excluded_reason": excluded} if excluded else {}),
        },
        source=run_dir,
    )

    seen: dict[str, int] = {}
    for line, row in rows:

        def cell(column: str, kind: type, line: int = line, row: dict[str, str] = row) -> Any:
            return _value(row.get(column), kind, f"{summary}, line {line}, column {column}")

        case_id = cell("case_id", str)
        if case_id is None or cell("status", str) is None:
            raise _error(f"{summary}, line {line}: a case without a case_id or status")
        if case_id in seen:
            raise _error(
                f"{summary}, line {line}: case {case_id} is there twice (lines {seen[case_id]} "
                f"and {line}): the file is damaged; rebuild it with `xfbench report {run_dir} "
                "--output DIR`"
            )
        seen[case_id] = line
        parsed.cases.append(
            {"run_id": run_id, "case_id": case_id}
            | {name: cell(name, kind) for name, kind in CASE_FIELDS}
        )
        for statistic, (value_col, low_col, high_col) in STATISTICS.items():
            value = cell(value_col, float)
            if value is None:
                continue
            parsed.measurements.append(
                {
                    "case_id": case_id,
                    "statistic": statistic,
                    "value": value,
                    "ci_low": cell(low_col, float) if low_col else None,
                    "ci_high": cell(high_col, float) if high_col else None,
                }
            )

    models_path = run_dir / MODELS
    if models_path.is_file():
        keys: set[tuple[str, str]] = set()
        for line, row in _read_csv(models_path, ("framework", "model")):
            where = f"{models_path}, line {line}"
            values = {
                name: _value(row.get(name), kind, f"{where}, column {name}")
                for name, kind in MODEL_FIELDS
            }
            key = (values["framework"], values["model"])
            if None in key:
                raise _error(f"{where}: a model without a framework or a name")
            if key in keys:
                raise _error(f"{where}: {key[0]} {key[1]} is there twice: the file is damaged")
            keys.add(key)
            parsed.models.append({"run_id": run_id, **values})
    return parsed


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- writing --------------------------------------------------------------------------


def _describe_run(row: Any) -> str:
    started = row.started_at.strftime("%Y-%m-%d %H:%M") if row.started_at else "unknown start"
    return f"host {row.host}, started {started}, commit {str(row.commit or 'unknown')[:12]}"


def _already(parsed: ParsedRun, existing: Any) -> IngestResult:
    """The result for a run whose name the history holds: the same run (nothing to do),
    or a different one (refused)."""
    if existing.fingerprint_sha256 != parsed.run["fingerprint_sha256"]:
        new = _describe_run(SimpleNamespace(**parsed.run))
        raise _error(
            f"{parsed.run['run_id']} is in the history already as a different run ("
            f"{_describe_run(existing)}; this folder: {new}): two runs under one name, "
            "perhaps from two machines with the same host name; nothing was merged or "
            "written. Give the machines distinct host names, or keep their histories in "
            "separate databases (--db)"
        )
    ingested = existing.ingested_at
    if ingested is not None and ingested.tzinfo is None:
        ingested = ingested.replace(tzinfo=UTC)
    return IngestResult(
        run_id=parsed.run["run_id"],
        added=False,
        counts=parsed.counts,
        source=parsed.source,
        complete=bool(existing.complete),
        commit_time_source=parsed.run["commit_time_source"],
        ingested_at=ingested,
    )


def write_run(engine: Engine, parsed: ParsedRun) -> IngestResult:
    """Write ``parsed`` in one transaction, or find it there already."""
    import sqlalchemy as sa

    from bench.history.db import cases, display_url, driver_message, measurements, models, runs

    run_id = parsed.run["run_id"]
    existing_query = sa.select(
        runs.c.fingerprint_sha256,
        runs.c.host,
        runs.c.started_at,
        runs.c.commit,
        runs.c.complete,
        runs.c.ingested_at,
    ).where(runs.c.run_id == run_id)
    try:
        try:
            with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE; one writer at a time
                existing = conn.execute(existing_query).first()
                if existing is not None:
                    return _already(parsed, existing)
                conn.execute(sa.insert(runs), [parsed.run])
                if parsed.cases:
                    conn.execute(sa.insert(cases), parsed.cases)
                ids = {
                    case_id: pk
                    for case_id, pk in conn.execute(
                        sa.select(cases.c.case_id, cases.c.id).where(cases.c.run_id == run_id)
                    )
                }
                rows = [
                    {**{k: v for k, v in m.items() if k != "case_id"}, "case_pk": ids[m["case_id"]]}
                    for m in parsed.measurements
                ]
                if rows:
                    conn.execute(sa.insert(measurements), rows)
                if parsed.models:
                    conn.execute(sa.insert(models), parsed.models)
        except sa.exc.IntegrityError:
            # Another process added a run of this name between our check and our insert
            # (PostgreSQL; SQLite's write lock serialises the two): it is there now.
            with engine.connect() as conn:
                existing = conn.execute(existing_query).first()
            if existing is None:
                raise
            return _already(parsed, existing)
    except (sa.exc.StatementError, OverflowError) as exc:  # the database's, the driver's
        raise _error(
            f"the results history {display_url(engine.url)} refused run {run_id}: "
            f"{driver_message(exc, engine.url)}; nothing of the run was written (a value it "
            f"cannot hold means a damaged file in {parsed.source}: rebuild it with `xfbench "
            f"report {parsed.source} --output DIR`; a lost connection: add the run again)"
        ) from None
    return IngestResult(
        run_id=run_id,
        added=True,
        counts=parsed.counts,
        source=parsed.source,
        complete=parsed.run["complete"],
        commit_time_source=parsed.run["commit_time_source"],
        ingested_at=parsed.run["ingested_at"],
        excluded_reason=parsed.run.get("excluded_reason"),
    )


def ingest_run(
    run_dir: Path, url: str | URL | Engine, *, include_incomplete: bool = False
) -> IngestResult:
    """Add the run folder ``run_dir`` to the history at ``url`` (a URL or an open engine).

    Returns what happened (added, or there already); raises :class:`HistoryError` for a
    run that cannot be added (not a run folder, incomplete without
    ``include_incomplete``, a damaged file, a different run under the same name) and a
    database that cannot be used. Nothing is written unless the whole run is.
    """
    from bench.history.db import history_engine

    parsed = read_run(Path(run_dir), include_incomplete=include_incomplete)
    with history_engine(url) as engine:
        return write_run(engine, parsed)


def retry_command(run_dir: Path, db: str | None, out: Path) -> str:
    """The command that adds ``run_dir`` by hand, with the options that name the same
    database (a URL given with --db is shown without its password)."""
    from bench.history.db import ENV_VAR, display_url

    command = f"xfbench history ingest {run_dir}"
    if db:
        command += f" --db '{display_url(db)}'"
    elif not os.environ.get(ENV_VAR) and Path(out).resolve() != Path("reports").resolve():
        command += f" --out {out}"
    return command


def check_history(db: str | None, out: Path) -> None:
    """Open the history a run will be added to, before the run starts: a ``--db`` or
    ``XFBENCH_DB`` that cannot be opened (a typo, a server down, a newer schema) would
    otherwise be found only at the end of a run of up to half an hour. Raises
    :class:`HistoryError` (exit status 2); does nothing where the history's packages are
    not installed (the run then says so at its end, with the command that adds it)."""
    try:
        from bench.history.db import create_history_engine, history_engine, parse_url, resolve_url
    except ImportError:
        return
    url = resolve_url(db, out, create_default_folder=True)
    try:
        parsed = parse_url(url)
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database).exists():
            # A new SQLite history: its folder is checked, the file is made at the end (a
            # run stopped by bad input leaves nothing behind).
            create_history_engine(parsed).dispose()
            return
        with history_engine(url):
            pass
    except HistoryError as exc:
        raise HistoryError(
            f"{exc} (checked before the run starts, so that the run can be added at its end)"
        ) from None


def ingest_after_run(run_dir: Path, db: str | None, out: Path, say: Callable[[str], None]) -> None:
    """Add a just-finished run to the history (``--db``, else ``$XFBENCH_DB``, else
    ``<out>/history.db``) and say so in one line. Any failure (no database driver, a
    server that does not answer, a damaged file) is said as a warning with the command
    that retries, and never raised: the run and its report are complete without it."""
    start = time.monotonic()
    try:
        from bench.history.db import display_url, resolve_url

        url = resolve_url(db, out, create_default_folder=True)
        result = ingest_run(run_dir, url)
        took = time.monotonic() - start
        if result.added:
            left_out = (
                f"; left out of the trends: {result.excluded_reason}"
                if result.excluded_reason
                else ""
            )
            say(
                f"added to the history {display_url(url)}: {result.counts['cases']} cases "
                f"({took:.1f} s){left_out}"
            )
        else:
            say(f"{result.run_id} is in the history {display_url(url)} already")
    except Exception as exc:  # the run must survive its history, whatever went wrong
        if isinstance(exc, ImportError):
            why = (
                f"{exc}; the history needs SQLAlchemy and Alembic: pip install -e "
                "'.[history]' (tox's bench environments have them)"
            )
        elif isinstance(exc, HistoryError):
            why = str(exc)
        else:
            why = f"{type(exc).__name__}: {exc}"
            if db:  # a URL's password must not reach the console
                from contextlib import suppress

                with suppress(Exception):
                    import sqlalchemy as sa

                    password = sa.make_url(db).password
                    if password:
                        why = why.replace(str(password), "***")
        say(
            f"warning: the run was not added to the results history: {why}. The run is "
            f"complete and kept in {run_dir}; add it later with "
            f"`{retry_command(run_dir, db, out)}`"
        )
