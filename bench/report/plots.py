"""Charts of one or more runs, as PNG files for the report.

``make_plots`` turns the cases DataFrame of :func:`bench.report.load_runs` (summary.csv)
into a few figures, one per file, for every (host, device) pair it holds:

- ``latency_vs_batch``: inference p50 against batch size, per framework its best native
  mode (solid) and ONNX Runtime on its export (dashed), with the 95% interval as error
  bars;
- ``native_vs_onnxruntime``: inference p50 of every mode and of ONNX Runtime at the
  largest batch size, with the 95% interval as error bars;
- ``thread_scaling``: inference throughput against thread count (only when several
  thread counts were measured), with its 95% interval as error bars where known;
- ``train_step``: training-step p50 against batch size, per framework and training mode,
  with the 95% interval as error bars.

One scale per figure: every panel of a figure has the same scale on each axis. Batch
sizes and thread counts are on log axes, latencies always on a log axis (they span
decades over batch sizes); the bars of every mode and the throughputs switch to a log
axis, on every panel at once, when any panel's values span more than ``LOG_SPREAD``.

Runtimes are whatever modes the adapters name: native modes are drawn solid and
``onnxruntime`` dashed (hatched in bars); a mode's marker is its place among its
framework's modes. A framework has the same colour in every chart and every report: the
``color`` its adapter class declares (:func:`bench.adapters.adapter_class`), else (a
framework not registered here, or an adapter without one) one of ``EXTRA_COLOURS``
chosen by a hash of its name, never by which other frameworks a report holds.

Titles fit their figure: a line too wide is wrapped (at `` · `` first, then at spaces),
a word too wide for a line ends in an ellipsis, and a title keeps at most a few lines.

Only cases with status ``ok`` and a positive p50 are drawn. Where several thread counts
were measured, the latency and training charts use the largest one (their titles say
which); where several runs measured the same case on one machine, the median of their
p50s is drawn. Every text from the data (host, device, model, framework and mode names)
is drawn as is, on one line (:func:`literal`): math text is off, so a ``$`` in a host
name cannot break a chart, and control characters are drawn as spaces.

Importing this module imports neither matplotlib nor pandas: the functions do.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 110
ORT = "onnxruntime"
#: Colours for a framework whose adapter declares none or is not registered here, chosen
#: by a hash of its name (Paul Tol's muted set: none is a shipped adapter's colour).
EXTRA_COLOURS = (
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
    "#AA4499", "#777777",
)  # fmt: skip
_HEX = re.compile(r"#[0-9A-Fa-f]{6}")
NATIVE_LINE = "-"
ORT_LINE = "--"
ORT_HATCH = "///"
#: Markers of a framework's modes, in the order of its modes (default first).
MARKERS = ("o", "s", "D", "v", "P", "X", "*")
ORT_MARKER = "^"
#: Bars and throughputs switch to a log axis (in every panel of the figure) when, in any
#: panel, the largest value is this many times the least.
LOG_SPREAD = 20.0
#: Most lines of a figure's title (the title, then the host and device line).
TITLE_LINES = 4
#: Most characters of a label from the data (mode names in legends and bar labels).
LABEL_CHARS = 32
_MAX_COLS = 3
_LOG_NOTE = " (log scale)"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: No data-derived text is parsed as math (a host named "$\\foo{$" stays a name).
RC = {"text.parse_math": False}


def literal(text: Any) -> str:
    """``text`` from the data as one line of plain text for a chart: line breaks and
    other control characters (which no font has a glyph for) become single spaces. With
    :data:`RC` it is drawn as is, ``$`` included."""
    chars = (" " if unicodedata.category(ch) == "Cc" else ch for ch in str(text))
    return " ".join("".join(chars).split())


def embed_png(path: Path) -> str:
    """A ``data:image/png;base64,...`` URI of the PNG at ``path``, for self-contained HTML."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def sanitise(name: Any) -> str:
    """``name`` reduced to ``[A-Za-z0-9_.-]`` for use in a file name."""
    text = _UNSAFE.sub("_", str(name)).strip("_")
    return text or "unknown"


