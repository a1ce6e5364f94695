"""From raw results to the report people read.

- ``load.py``: the raw run folders into tidy pandas DataFrames (damaged or foreign files
  left out with a warning naming them);
- ``stats.py``: the statistics (percentiles, the hierarchical bootstrap, comparisons),
  numpy only;
- ``analysis.py``: summary.csv and every table of the report, as one table model;
- ``document.py``: the report's sections in reading order, each table with its notes;
- ``render.py``: Markdown and HTML (a jinja2 template, autoescaped) from that model;
- ``plots.py``: the charts, as PNG files.

:func:`write_report` runs them in that order. The columns of ``summary.csv`` and
``models.csv`` are a contract (README, "Result files"): tools outside the project read
them. Importing this package imports neither pandas nor matplotlib: the names below
load their module on first use.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.atomic import remove_leftovers
from models.spec import is_size

if TYPE_CHECKING:  # pragma: no cover
    from bench.report.load import RunData

__all__ = [
    "CASE_COLUMNS",
    "MODEL_COLUMNS",
    "NoResultsError",
    "NothingToCompareError",
    "Report",
    "RunData",
    "load_runs",
    "report_outputs",
    "write_report",
]

_LAZY = {
    "CASE_COLUMNS": "bench.report.analysis",
    "NothingToCompareError": "bench.report.analysis",
    "MODEL_COLUMNS": "bench.report.load",
    "NoResultsError": "bench.report.load",
    "RunData": "bench.report.load",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Report:
    folder: Path
    markdown: Path
    html: Path
    #: Inference and training-step cases flagged ``slower`` by ``compare_with`` (0 without).
    regressions: int
    #: Whether any case of the runs was measured (status ok); false: the report only says
    #: what is missing.
    measured: bool = True
    #: Why ``compare_with`` gave no comparison, where ``on_compare_error="note"`` wrote
    #: the report without one.
    compare_error: str | None = None
    #: The headline answers in words (:func:`bench.report.analysis.answers`).
    answers: list[str] = field(default_factory=list)


def load_runs(run_dirs: Any) -> RunData:
    """Every result of the runs in ``run_dirs``, with ``cases`` (summary.csv) computed.

    Raises :class:`NoResultsError` when the folders hold no result at all.
    """
    from bench.report.analysis import summarise
    from bench.report.load import read_runs

    data = read_runs(run_dirs)
    summarise(data)
    return data


_OUTPUTS = ("report.md", "report.html", "summary.csv", "models.csv", "comparison.csv")
PLOTS = "plots"


def report_outputs(folder: Path) -> list[Path]:
    """The report files ``folder`` holds already (a report never replaces another)."""
    folder = Path(folder)
    found = [folder / name for name in _OUTPUTS if (folder / name).exists()]
    if (folder / PLOTS).is_dir():
        found += sorted((folder / PLOTS).glob("*.png"))
    return found


def _comparison(data: RunData, compare_with: Path, min_effect: float) -> Any:
    """``compare`` of the runs with ``compare_with``; :class:`NothingToCompareError` when
    either side measured nothing (naming the folder and why) or they share no case."""
    from bench.report.analysis import NothingToCompareError, compare, summarise
    from bench.report.load import read_runs

    old = read_runs([compare_with], require_results=False)
    summarise(old)
    if not (old.cases.status == "ok").any():
        why = (
            f"{len(old.skipped_files)} file(s) left out: "
            + "; ".join(old.skipped_files[:3])
            + ("; ..." if len(old.skipped_files) > 3 else "")
            if old.skipped_files
            else "its raw/ folder holds no finished case"
        )
        raise NothingToCompareError(
            f"nothing to compare: {compare_with} has no measured case to compare with ({why})"
        )
    if not (data.cases.status == "ok").any():
        raise NothingToCompareError(
            f"nothing to compare: {', '.join(map(str, data.folders.values()))} measured no case"
        )
    return compare(data, old, min_effect=min_effect)


def write_report(
    run_dirs: list[Path],
    out_dir: Path,
    title: str = "xfbench report",
    compare_with: Path | None = None,
    min_effect: float = 0.05,
    on_compare_error: str = "raise",
) -> Report:
    """Write summary.csv, models.csv, report.md, report.html and plots/ (with
    ``compare_with``, comparison.csv too) into ``out_dir``.

    The report renders what the runs hold: runs that are empty, incomplete or damaged
    give a report that says, at the top, what is missing and why (``Report.measured`` is
    false where no case was measured at all). Raises :class:`NothingToCompareError` (a
    ``NoResultsError``) when ``compare_with`` or the runs measured nothing, or they share
    no measured case, unless ``on_compare_error`` is ``"note"``: then the report is
    written without the comparison and says why (``Report.compare_error``). Raises
    :class:`FileExistsError` when ``out_dir`` already holds any report file: a report
    never replaces another.

    Writing is all or nothing: every file is made in a temporary folder beside
    ``out_dir``, then that folder becomes ``out_dir`` (a new one) or its files are
    moved in (without replacing any); on any failure nothing is left behind.
    """
    from bench.report.analysis import NothingToCompareError, answers, regressions, summarise
    from bench.report.load import read_runs

    if on_compare_error not in ("raise", "note"):
        raise ValueError(f"on_compare_error must be 'raise' or 'note', not {on_compare_error!r}")
    out_dir = Path(out_dir)
    data = read_runs(run_dirs, require_results=False)
    summarise(data)
    comparison, compare_error = None, None
    if compare_with is not None:
        try:
            comparison = _comparison(data, Path(compare_with), min_effect)
        except NothingToCompareError as exc:
            if on_compare_error == "raise":
                raise
            compare_error = str(exc)
    _refuse_existing(out_dir)
    notices = [] if compare_error is None else [f"**No comparison:** {_code(compare_error)}."]
    tmp = _scratch_folder(out_dir)
    try:
        _write_files(data, tmp, title, comparison, min_effect, notices)
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Report(
        out_dir,
        out_dir / "report.md",
        out_dir / "report.html",
        0 if comparison is None else len(regressions(comparison)),
        measured=bool((data.cases.status == "ok").any()),
        compare_error=compare_error,
        answers=answers(data) if (data.cases.status == "ok").any() else [],
    )


def _code(text: Any) -> str:
    from bench.report.analysis import code

    return code(text)


def _refuse_existing(out_dir: Path) -> None:
    held = report_outputs(out_dir)
    if held:
        names = ", ".join(str(p.relative_to(out_dir)) for p in held[:5])
        raise FileExistsError(
            f"{out_dir} already holds a report ({names}{', ...' if len(held) > 5 else ''}); "
            "a report never replaces another"
        )


def _scratch_folder(out_dir: Path) -> Path:
    """A new, empty folder beside ``out_dir`` (same file system: moves are renames)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_dir.parent)  # of reports whose process was killed outright
    while True:
        tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
        try:
            tmp.mkdir()  # the umask applies: the report gets the usual permissions
            return tmp
        except FileExistsError:
            continue


