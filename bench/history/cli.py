"""``xfbench history``: the results history on the command line.

    xfbench history ingest RUN [RUN ...]      add run folders (or a folder of them)
    xfbench history [report] [options]        trends and change points over the history
    xfbench history exclude RUN --reason WHY  take a run out of the trends (--undo: back)

Each names its database with ``--db URL``, else ``$XFBENCH_DB``, else
``sqlite:///<--out>/history.db``. The report itself is bench/history/trends.py's
(``add_report_options`` and ``cmd_report``); it is imported here, when the parser is
built, and a trends module that is missing or fails to import costs only the report,
never the other commands. A :class:`~bench.history.db.HistoryError` is printed like any
usage error: one ``xfbench: error:`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.history import HistoryError

#: Files a run folder holds; a folder with none of them but with such subfolders is a
#: folder of runs (``reports/``), whose runs ``ingest`` adds one by one.
_RUN_MARKERS = ("summary.csv", "fingerprint.json", "raw", "incomplete.json")


def _usage_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``func`` with a HistoryError (and the history's missing packages) turned into the
    CLI's UsageError: one line, exit status 2, no traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from bench.cli import UsageError

        try:
            return func(args)
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] in ("sqlalchemy", "alembic", "psycopg"):
                raise UsageError(
                    f"the results history needs {exc.name.split('.')[0]}, which is not "
                    "installed: pip install -e '.[history]' (tox's bench-cpu, bench-gpu, "
                    "report and core environments have it)"
                ) from None
            raise
        except HistoryError as exc:
            raise UsageError(str(exc)) from None

    return run


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="the results history database (any SQLAlchemy URL: sqlite:///PATH, "
        "postgresql://USER@HOST/DB); default: $XFBENCH_DB, else sqlite:///<--out>/history.db",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="the run folders' folder, where the default history.db is (default: reports/)",
    )


def run_folders(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(the run folders named, the subfolders passed over): each path itself, or, for a
    folder that is not a run but holds runs (``reports/``), each run in it, oldest first;
    its other subfolders (an empty one a killed run left, the history reports) are
    passed over."""
    found: list[Path] = []
    passed: list[Path] = []
    from bench.fleet import fleet_parts  # a fleet's folder stands for its parts (runs)

    paths = [q for p in paths for q in fleet_parts(p)]
    for path in paths:
        if path.is_dir() and not any((path / m).exists() for m in _RUN_MARKERS):
            subfolders = sorted(d for d in path.iterdir() if d.is_dir())
            subfolders = [q for d in subfolders for q in fleet_parts(d)]
            inside = [d for d in subfolders if any((d / m).exists() for m in _RUN_MARKERS)]
            if inside:
                found += inside
                passed += [d for d in subfolders if d not in inside]
                continue
        found.append(path)
    return found, passed


def cmd_ingest(args: argparse.Namespace) -> int:
    """Add each run; one that cannot be added is reported and the others still are.
    Exit status 0 when every run is in the history afterwards, 2 when any was refused."""
    from bench.history.db import display_url, history_engine, resolve_url
    from bench.history.ingest import read_run, write_run

    start = time.monotonic()
    url = resolve_url(args.db, args.out, create_default_folder=True)
    added = already = refused = 0
    runs, passed = run_folders(args.runs)
    for folder in passed:
        print(
            f"xfbench: {folder}: passed over (not a run folder: no summary.csv, raw/ or "
            "fingerprint.json)"
        )
    with history_engine(url) as engine:
        for run in runs:
            try:
                result = write_run(
                    engine, read_run(run, include_incomplete=args.include_incomplete)
                )
            except HistoryError as exc:
                refused += 1
                print(f"xfbench: error: {run}: not added: {exc}", file=sys.stderr)
                continue
            added += result.added
            already += not result.added
            print(f"xfbench: {result.describe()}", flush=True)
    print(
        f"xfbench: history {display_url(url)}: {added} added, {already} already there, "
        f"{refused} refused, of {len(runs)} run folder(s) ({time.monotonic() - start:.1f} s)"
    )
    return 2 if refused else 0