# -- styles --------------------------------------------------------------------------------
@functools.cache
def declared_colour(framework: str) -> str | None:
    """The ``color`` the adapter registered as ``framework`` declares (``#rrggbb``);
    ONNX Runtime's own for ``onnxruntime``; ``None`` where there is none (not registered
    here, not loadable, or no valid colour declared)."""
    try:
        from bench.adapters import adapter_class
        from bench.adapters.base import ONNXRUNTIME_COLOR

        if framework == ORT:
            return ONNXRUNTIME_COLOR
        colour = adapter_class(framework).color
    except Exception:  # any registry or import failure: the fallback colour
        return None
    return colour if isinstance(colour, str) and _HEX.fullmatch(colour) else None


def fallback_colour(framework: str) -> str:
    """A colour from ``framework``'s name alone: the same in every process and report."""
    return EXTRA_COLOURS[zlib.crc32(framework.encode("utf-8")) % len(EXTRA_COLOURS)]


def framework_colour(framework: str) -> str:
    """``framework``'s colour in every chart: its adapter's, else one from its name."""
    return declared_colour(framework) or fallback_colour(framework)


@dataclass(frozen=True)
class Style:
    colour: str
    linestyle: str
    marker: str
    hatch: str


class Palette:
    """Colour per framework, line style per kind of runtime, marker per mode."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.frameworks = sorted({fw for fw, _ in pairs})
        self.modes: dict[str, list[str]] = {fw: [] for fw in self.frameworks}
        for fw, rt in sorted(set(pairs)):
            if rt != ORT:
                self.modes[fw].append(rt)

    def colour(self, framework: str) -> str:
        return framework_colour(framework)

    def style(self, framework: str, runtime: str) -> Style:
        colour = self.colour(framework)
        if runtime == ORT:
            return Style(colour, ORT_LINE, ORT_MARKER, ORT_HATCH)
        modes = self.modes.get(framework, [])
        i = modes.index(runtime) if runtime in modes else len(modes)
        return Style(colour, NATIVE_LINE, MARKERS[i % len(MARKERS)], "")

    def runtimes(self, framework: str) -> list[str]:
        return [*self.modes.get(framework, []), ORT]


# -- data ----------------------------------------------------------------------------------
@dataclass
class _Group:
    host: str
    device: str
    suffix: str  # "" or "-<host>-<device>", already sanitised
    rows: Any  # pandas.DataFrame: every case of this (host, device)
    ok: Any  # pandas.DataFrame: its ok cases with a positive p50
    device_name: str
    runs: int

    def context(self, threads: int | None = None) -> str:
        where = f"{self.host} · {self.device}"
        if self.device_name:
            where += f" ({_shorten(self.device_name, 48)})"
        if threads is not None:
            where += f" · {threads} thread{'s' if threads != 1 else ''}"
        if self.runs > 1:
            where += f" · median of {self.runs} runs"
        return where


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _prepare(cases: pd.DataFrame) -> tuple[list[_Group], Palette]:
    import pandas as pd

    df = cases.reset_index(drop=True).copy()
    for col in ("host", "device", "framework", "model", "runtime", "phase", "status"):
        if col not in df:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str).map(literal)
    df.loc[df.host == "", "host"] = "unknown"
    df.loc[df.device == "", "device"] = "unknown"
    for col in (
        "batch_size",
        "threads",
        "p50_ms",
        "p50_ci_low_ms",
        "p50_ci_high_ms",
        "throughput_sps",
        "throughput_ci_low_sps",
        "throughput_ci_high_sps",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else math.nan
    for col in ("device_name", "run", "reason"):
        if col not in df:
            df[col] = ""
    df["device_name"] = df.device_name.fillna("").astype(str).map(literal)
    ok_mask = (
        (df.status == "ok")
        & df.p50_ms.notna()
        & (df.p50_ms > 0)
        & df.batch_size.notna()
        & (df.batch_size > 0)
    )
    palette = Palette([(f, r) for f, r in zip(df.framework, df.runtime, strict=True) if f and r])
    keys = sorted({(h, d) for h, d in zip(df.host, df.device, strict=True)})
    groups, used = [], set()
    for host, device in keys:
        suffix = ""
        if len(keys) > 1:
            # Each name cut short: a file name has at most 255 bytes.
            base = suffix = f"-{sanitise(host)[:60]}-{sanitise(device)[:40]}"
            n = 2
            while suffix in used:
                suffix, n = f"{base}-{n}", n + 1
            used.add(suffix)
        rows = df[(df.host == host) & (df.device == device)]
        ok = rows[ok_mask.loc[rows.index]]
        names = [n for n in ok.device_name.fillna("").astype(str).unique() if n]
        groups.append(
            _Group(
                host=host,
                device=device,
                suffix=suffix,
                rows=rows,
                ok=ok,
                device_name=names[0] if len(names) == 1 else "",
                runs=max(1, int(ok.run.nunique())),
            )
        )
    return groups, palette


def _largest_threads(df: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    """The rows measured with the largest thread count, and that count (None: unknown)."""
    if df.empty or not df.threads.notna().any():
        return df, None
    top = df.threads.max()
    return df[df.threads == top], int(top)


def _same_threads(df: pd.DataFrame, threads: int | None) -> pd.DataFrame:
    return df if threads is None else df[df.threads == threads]


def _models(df: pd.DataFrame) -> list[str]:
    return sorted(m for m in df.model.unique() if m)


_Point = tuple[float, float, float, float]  # x, p50, low, high


def _medians(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The median p50 (and interval ends) over runs of each ``keys``."""
    cols = ["p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"]
    return df.groupby(keys, sort=True)[cols].median().reset_index()


