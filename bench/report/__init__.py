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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def write_report(
    run_dirs: list[Path],
    out_dir: Path,
    title: str = "xfbench report",
    compare_with: Path | None = None,
    min_effect: float = 0.05,
) -> Report:
    """Write summary.csv, models.csv, report.md, report.html and plots/ (with
    ``compare_with``, comparison.csv too) into ``out_dir``.

    Raises :class:`NoResultsError` when ``run_dirs`` (or ``compare_with``) hold no
    result, :class:`NothingToCompareError` (a ``NoResultsError``) when ``compare_with``
    shares no measured case with them, and :class:`FileExistsError` when ``out_dir``
    already holds a report: a report never replaces another. Nothing is written before
    these checks pass.
    """
    from bench.report.analysis import compare, regressions
    from bench.report.document import build_document
    from bench.report.plots import make_plots
    from bench.report.render import to_html, to_markdown

    out_dir = Path(out_dir)
    data = load_runs(run_dirs)
    comparison = None
    if compare_with is not None:
        comparison = compare(data, load_runs([compare_with]), min_effect=min_effect)
    for name in _OUTPUTS:
        if (out_dir / name).exists():
            raise FileExistsError(f"{out_dir / name} exists; a report never replaces another")
    out_dir.mkdir(parents=True, exist_ok=True)
    data.cases.to_csv(out_dir / "summary.csv", index=False)
    data.models.to_csv(out_dir / "models.csv", index=False)
    if comparison is not None:
        comparison.to_csv(out_dir / "comparison.csv", index=False)
    images = make_plots(data.cases, out_dir / "plots")
    plots: dict[str, list[Path]] = {}
    for img in images:
        plots.setdefault(img.stem.split("-")[0], []).append(img)
    doc = build_document(data, title, plots, comparison, min_effect)
    (out_dir / "report.md").write_text(to_markdown(doc, out_dir))
    (out_dir / "report.html").write_text(to_html(doc))
    return Report(
        out_dir,
        out_dir / "report.md",
        out_dir / "report.html",
        0 if comparison is None else len(regressions(comparison)),
    )
