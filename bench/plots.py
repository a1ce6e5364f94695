"""Charts of one or more runs, as PNG files for the report.

``make_plots`` turns the cases DataFrame of :func:`bench.report.load_runs` into a few
figures, one per file, for every (host, device) pair it holds:

- ``latency_vs_batch``: inference p50 against batch size, a line per framework and runtime;
- ``native_vs_onnxruntime``: inference p50 of each runtime at the largest batch size;
- ``thread_scaling``: inference throughput against thread count (only when several
  thread counts were measured);
- ``train_step``: training-step p50 per batch size and framework.

Only cases with status ``ok`` and a positive p50 are drawn. Where several thread counts
were measured, the latency and training charts use the largest one (their titles say
which); where several runs measured the same case on one machine, the median of their
p50s is drawn. A framework has the same colour in every chart, and a runtime the same
line style, marker and hatching.

Importing this module imports neither matplotlib nor pandas: the functions do.
"""

from __future__ import annotations

import base64
import math
import re
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
#: Fixed colours for the frameworks we ship (Okabe-Ito, colour-blind safe); others get
#: the next free colour of ``_EXTRA_COLOURS`` in name order.
FRAMEWORK_COLOURS = {"mxnet": "#009E73", "tensorflow": "#0072B2", "torch": "#D55E00"}
_EXTRA_COLOURS = ("#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442", "#999999")
RUNTIME_ORDER = ("native", "native-eager", "onnxruntime")


@dataclass(frozen=True)
class RuntimeStyle:
    linestyle: Any
    marker: str
    hatch: str


RUNTIME_STYLES = {
    "native": RuntimeStyle("-", "o", ""),
    "native-eager": RuntimeStyle("--", "s", "///"),
    "onnxruntime": RuntimeStyle("-.", "^", "..."),
}
_EXTRA_STYLES = (
    RuntimeStyle(":", "D", "xxx"),
    RuntimeStyle((0, (5, 1, 1, 1, 1, 1)), "v", "\\\\\\"),
    RuntimeStyle((0, (1, 1)), "P", "++"),
)
#: Bars of one chart switch to a log axis when the tallest is this many times the lowest.
LOG_SPREAD = 20.0
_MAX_COLS = 3
_LOG_NOTE = " (log scale)"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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


# -- styles ------------------------------------------------------------------------------
class Palette:
    """Colour per framework and style per runtime, fixed for every chart of one call."""

    def __init__(self, frameworks: Sequence[str], runtimes: Sequence[str]) -> None:
        self.frameworks = sorted(set(frameworks))
        self.runtimes = [r for r in RUNTIME_ORDER if r in set(runtimes)] + sorted(
            set(runtimes) - set(RUNTIME_ORDER)
        )
        self.colours: dict[str, str] = {}
        extra = iter(c for c in _EXTRA_COLOURS if c not in FRAMEWORK_COLOURS.values())
        for i, fw in enumerate(self.frameworks):
            self.colours[fw] = FRAMEWORK_COLOURS.get(fw) or next(extra, None) or _cycle(i)
        self.styles: dict[str, RuntimeStyle] = {}
        others = iter(_EXTRA_STYLES)
        for rt in self.runtimes:
            self.styles[rt] = RUNTIME_STYLES.get(rt) or next(others, _EXTRA_STYLES[-1])

    def line_handles(self, frameworks: Sequence[str], runtimes: Sequence[str]) -> list[Any]:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=self.colours[f], lw=2.2, label=f)
            for f in self.frameworks
            if f in frameworks
        ]
        for rt in self.runtimes:
            if rt in runtimes:
                st = self.styles[rt]
                handles.append(
                    Line2D([], [], color="0.25", ls=st.linestyle, marker=st.marker, ms=5, label=rt)
                )
        return handles

    def bar_handles(self, frameworks: Sequence[str], runtimes: Sequence[str]) -> list[Any]:
        from matplotlib.patches import Patch

        handles = [
            Patch(facecolor=self.colours[f], edgecolor="white", label=f)
            for f in self.frameworks
            if f in frameworks
        ]
        if len(set(runtimes)) > 1 or any(self.styles[r].hatch for r in runtimes):
            handles += [
                Patch(facecolor="0.5", edgecolor="white", hatch=self.styles[r].hatch, label=r)
                for r in self.runtimes
                if r in runtimes
            ]
        return handles