def _best_native(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys`` (framework, model, batch...), the native mode with the lowest p50."""
    native = _medians(df[df.runtime != ORT], [*keys, "runtime"])
    if native.empty:
        return native
    return native.loc[native.groupby(keys).p50_ms.idxmin()].reset_index(drop=True)


def _failures(rows: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], str]:
    """The status of cases that did not succeed, by ``keys`` (for notes in empty slots)."""
    bad = rows[(rows.status != "ok") & (rows.status != "")]
    notes: dict[tuple[Any, ...], str] = {}
    for rec in bad[[*keys, "status"]].itertuples(index=False):
        notes.setdefault(tuple(rec[:-1]), str(rec[-1]))
    return notes


# -- figures -------------------------------------------------------------------------------
def _figure(n: int, height: float = 2.75) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    ncols = min(_MAX_COLS, n)
    nrows = math.ceil(n / ncols)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(
        figsize=(max(5.2, 2.95 * ncols + 0.5), height * nrows + 1.35),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)  # a renderer to measure titles with (_fit)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    for ax in axes[:n]:
        ax.grid(True, which="major", color="0.88", lw=0.7)
        ax.set_axisbelow(True)
        ax.tick_params(which="both", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes[:n]


def _xlabel(axes: Sequence[Axes], text: str) -> None:
    """``text`` under every panel with none below it (a figure-wide label would collide
    with the legend under the panels)."""
    ncols = min(_MAX_COLS, len(axes))
    for i, ax in enumerate(axes):
        if i + ncols >= len(axes):
            fig = ax.get_figure()
            width = 0.9 * fig.get_figwidth() * fig.dpi / ncols  # refitted by _finish
            ax.set_xlabel(_fit(fig, text, width, 9, max_lines=2), fontsize=9)


def _text_width(fig: Figure, text: str, fontsize: float, weight: str) -> float:
    """The width of ``text`` drawn as plain text in ``fig``, in pixels."""
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    prop = FontProperties(size=fontsize, weight=weight)
    return renderer.get_text_width_height_descent(text, prop, ismath=False)[0]


def _fit(
    fig: Figure,
    text: str,
    width: float,
    fontsize: float,
    weight: str = "normal",
    max_lines: int = TITLE_LINES,
) -> str:
    """``text`` in lines no wider than ``width`` pixels: broken at `` · `` where it can
    be, else at spaces; a word too wide for a line, and the last line kept when there
    would be more than ``max_lines``, end in an ellipsis."""

    def fits(t: str) -> bool:
        return _text_width(fig, t, fontsize, weight) <= width

    def clip(t: str) -> str:
        if fits(t):
            return t
        lo, hi = 0, len(t)  # the longest prefix that fits with its ellipsis
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(t[:mid].rstrip() + "…"):
                lo = mid
            else:
                hi = mid - 1
        return t[:lo].rstrip() + "…"

    lines: list[str] = []
    for para in text.split("\n"):
        cur = ""
        for seg in para.split(" · "):
            if fits(f"{cur} · {seg}" if cur else seg):
                cur = f"{cur} · {seg}" if cur else seg
                continue
            if cur:
                lines.append(cur)
                cur = ""
            for word in seg.split(" "):
                if fits(f"{cur} {word}" if cur else word):
                    cur = f"{cur} {word}" if cur else word
                else:
                    if cur:
                        lines.append(cur)
                    cur = clip(word)
        lines.append(cur)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], clip(lines[max_lines - 1] + " …")]
    return "\n".join(lines)


def _panel_title(fig: Figure, ax: Axes, text: str, ncols: int) -> None:
    """A panel's title (a model name from the data), fitted to its column."""
    size = 10
    width = 0.9 * fig.get_figwidth() * fig.dpi / ncols
    ax.set_title(
        _fit(fig, text, width, size, "bold", max_lines=2), fontsize=size, fontweight="bold"
    )


def _label(text: str) -> str:
    """A legend or bar label from the data, no longer than :data:`LABEL_CHARS`."""
    return _shorten(text, LABEL_CHARS)


def _finish(fig: Figure, title: str, context: str, handles: list[Any]) -> None:
    size = 10.5
    width = 0.96 * fig.get_figwidth() * fig.dpi
    top = _fit(fig, title, width, size, max_lines=2)
    where = _fit(fig, context, width, size, max_lines=TITLE_LINES - top.count("\n") - 1)
    fig.suptitle(f"{top}\n{where}", fontsize=size)
    if handles:
        # As many entries per row as fit the figure's width (labels are any mode name).
        longest = max(len(str(h.get_label())) for h in handles)
        per_row = max(1, int(fig.get_figwidth() / (0.075 * longest + 0.75)))
        rows = math.ceil(len(handles) / per_row)
        ncol = math.ceil(len(handles) / rows)
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=ncol,
            frameon=False,
            fontsize=8.5,
            handlelength=2.6,
            columnspacing=1.4,
        )
    # Panels are narrower than their columns by their tick labels: with a first layout's
    # widths, fit each panel's title and x label to its panel.
    fig.get_layout_engine().execute(fig)
    for ax in fig.axes:
        width = ax.get_position().width * fig.get_figwidth() * fig.dpi
        for text, weight in ((ax.title, "bold"), (ax.xaxis.label, "normal")):
            if text.get_text():
                size = text.get_fontsize()
                text.set_text(_fit(fig, text.get_text(), width, size, weight, max_lines=2))


