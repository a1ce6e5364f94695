"""The history report's charts: each case's p50 over runs, change points marked.

One figure per host, device, model and phase (``history-<host>-<device>-<model>-<phase>
.png``), small multiples: a panel per framework and batch size (and thread count, where
the figure holds several), in rows per framework; in each panel a line per runtime (and
exporter, where a runtime had several) with its 95% interval as a band. The x axis is the
runs that timed the figure's cases, in commit order (ties: run time), labelled with the
short commit and its date; every panel of a figure has the same runs on it. Each panel
has a linear y axis of its own: a trend is read within a panel, not across batch sizes.

Marks: a filled marker is a full run, a hollow one a quick run (one process, fewer
rounds); a red ring is a regression, a green ring an improvement (against the runs
before it: :mod:`bench.history.trends`); a small grey cross a timing flagged unstable or
taken on a busy machine. A framework has its colour from every other chart
(:func:`bench.report.plots.framework_colour`), a runtime its line style and marker.

The figure helpers (fitting titles, the legend below the panels) are the run report's,
from :mod:`bench.report.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.history.trends import IMPROVEMENT, REGRESSION
from bench.report.plots import (
    DPI,
    RC,
    Palette,
    _finish,
    _log_axis,
    _num,
    _panel_title,
    literal,
    sanitise,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Panels per row at most (a framework with more batch sizes wraps).
MAX_COLS = 4
#: Run labels on the x axis at most (more runs: every k-th is labelled).
MAX_RUN_LABELS = 30
REGRESSION_COLOUR = "#cf222e"
IMPROVEMENT_COLOUR = "#1a7f37"
FLAG_COLOUR = "0.35"
#: A panel whose p50s span at least this factor gets decade ticks, else plain ones.
NARROW = 8.0
PHASE_ORDER = ("inference", "train_step", "compile", "cold_start")


def phase_key(phase: str) -> tuple[int, str]:
    return (PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER), phase)


def short_sha(commit: Any) -> str:
    text = "" if commit is None else str(commit)
    return text[:7] if text and text.lower() not in ("nan", "none") else "no commit"


def run_label(row: Any, with_year: bool) -> str:
    """``<short sha> <date>`` of a run: its commit's date, else its own."""
    when = row.commit_time if _known(row.commit_time) else row.run_time
    day = "" if not _known(when) else when.strftime("%Y-%m-%d" if with_year else "%m-%d")
    return f"{short_sha(row.commit)} {day}".strip()


def _known(t: Any) -> bool:
    return t is not None and not (isinstance(t, float) and math.isnan(t)) and str(t) != "NaT"