def cmd_exclude(args: argparse.Namespace) -> int:
    """Set (or with --undo clear) runs' ``excluded_reason``: the trends leave them out."""
    import sqlalchemy as sa

    from bench.cli import UsageError
    from bench.history.db import display_url, history_engine, resolve_url, runs

    if not args.undo and not (args.reason or "").strip():
        raise UsageError("say why the run is left out of the trends: --reason TEXT (or --undo)")
    url = resolve_url(args.db, args.out)
    with history_engine(url, create=False) as engine, engine.begin() as conn:
        known = set(
            conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id.in_(args.run_ids))).scalars()
        )
        missing = [r for r in args.run_ids if r not in known]
        if missing:
            raise UsageError(
                f"not in the history {display_url(url)}: {', '.join(missing)} (a run is named "
                "by its folder's name, e.g. 20261126-042912-vm-cpu); nothing was changed"
            )
        reason = None if args.undo else args.reason.strip()
        conn.execute(
            sa.update(runs).where(runs.c.run_id.in_(args.run_ids)).values(excluded_reason=reason)
        )
    for run_id in args.run_ids:
        what = "back in the trends" if args.undo else f"left out of the trends ({reason})"
        print(f"xfbench: {run_id}: {what}")
    return 0


def _trends_missing(why: str) -> Callable[[argparse.Namespace], int]:
    def report(args: argparse.Namespace) -> int:
        from bench.cli import UsageError

        raise UsageError(
            f"the history report is not available in this xfbench ({why}); "
            "`xfbench history ingest` works without it"
        )

    return report


def add_parsers(sub: Any) -> None:
    """Register ``history`` on the top-level subparsers ``sub``: its own options are the
    report's, so ``xfbench history`` alone is ``xfbench history report``."""
    hist = sub.add_parser(
        "history",
        help="the results history: add runs to it (ingest); trends and change points over "
        "it (report, the default)",
        description="The results history: every finished run in a database (SQLite by "
        "default, PostgreSQL for a team). `xfbench history` alone is `xfbench history "
        "report`.",
    )
    try:
        from bench.history import trends

        report_func: Callable[[argparse.Namespace], int] = _usage_errors(trends.cmd_report)
        add_report_options: Callable[[argparse.ArgumentParser], None] | None = (
            trends.add_report_options
        )
    except ImportError as exc:
        why = (
            "bench/history/trends.py is not there"
            if exc.name == __package__ + ".trends"
            else f"{exc}"
        )
        report_func, add_report_options = _trends_missing(why), None
    except Exception as exc:  # a broken trends module must not break `xfbench bench`
        report_func = _trends_missing(f"bench/history/trends.py failed to load: {exc}")
        add_report_options = None

    if add_report_options is not None:
        add_report_options(hist)
    hist.set_defaults(func=report_func)
    actions = hist.add_subparsers(dest="history_command", metavar="{ingest,report,exclude}")

    ingest = actions.add_parser(
        "ingest",
        help="add finished run folders to the history",
        description="Add run folders to the history, each whole or not at all. A run that "
        "is there already is left as it is; a folder of runs (reports/) adds every run in "
        "it. Exit status 0 when every run is in the history afterwards, 2 when any was "
        "refused (the others are still added).",
    )
    ingest.add_argument(
        "runs", nargs="+", type=Path, help="run folders, or folders of run folders (reports/)"
    )
    _db_options(ingest)
    ingest.add_argument(
        "--include-incomplete",
        action="store_true",
        help="also add interrupted runs (stored as incomplete, left out of the trends)",
    )
    ingest.set_defaults(func=_usage_errors(cmd_ingest))

    report = actions.add_parser("report", help="trends and change points over the history")
    if add_report_options is not None:
        add_report_options(report)
        # The parent `history` parser set every default already: defaults here would
        # overwrite an option given before `report` (`history --lookback 5 report`).
        for action in report._actions:
            if action.dest != "help":
                action.default = argparse.SUPPRESS
    report.set_defaults(func=report_func)

    exclude = actions.add_parser(
        "exclude",
        help="leave runs out of the trends (a busy machine, a broken build), or --undo",
        description="Leave runs out of the trends report, with the reason, without deleting "
        "them; --undo puts them back.",
    )
    exclude.add_argument("run_ids", nargs="+", metavar="RUN", help="run names in the history")
    group = exclude.add_mutually_exclusive_group()
    group.add_argument("--reason", help="why the runs are left out (required unless --undo)")
    group.add_argument("--undo", action="store_true", help="put the runs back into the trends")
    _db_options(exclude)
    exclude.set_defaults(func=_usage_errors(cmd_exclude))