def _num(v: float) -> str:
    """A short label: three significant digits, thousands as k and millions as M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 1e3:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _log_axis(ax: Axes, which: str) -> None:
    """Log scale with plain-number labels; minor ticks labelled when few decades show."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis.set_major_locator(LogLocator(base=10))
    axis.set_minor_locator(LogLocator(base=10, subs=(2, 3, 4, 5, 6, 7, 8, 9)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _num(v)))

    def minor(v: float, _pos: int) -> str:
        lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
        if lo <= 0 or hi <= 0 or v <= 0:
            return ""
        decades = math.log10(hi / lo)
        mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 3)
        if decades <= 1.1 and mantissa in (2, 3, 5):
            return _num(v)
        if decades <= 2.3 and mantissa in (2, 5):
            return _num(v)
        return ""

    axis.set_minor_formatter(FuncFormatter(minor))


def _span_log_axis(ax: Axes, values: Sequence[float], factor: float = 4.0) -> None:
    """Widen a log y axis to at least ``factor`` so it shows at least two labelled ticks."""
    values = [v for v in values if v > 0]
    if not values:
        return
    lo, hi = min(values), max(values)
    if hi / lo < factor:
        mid = math.sqrt(lo * hi)
        ax.set_ylim(mid / math.sqrt(factor), mid * math.sqrt(factor))