def _cycle(i: int) -> str:
    return f"C{i % 10}"


# -- data --------------------------------------------------------------------------------
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

    df = cases.reset_index(drop=True)
    for col in ("host", "device", "framework", "model", "runtime", "phase", "status"):
        if col not in df:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    df.loc[df.host == "", "host"] = "unknown"
    df.loc[df.device == "", "device"] = "unknown"
    for col in ("batch_size", "threads", "p50_ms", "throughput_sps"):
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else math.nan
    for col in ("device_name", "run", "reason"):
        if col not in df:
            df[col] = ""
    ok_mask = (
        (df.status == "ok")
        & df.p50_ms.notna()
        & (df.p50_ms > 0)
        & df.batch_size.notna()
        & (df.batch_size > 0)
    )
    palette = Palette(
        [f for f in df.framework.unique() if f], [r for r in df.runtime.unique() if r]
    )
    keys = sorted({(h, d) for h, d in zip(df.host, df.device, strict=True)})
    groups, used = [], set()
    for host, device in keys:
        suffix = ""
        if len(keys) > 1:
            base = suffix = f"-{sanitise(host)}-{sanitise(device)}"
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


def _median(df: pd.DataFrame, keys: list[str], value: str) -> dict[tuple[Any, ...], float]:
    if df.empty:
        return {}
    s = df.groupby(keys, sort=True)[value].median().dropna()
    return {k if isinstance(k, tuple) else (k,): float(v) for k, v in s.items()}


def _failures(rows: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], str]:
    """The status of cases that did not succeed, by ``keys`` (for notes in empty slots)."""
    bad = rows[(rows.status != "ok") & (rows.status != "")]
    notes: dict[tuple[Any, ...], str] = {}
    for rec in bad[[*keys, "status"]].itertuples(index=False):
        notes.setdefault(tuple(rec[:-1]), str(rec[-1]))
    return notes


# -- figures -----------------------------------------------------------------------------
def _figure(n: int) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    ncols = min(_MAX_COLS, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(
        figsize=(max(5.2, 2.95 * ncols + 0.5), 2.75 * nrows + 1.35), dpi=DPI, layout="constrained"
    )
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
            ax.set_xlabel(text, fontsize=9)


def _finish(fig: Figure, title: str, context: str, handles: list[Any]) -> None:
    fig.suptitle(f"{title}\n{context}", fontsize=10.5)
    if handles:
        ncol = len(handles) if len(handles) <= 8 else math.ceil(len(handles) / 2)
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=ncol,
            frameon=False,
            fontsize=8.5,
            handlelength=2.6,
            columnspacing=1.4,
        )


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
        if decades <= 1.8 and mantissa in (2, 5):
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
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{int(v)}" for v in values], rotation=45 if len(values) > 6 else 0)
    lo, hi = values[0], values[-1]
    ax.set_xlim(lo / 1.6, hi * 1.6)


def _lines(
    ax: Axes,
    palette: Palette,
    series: dict[tuple[str, str], list[tuple[float, float]]],
) -> None:
    for fw in palette.frameworks:
        for rt in palette.runtimes:
            pts = sorted(series.get((fw, rt), []))
            if not pts:
                continue
            st = palette.styles[rt]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=palette.colours[fw],
                ls=st.linestyle,
                marker=st.marker,
                ms=4.5,
                lw=1.6,
                label=f"{fw} {rt}",
            )