def runs_in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``rows`` (one row each), in the order the series use."""
    cols = ["run_id", "order_time", "run_time", "commit_time", "commit", "mode"]
    runs = rows[cols].drop_duplicates("run_id").copy()
    runs["_run"] = runs.run_id.astype(str)
    runs = runs.sort_values(["order_time", "run_time", "_run"], kind="stable")
    return runs.drop(columns="_run").reset_index(drop=True)


def _flagged(rows: pd.DataFrame) -> pd.Series:
    flags = rows.unstable.fillna(False).astype(bool) | rows.busy.fillna(False).astype(bool)
    return flags


def _panels(rows: pd.DataFrame) -> list[list[tuple[str, Any, Any]]]:
    """Rows of panels: one row per framework (and thread count), at most
    :data:`MAX_COLS` batch sizes per row."""
    several_threads = rows.threads.nunique(dropna=True) > 1
    grid: list[list[tuple[str, Any, Any]]] = []
    keys = rows[["framework", "threads"]].drop_duplicates()
    for fw, threads in sorted(
        keys.itertuples(index=False, name=None), key=lambda k: (str(k[0]), _sortable(k[1]))
    ):
        sub = rows[(rows.framework == fw) & _same(rows.threads, threads)]
        batches = sorted(sub.batch_size.dropna().unique())
        cells = [(fw, threads if several_threads else None, b) for b in batches]
        for i in range(0, len(cells), MAX_COLS):
            grid.append(cells[i : i + MAX_COLS])
    if all(len(row) == 1 for row in grid):  # one batch size each: frameworks side by side
        cells = [row[0] for row in grid]
        grid = [cells[i : i + MAX_COLS] for i in range(0, len(cells), MAX_COLS)]
    return grid


def _sortable(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.inf
    return f if math.isfinite(f) else math.inf


def _same(col: pd.Series, value: Any) -> pd.Series:
    import pandas as pd

    if value is None or pd.isna(value):
        return col.isna()
    return (col == value).fillna(False).astype(bool)


def _figure(grid: list[list[Any]]) -> tuple[Figure, list[list[Axes]]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nrows, ncols = len(grid), max(len(r) for r in grid)
    fig = Figure(
        figsize=(max(5.4, 3.25 * ncols + 0.6), 2.45 * nrows + 2.2),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)  # a renderer to measure titles with
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    out: list[list[Axes]] = []
    for r, row in enumerate(grid):
        out.append(list(axes[r][: len(row)]))
        for ax in axes[r][len(row) :]:
            ax.remove()
    for row in out:
        for ax in row:
            ax.grid(True, which="major", color="0.88", lw=0.7)
            ax.set_axisbelow(True)
            ax.tick_params(which="both", labelsize=7.5)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
    return fig, out


def _x_ticks(axes: list[list[Axes]], labels: Sequence[str]) -> None:
    """Run labels under the lowest panel of each column; the others share its axis."""
    n = len(labels)
    step = max(1, math.ceil(n / MAX_RUN_LABELS))
    ticks = list(range(0, n, step))
    lowest: dict[int, Axes] = {}
    for row in axes:
        for c, ax in enumerate(row):
            lowest[c] = ax
    for row in axes:
        for c, ax in enumerate(row):
            ax.set_xlim(-0.6, n - 0.4)
            ax.set_xticks(ticks)
            if lowest[c] is ax:
                ax.set_xticklabels([labels[i] for i in ticks], rotation=90, fontsize=6.5)
                ax.tick_params(axis="x", labelbottom=True)
            else:
                ax.tick_params(axis="x", labelbottom=False)


def _draw_line(ax: Axes, pts: pd.DataFrame, x: dict[Any, int], style: Any, label: str) -> None:
    import numpy as np

    xs = np.array([x[r] for r in pts.run_id])
    ys = pts.p50_ms.to_numpy(dtype=float)
    lo = pts.p50_ci_low_ms.to_numpy(dtype=float)
    hi = pts.p50_ci_high_ms.to_numpy(dtype=float)
    order = np.argsort(xs, kind="stable")
    xs, ys, lo, hi = xs[order], ys[order], lo[order], hi[order]
    pts = pts.iloc[order]
    known = np.isfinite(lo) & np.isfinite(hi)
    if known.any():
        ax.fill_between(
            xs[known], lo[known], hi[known], color=style.colour, alpha=0.16, lw=0, label="_band"
        )
    ax.plot(xs, ys, color=style.colour, ls=style.linestyle, lw=1.3, label=label)
    quick = (pts["mode"] == "quick").to_numpy()
    for hollow in (False, True):
        sel = quick == hollow
        if sel.any():
            ax.plot(
                xs[sel],
                ys[sel],
                ls="none",
                marker=style.marker,
                ms=4.2,
                color=style.colour,
                mfc="white" if hollow else style.colour,
                mew=1.1,
                label="_points",
            )
    for verdict, colour in ((REGRESSION, REGRESSION_COLOUR), (IMPROVEMENT, IMPROVEMENT_COLOUR)):
        sel = (pts.verdict == verdict).to_numpy()
        if sel.any():
            ax.scatter(
                xs[sel], ys[sel], s=120, facecolors="none", edgecolors=colour, linewidths=1.7,
                zorder=5, label="_change",
            )  # fmt: skip
    sel = _flagged(pts).to_numpy()
    if sel.any():
        ax.scatter(
            xs[sel], ys[sel], s=16, marker="x", c=FLAG_COLOUR, linewidths=0.9, zorder=6,
            label="_flag",
        )  # fmt: skip


def _y_axis(ax: Axes, p50s: pd.Series) -> None:
    """A log axis spanning the panel's p50s (bands running past them are cut): a step of
    the same size looks the same at any latency, and runtimes 100x apart share a panel.
    Over less than :data:`NARROW` (a factor) the ticks are plain values, else decades."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    values = [float(v) for v in p50s if math.isfinite(float(v)) and float(v) > 0]
    if not values:
        return
    lo, hi = min(values) / 1.25, max(values) * 1.25  # room for a ring round the ends
    if hi / lo < 1.6:  # a flat series: show a little room around it
        mid = math.sqrt(lo * hi)
        lo, hi = mid / 1.3, mid * 1.3
    if hi / lo >= NARROW:
        _log_axis(ax, "y")
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _num(v)))
    ax.set_ylim(lo, hi)


def _legend(rows: pd.DataFrame, palette: Palette, exporters: dict[tuple[str, str], int]) -> list:
    from matplotlib.lines import Line2D

    handles: list[Any] = []
    for fw, rt, ex in sorted(
        set(rows[["framework", "runtime", "exporter_label"]].itertuples(index=False, name=None))
    ):
        st = palette.style(fw, rt)
        name = f"{fw} {rt}" + (f" ({ex})" if exporters.get((fw, rt), 0) > 1 and ex else "")
        handles.append(
            Line2D([], [], color=st.colour, ls=st.linestyle, marker=st.marker, ms=5, label=name)
        )
    handles.append(Line2D([], [], ls="none", marker="o", ms=5, color="0.3", label="full run"))
    if (rows["mode"] == "quick").any():
        handles.append(
            Line2D([], [], ls="none", marker="o", ms=5, color="0.3", mfc="white", label="quick run")
        )
    for verdict, colour in ((REGRESSION, REGRESSION_COLOUR), (IMPROVEMENT, IMPROVEMENT_COLOUR)):
        if (rows.verdict == verdict).any():
            handles.append(
                Line2D(
                    [], [], ls="none", marker="o", ms=10, mfc="none", mec=colour, mew=1.7,
                    label=verdict,
                )
            )  # fmt: skip
    if _flagged(rows).any():
        handles.append(
            Line2D([], [], ls="none", marker="x", ms=5, color=FLAG_COLOUR, label="unstable or busy")
        )
    return handles