def _write_files(
    data: RunData,
    folder: Path,
    title: str,
    comparison: Any,
    min_effect: float,
    notices: list[str],
) -> None:
    from bench.report.document import build_document
    from bench.report.plots import make_plots
    from bench.report.render import to_html, to_markdown

    data.cases.to_csv(folder / "summary.csv", index=False)
    data.models.to_csv(folder / "models.csv", index=False)
    if comparison is not None:
        comparison.to_csv(folder / "comparison.csv", index=False)
    from bench.report import scaling

    # The per-model charts show each model's reference size; the sizes have a chart of
    # their own (the scaling report).
    reference = data.cases[~data.cases.model.map(is_size).astype(bool)]
    images = make_plots(reference, folder / PLOTS)
    images += scaling.plot(scaling.points(data.cases, data.models), data.cases, folder / PLOTS)
    plots: dict[str, list[Path]] = {}
    for img in images:
        plots.setdefault(img.stem.split("-")[0], []).append(img)
    doc = build_document(data, title, plots, comparison, min_effect, notices=notices)
    (folder / "report.md").write_text(to_markdown(doc, folder))
    (folder / "report.html").write_text(to_html(doc))


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """``tmp`` becomes ``out_dir`` where that is new (or an empty folder); else each file
    is moved into it, ``report.md`` last, none replacing a file, and on any failure the
    ones moved are taken out again."""
    try:
        os.rename(tmp, out_dir)  # atomic; onto an empty folder too (POSIX)
        return
    except OSError:
        if not out_dir.is_dir():
            raise
    files = sorted(
        (p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()),
        key=lambda rel: (rel.name == "report.md", rel.name == "report.html", str(rel)),
    )
    made: list[Path] = []
    try:
        for rel in files:
            dst = out_dir / rel
            if not dst.parent.is_dir():
                dst.parent.mkdir()
                made.append(dst.parent)
            _move_new(tmp / rel, dst)
            made.append(dst)
    except BaseException:
        for path in reversed(made):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        raise


def _move_new(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, failing (:class:`FileExistsError`) where ``dst`` exists."""
    try:
        os.link(src, dst)  # never replaces: EEXIST where dst exists
    except FileExistsError:
        raise FileExistsError(f"{dst} exists; a report never replaces another") from None
    except OSError:  # a file system without hard links
        if dst.exists():
            raise FileExistsError(f"{dst} exists; a report never replaces another") from None
        os.rename(src, dst)
        return
    src.unlink()