def _bars(
    ax: Axes,
    palette: Palette,
    groups: Sequence[Any],
    slots: Sequence[Any],
    values: dict[tuple[Any, Any], float],
    notes: dict[tuple[Any, Any], str],
    style: Callable[[Any, Any], tuple[str, str]],
    group_label: Callable[[Any], str] = str,
) -> bool:
    """Clustered bars of ``values[(group, slot)]``, a cluster per group, a place per slot.

    ``style(group, slot)`` names the (framework, runtime) whose colour and hatching the
    bar takes. An empty place shows the status of the failed case, or "n/a". True when
    the bars are drawn on a log axis (their spread exceeds ``LOG_SPREAD``).
    """
    from matplotlib.transforms import blended_transform_factory

    heights = [v for v in values.values() if v > 0]
    if not heights:
        return False
    lo, hi = min(heights), max(heights)
    log = hi / lo > LOG_SPREAD
    if log:
        _log_axis(ax, "y")
    width = 0.84 / max(1, len(slots))
    text_at = blended_transform_factory(ax.transData, ax.transAxes)
    for i, group in enumerate(groups):
        for j, slot in enumerate(slots):
            x = i + (j - (len(slots) - 1) / 2) * width
            v = values.get((group, slot))
            if v is None or not v > 0:
                ax.text(
                    x,
                    0.02,
                    notes.get((group, slot), "n/a"),
                    transform=text_at,
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                    color="0.45",
                )
                continue
            fw, rt = style(group, slot)
            bar = ax.bar(
                x,
                v,
                width=width * 0.92,
                color=palette.colours[fw],
                edgecolor="white",
                linewidth=0.5,
                hatch=palette.styles[rt].hatch or None,
            )
            ax.bar_label(bar, labels=[_num(v)], rotation=90, fontsize=6.5, padding=2)
    ax.set_xticks(range(len(groups)), [group_label(g) for g in groups])
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.tick_params(axis="x", length=0)
    ax.grid(False, axis="x")
    if log:
        ax.set_ylim(lo / 2.5, hi * 4)
    else:
        ax.set_ylim(0, hi * 1.3)
    return log


# -- the charts --------------------------------------------------------------------------
def _latency_vs_batch(group: _Group, palette: Palette) -> Figure | None:
    inf, threads = _largest_threads(group.ok[group.ok.phase == "inference"])
    models = _models(inf)
    if not models:
        return None
    med = _median(inf, ["model", "framework", "runtime", "batch_size"], "p50_ms")
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for (m, fw, rt, b), v in med.items():
            if m == model:
                series.setdefault((fw, rt), []).append((b, v))
        _log_axis(ax, "y")
        _lines(ax, palette, series)
        _span_log_axis(ax, [v for pts in series.values() for _, v in pts])
        _value_ticks(ax, [b for pts in series.values() for b, _ in pts])
        ax.set_title(model, fontsize=10, fontweight="bold")
    _xlabel(axes, "batch size (samples)")
    fig.supylabel("p50 latency per batch (ms, log scale)", fontsize=9)
    _finish(
        fig,
        "Inference latency vs batch size (lower is better)",
        group.context(threads),
        palette.line_handles(list(inf.framework.unique()), list(inf.runtime.unique())),
    )
    return fig


def _native_vs_onnxruntime(group: _Group, palette: Palette) -> Figure | None:
    inf, threads = _largest_threads(group.ok[group.ok.phase == "inference"])
    models = _models(inf)
    if not models:
        return None
    rows = _same_threads(group.rows[group.rows.phase == "inference"], threads)
    failures = _failures(rows, ["model", "batch_size", "framework", "runtime"])
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        sub = inf[inf.model == model]
        batch = sub.batch_size.max()
        sub = sub[sub.batch_size == batch]
        notes = {
            (fw, rt): status
            for (m, b, fw, rt), status in failures.items()
            if m == model and b == batch
        }
        frameworks = [
            f for f in palette.frameworks if f in {*sub.framework, *(k[0] for k in notes)}
        ]
        runtimes = [r for r in palette.runtimes if r in {*sub.runtime, *(k[1] for k in notes)}]
        values = _median(sub, ["framework", "runtime"], "p50_ms")
        log = _bars(ax, palette, frameworks, runtimes, values, notes, style=lambda g, s: (g, s))
        ax.set_title(
            f"{model}, batch {int(batch)}{_LOG_NOTE * log}", fontsize=10, fontweight="bold"
        )
    fig.supylabel("p50 latency per batch (ms)", fontsize=9)
    _finish(
        fig,
        "Native runtimes vs ONNX Runtime at the largest batch (lower is better)",
        group.context(threads),
        palette.bar_handles(list(inf.framework.unique()), list(inf.runtime.unique())),
    )
    return fig