def _value_ticks(ax: Axes, values: Sequence[float]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    values = sorted(set(values))
    if not values:
        return
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{int(v)}" for v in values], rotation=45 if len(values) > 6 else 0)
    lo, hi = values[0], values[-1]
    ax.set_xlim(lo / 1.6, hi * 1.6)


def _line(ax: Axes, style: Style, pts: list[_Point], label: str) -> None:
    """A line through ``pts``, each point with its interval (where known) as an error bar
    in the line's colour."""
    pts = sorted(pts)
    ax.plot(
        [p[0] for p in pts],
        [p[1] for p in pts],
        color=style.colour,
        ls=style.linestyle,
        marker=style.marker,
        ms=4.5,
        lw=1.6,
        label=label,
    )
    known = [p for p in pts if math.isfinite(p[2]) and math.isfinite(p[3])]
    if known:
        ax.errorbar(
            [p[0] for p in known],
            [p[1] for p in known],
            yerr=[
                [max(0.0, y - lo) for _x, y, lo, _hi in known],
                [max(0.0, hi - y) for _x, y, _lo, hi in known],
            ],
            fmt="none",
            ecolor=style.colour,
            elinewidth=1.1,
            capsize=2.5,
            capthick=1.1,
            label="_nolegend_",
        )


# -- the charts ----------------------------------------------------------------------------
def _latency_vs_batch(group: _Group, palette: Palette) -> Figure | None:
    from matplotlib.lines import Line2D

    inf, threads = _largest_threads(group.ok[group.ok.phase == "inference"])
    models = _models(inf)
    if not models:
        return None
    best = _best_native(inf, ["model", "framework", "batch_size"])
    ort = _medians(inf[inf.runtime == ORT], ["model", "framework", "batch_size"])
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        values: list[float] = []
        for kind, table in (("native", best), (ORT, ort)):
            sub = table[table.model == model]
            for fw in palette.frameworks:
                rows = sub[sub.framework == fw]
                if rows.empty:
                    continue
                pts = [
                    (r.batch_size, r.p50_ms, r.p50_ci_low_ms, r.p50_ci_high_ms)
                    for r in rows.itertuples()
                ]
                values += [p[1] for p in pts]
                style = (
                    Style(palette.colour(fw), ORT_LINE, ORT_MARKER, "")
                    if kind == ORT
                    else Style(palette.colour(fw), NATIVE_LINE, "o", "")
                )
                _line(ax, style, pts, f"{fw} {kind}")
        _log_axis(ax, "y")
        _span_log_axis(ax, values)
        _value_ticks(ax, [b for b in inf[inf.model == model].batch_size.unique()])
        _panel_title(fig, ax, model, min(_MAX_COLS, len(models)))
    _xlabel(axes, "batch size (samples, log scale)")
    fig.supylabel("p50 latency per batch (ms, log scale)", fontsize=9)
    present = sorted(set(inf.framework))
    handles = [
        Line2D([], [], color=palette.colour(f), lw=2.2, label=_label(f))
        for f in palette.frameworks
        if f in present
    ]
    if len(best):
        handles.append(
            Line2D([], [], color="0.25", ls=NATIVE_LINE, lw=1.6, label="best native mode")
        )
    if len(ort):
        handles.append(
            Line2D([], [], color="0.25", ls=ORT_LINE, lw=1.6, label="ONNX Runtime (own export)")
        )
    _finish(
        fig,
        "Inference latency vs batch size (lower is better; error bars: 95% interval)",
        group.context(threads),
        handles,
    )
    return fig


def _spans_decades(panels: Sequence[Sequence[float]]) -> bool:
    """Whether any panel's positive values span more than :data:`LOG_SPREAD`: then every
    panel of the figure gets a log axis."""
    for values in panels:
        pos = [v for v in values if v > 0 and math.isfinite(v)]
        if pos and max(pos) / min(pos) > LOG_SPREAD:
            return True
    return False


def _native_vs_onnxruntime(group: _Group, palette: Palette) -> Figure | None:
    from matplotlib.patches import Patch

    inf, threads = _largest_threads(group.ok[group.ok.phase == "inference"])
    models = _models(inf)
    if not models:
        return None
    rows_all = _same_threads(group.rows[group.rows.phase == "inference"], threads)
    failures = _failures(rows_all, ["model", "batch_size", "framework", "runtime"])
    # Every panel's bars first: the scale is chosen for the whole figure.
    panels = []
    for model in models:
        sub = inf[inf.model == model]
        batch = sub.batch_size.max()
        sub = _medians(sub[sub.batch_size == batch], ["framework", "runtime"])
        notes = {
            (fw, rt): status
            for (m, b, fw, rt), status in failures.items()
            if m == model and b == batch
        }
        values = {(r.framework, r.runtime): r for r in sub.itertuples()}
        slots = [
            (fw, rt)
            for fw in palette.frameworks
            for rt in palette.runtimes(fw)
            if (fw, rt) in values or (fw, rt) in notes
        ]
        panels.append((model, batch, values, notes, slots))
    log = _spans_decades([[r.p50_ms for r in p[2].values()] for p in panels])
    # Horizontal bars: one per framework and runtime, whatever the modes are called.
    n_bars = max(len(p[4]) for p in panels)
    fig, axes = _figure(len(models), height=max(2.75, 0.28 * n_bars + 1.0))
    for ax, (model, batch, values, notes, slots) in zip(axes, panels, strict=True):
        heights = [r.p50_ms for r in values.values()]
        ends = [
            max(r.p50_ms, r.p50_ci_high_ms if math.isfinite(r.p50_ci_high_ms) else 0)
            for r in values.values()
        ]
        if log:
            _log_axis(ax, "x")
        for i, (fw, rt) in enumerate(slots):
            y = len(slots) - 1 - i
            r = values.get((fw, rt))
            if r is None:
                ax.text(
                    0.01,
                    y,
                    notes.get((fw, rt), "n/a"),
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=7,
                    color="0.45",
                )
                continue
            st = palette.style(fw, rt)
            err = None
            if math.isfinite(r.p50_ci_low_ms) and math.isfinite(r.p50_ci_high_ms):
                err = [
                    [max(0.0, r.p50_ms - r.p50_ci_low_ms)],
                    [max(0.0, r.p50_ci_high_ms - r.p50_ms)],
                ]
            ax.barh(
                y,
                r.p50_ms,
                height=0.75,
                color=st.colour,
                edgecolor="white",
                hatch=st.hatch or None,
                xerr=err,
                error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"},
            )
            end = r.p50_ms if err is None else r.p50_ms + err[1][0]
            ax.annotate(
                _num(r.p50_ms),
                xy=(end, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=6.5,
            )
        ax.set_yticks(
            range(len(slots)),
            [_label(f"{fw} {rt}") for fw, rt in reversed(slots)],
            fontsize=7.5,
        )
        ax.tick_params(axis="y", length=0)
        ax.grid(False, axis="y")
        if heights:
            if log:
                ax.set_xlim(min(heights) / 2.5, max(ends) * 4)
            else:
                ax.set_xlim(0, max(ends) * 1.3)
        _panel_title(fig, ax, f"{model}, batch {int(batch)}", min(_MAX_COLS, len(models)))
    _xlabel(axes, f"p50 latency per batch (ms{', log scale' if log else ''})")
    present = sorted(set(inf.framework))
    handles = [
        Patch(facecolor=palette.colour(f), edgecolor="white", label=_label(f))
        for f in palette.frameworks
        if f in present
    ]
    if (inf.runtime == ORT).any():
        handles.append(
            Patch(facecolor="0.6", edgecolor="white", hatch=ORT_HATCH, label="ONNX Runtime")
        )
    _finish(
        fig,
        "Every mode vs ONNX Runtime at the largest batch (lower is better; "
        "error bars: 95% interval)",
        group.context(threads),
        handles,
    )
    return fig


def _mode_handles(palette: Palette, df: pd.DataFrame) -> list[Any]:
    from matplotlib.lines import Line2D

    pairs = sorted(set(zip(df.framework, df.runtime, strict=True)))
    handles = []
    for fw, rt in pairs:
        st = palette.style(fw, rt)
        handles.append(
            Line2D(
                [],
                [],
                color=st.colour,
                ls=st.linestyle,
                marker=st.marker,
                ms=5,
                label=_label(f"{fw} {rt}"),
            )
        )
    return handles


def _thread_scaling(group: _Group, palette: Palette) -> Figure | None:
    inf = group.ok[(group.ok.phase == "inference") & group.ok.threads.notna()]
    if inf.threads.nunique() < 2:
        return None
    # Throughput and its interval: as recorded, else from the p50 and its interval.
    per_ms = inf.batch_size * 1e3
    inf = inf.assign(
        sps=inf.throughput_sps.where(inf.throughput_sps.notna(), per_ms / inf.p50_ms),
        sps_low=inf.throughput_ci_low_sps.where(
            inf.throughput_ci_low_sps.notna(), per_ms / inf.p50_ci_high_ms
        ),
        sps_high=inf.throughput_ci_high_sps.where(
            inf.throughput_ci_high_sps.notna(), per_ms / inf.p50_ci_low_ms
        ),
    )
    models = _models(inf)
    panels = []
    for model in models:
        sub = inf[inf.model == model]
        batch = sub.batch_size.max()
        sub = sub[sub.batch_size == batch]
        med = sub.groupby(["framework", "runtime", "threads"], sort=True)[
            ["sps", "sps_low", "sps_high"]
        ].median()
        series: dict[tuple[str, str], list[_Point]] = {}
        for (fw, rt, t), r in med.iterrows():
            series.setdefault((fw, rt), []).append((t, r.sps, r.sps_low, r.sps_high))
        panels.append((model, batch, series))
    log = _spans_decades([[p[1] for pts in s.values() for p in pts] for _m, _b, s in panels])
    fig, axes = _figure(len(models))
    for ax, (model, batch, series) in zip(axes, panels, strict=True):
        ys = [p[1] for pts in series.values() for p in pts if p[1] > 0]
        tops = [p[3] if math.isfinite(p[3]) else p[1] for pts in series.values() for p in pts]
        if log:
            _log_axis(ax, "y")
            _span_log_axis(ax, ys)
        else:
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _num(v)))
            ax.set_ylim(0, max(tops, default=1) * 1.12)
        for (fw, rt), pts in sorted(series.items()):
            _line(ax, palette.style(fw, rt), pts, f"{fw} {rt}")
        threads = sorted({p[0] for pts in series.values() for p in pts})
        _value_ticks(ax, threads)
        _panel_title(fig, ax, f"{model}, batch {int(batch)}", min(_MAX_COLS, len(models)))
    _xlabel(axes, "threads (log scale)")
    fig.supylabel(f"throughput (samples/s{', log scale' if log else ''})", fontsize=9)
    _finish(
        fig,
        "Inference throughput vs threads at the largest batch (higher is better; "
        "error bars: 95% interval)",
        group.context(),
        _mode_handles(palette, inf),
    )
    return fig