def history_figure(rows: pd.DataFrame, title: str, context: str) -> Figure:
    """The figure of one host, device, model and phase (``rows``: its judged points)."""
    rows = rows.copy()
    rows["exporter_label"] = rows.exporter.fillna("").astype(str).map(literal)
    runs = runs_in_order(rows)
    x = {r: i for i, r in enumerate(runs.run_id)}
    years = {t.year for t in runs.order_time if _known(t)}
    labels = [run_label(r, len(years) > 1) for r in runs.itertuples()]
    # Several runs of one commit (a re-run, a planted change) get the run's own time too.
    repeated = {label for label in labels if labels.count(label) > 1}
    labels = [
        literal(
            f"{label} {r.run_time:%H:%M:%S}" if label in repeated and _known(r.run_time) else label
        )
        for label, r in zip(labels, runs.itertuples(), strict=True)
    ]
    palette = Palette(list(zip(rows.framework, rows.runtime, strict=True)))
    exporters = rows.groupby(["framework", "runtime"]).exporter_label.nunique().to_dict()
    grid = _panels(rows)
    fig, axes = _figure(grid)
    ncols = max(len(r) for r in grid)
    for cells, row_axes in zip(grid, axes, strict=True):
        for (fw, threads, batch), ax in zip(cells, row_axes, strict=True):
            sub = rows[(rows.framework == fw) & (rows.batch_size == batch)]
            if threads is not None:
                sub = sub[_same(sub.threads, threads)]
            for (rt, ex), pts in sub.groupby(["runtime", "exporter_label"], sort=True):
                _draw_line(ax, pts, x, palette.style(fw, rt), f"{fw} {rt} {ex}")
            _y_axis(ax, sub.p50_ms)
            name = f"{literal(fw)} · batch {_num(float(batch))}"
            if threads is not None:
                name += f" · {_num(float(threads))} threads"
            _panel_title(fig, ax, name, ncols)
    _x_ticks(axes, labels)
    fig.supylabel("p50 (ms per call, log scale)", fontsize=9)
    _finish(fig, title, context, _legend(rows, palette, exporters))
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """``fig`` as a new PNG file at ``path`` in 256 colours (a third of the bytes of a
    full-colour one, the same to the eye: these charts are flat colours and their
    anti-aliasing), since the HTML report carries every chart inside it."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    buf.seek(0)
    with Image.open(buf) as img:
        few = img.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    with path.open("xb") as fh:
        few.save(fh, format="png", optimize=True)


def plot_history(judged: pd.DataFrame, out_dir: Path) -> dict[tuple[str, str, str], list[Path]]:
    """Write every figure of ``judged`` (:func:`bench.history.trends.detect`) into
    ``out_dir``: paths by (host, device, model), in phase order. A file of a name to be
    written that exists already raises :class:`FileExistsError` before any is written."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    planned: list[tuple[Path, tuple[str, str, str], str, Any]] = []
    used: set[str] = set()
    for (host, device, model), rows in judged.groupby(["host", "device", "model"], sort=True):
        for phase in sorted(rows.phase.unique(), key=phase_key):
            base = "history-" + "-".join(
                sanitise(v)[:n] for v, n in ((host, 50), (device, 30), (model, 40), (phase, 30))
            )
            name, k = base, 2
            while name in used:
                name, k = f"{base}-{k}", k + 1
            used.add(name)
            planned.append((out_dir / f"{name}.png", (host, device, model), phase, rows))
    for path, *_ in planned:
        if path.exists():
            raise FileExistsError(f"{path} exists already: choose a new folder for the plots")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str, str], list[Path]] = {}
    with matplotlib.rc_context(RC):
        for path, key, phase, rows in planned:
            host, device, model = key
            sub = rows[rows.phase == phase]
            names = [n for n in sub.device_name.dropna().astype(str).unique() if n]
            context = f"{literal(host)} · {literal(device)}"
            if len(names) == 1:
                context += f" ({literal(names[0])})"
            fig = history_figure(
                sub,
                f"{literal(model)} · {literal(phase)}: p50 per run, in commit order (lower is "
                "better; band: 95% interval)",
                f"{context} · runs: short commit and date (a repeated one: and the run's time)",
            )
            save_png(fig, path)
            fig.clear()
            written.setdefault(key, []).append(path)
    return written