def _thread_scaling(group: _Group, palette: Palette) -> Figure | None:
    inf = group.ok[(group.ok.phase == "inference") & group.ok.threads.notna()]
    if inf.threads.nunique() < 2:
        return None
    inf = inf.assign(
        sps=inf.throughput_sps.where(
            inf.throughput_sps.notna(), inf.batch_size / (inf.p50_ms / 1e3)
        )
    )
    models = _models(inf)
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        sub = inf[inf.model == model]
        batch = sub.batch_size.max()
        sub = sub[sub.batch_size == batch]
        series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for (fw, rt, t), v in _median(sub, ["framework", "runtime", "threads"], "sps").items():
            series.setdefault((fw, rt), []).append((t, v))
        ys = [v for pts in series.values() for _, v in pts if v > 0]
        log = bool(ys) and max(ys) / min(ys) > LOG_SPREAD
        if log:
            _log_axis(ax, "y")
        else:
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _num(v)))
            ax.set_ylim(0, max(ys, default=1) * 1.12)
        _lines(ax, palette, series)
        threads = sorted({t for pts in series.values() for t, _ in pts})
        _value_ticks(ax, threads)
        ax.set_title(
            f"{model}, batch {int(batch)}{_LOG_NOTE * log}", fontsize=10, fontweight="bold"
        )
    _xlabel(axes, "threads")
    fig.supylabel("throughput (samples/s)", fontsize=9)
    _finish(
        fig,
        "Inference throughput vs threads at the largest batch (higher is better)",
        group.context(),
        palette.line_handles(list(inf.framework.unique()), list(inf.runtime.unique())),
    )
    return fig


def _train_step(group: _Group, palette: Palette) -> Figure | None:
    train, threads = _largest_threads(group.ok[group.ok.phase == "train_step"])
    models = _models(train)
    if not models:
        return None
    rows = _same_threads(group.rows[group.rows.phase == "train_step"], threads)
    failures = _failures(rows, ["model", "batch_size", "framework", "runtime"])
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        sub = train[train.model == model]
        notes = {(b, (fw, rt)): status for (m, b, fw, rt), status in failures.items() if m == model}
        batches = sorted({*sub.batch_size, *(k[0] for k in notes)})
        present = {*zip(sub.framework, sub.runtime, strict=True), *(k[1] for k in notes)}
        slots = [(f, r) for f in palette.frameworks for r in palette.runtimes if (f, r) in present]
        values = {
            (b, (fw, rt)): v
            for (b, fw, rt), v in _median(
                sub, ["batch_size", "framework", "runtime"], "p50_ms"
            ).items()
        }
        log = _bars(
            ax,
            palette,
            batches,
            slots,
            values,
            notes,
            style=lambda _g, s: s,
            group_label=lambda b: f"{int(b)}",
        )
        ax.set_title(f"{model}{_LOG_NOTE * log}", fontsize=10, fontweight="bold")
    _xlabel(axes, "batch size (samples)")
    fig.supylabel("p50 time per training step (ms)", fontsize=9)
    _finish(
        fig,
        "Training step time (lower is better)",
        group.context(threads),
        palette.bar_handles(list(train.framework.unique()), list(train.runtime.unique())),
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

    The order is by (host, device), then latency vs batch, native vs ONNX Runtime, thread
    scaling, training step. A chart without data is left out. With more than one
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
    for path, chart, group in planned:
        fig = chart(group, palette)
        if fig is None:
            continue
        with path.open("xb") as fh:
            fig.savefig(fh, format="png", dpi=DPI, facecolor="white")
        fig.clear()
        written.append(path)
    return written