def _train_step(group: _Group, palette: Palette) -> Figure | None:
    train, threads = _largest_threads(group.ok[group.ok.phase == "train_step"])
    models = _models(train)
    if not models:
        return None
    med = _medians(train, ["model", "framework", "runtime", "batch_size"])
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        sub = med[med.model == model]
        for (fw, rt), rows in sub.groupby(["framework", "runtime"], sort=True):
            pts = [
                (r.batch_size, r.p50_ms, r.p50_ci_low_ms, r.p50_ci_high_ms)
                for r in rows.itertuples()
            ]
            _line(ax, palette.style(fw, rt), pts, f"{fw} {rt}")
        _log_axis(ax, "y")
        _span_log_axis(ax, list(sub.p50_ms))
        _value_ticks(ax, list(sub.batch_size.unique()))
        _panel_title(fig, ax, model, min(_MAX_COLS, len(models)))
    _xlabel(axes, "batch size (samples, log scale)")
    fig.supylabel("p50 time per training step (ms, log scale)", fontsize=9)
    _finish(
        fig,
        "Training step time (lower is better; error bars: 95% interval)",
        group.context(threads),
        _mode_handles(palette, train),
    )
    return fig


_CHARTS: tuple[tuple[str, Callable[[_Group, Palette], Figure | None]], ...] = (
    ("latency_vs_batch", _latency_vs_batch),
    ("native_vs_onnxruntime", _native_vs_onnxruntime),
    ("thread_scaling", _thread_scaling),
    ("train_step", _train_step),
)


def make_plots(cases: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the charts of ``cases`` as PNG files into ``out_dir``; their paths, in order.

    The order is by (host, device), then latency vs batch, every mode vs ONNX Runtime,
    thread scaling, training step. A chart without data is left out. With more than one
    (host, device) pair in ``cases``, each name ends in ``-<host>-<device>``. An existing
    file of a name to be written raises :class:`FileExistsError` before anything is
    written.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    if cases is None or len(cases) == 0:
        return []
    groups, palette = _prepare(cases)
    planned: list[tuple[Path, Callable[[_Group, Palette], Figure | None], _Group]] = []
    for group in groups:
        for name, chart in _CHARTS:
            planned.append((out_dir / f"{name}{group.suffix}.png", chart, group))
    for path, _chart, _group in planned:
        if path.exists():
            raise FileExistsError(f"{path} exists already: choose a new folder for the plots")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with matplotlib.rc_context(RC):
        for path, chart, group in planned:
            fig = chart(group, palette)
            if fig is None:
                continue
            with path.open("xb") as fh:
                fig.savefig(fh, format="png", dpi=DPI, facecolor="white")
            fig.clear()
            written.append(path)
    return written
