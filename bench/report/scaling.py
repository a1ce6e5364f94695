"""How each framework's cost grows with the work: the scaling report.

Every model comes in sizes (``mlp@x0.0625`` ... ``mlp@x64``, ``models/spec.py``) that
run the same code on 1000 times more or less arithmetic. For each framework and runtime
(and each architecture: an LSTM's recurrence does not run at a GEMM's rate), the
inference cases are fitted with the simplest model of a call's cost::

    latency = overhead + work / rate

where ``work`` is the FLOPs of the call: the graph's FLOPs per sample, at batch 1 (every
size is timed there; a batch of the same FLOPs runs other kernels).
``overhead`` is what a call costs however little it computes (dispatch, Python, the
framework's bookkeeping); ``rate`` the FLOP/s it reaches once the work dominates. The
fit is weighted least squares on relative error (every point counts alike, whatever its
latency). From it: the work at which the framework reaches half of the machine's
measured GEMM rate (the yardstick), or "never" where its rate is below half of it.

A fit whose worst point misses by more than :data:`POOR_FIT` of its latency is called
poor: the two-parameter model does not describe that framework (a kernel that changes
at some size, caches spilling), and its overhead and rate should not be quoted alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report.analysis import GROUP, efficiency, machine_peaks
from models.spec import WIDTHS, arch_of, is_size

#: A fit is poor when a point's latency differs from the fit by more than this fraction.
POOR_FIT = 0.25
#: Fewer sizes than this make no fit.
MIN_POINTS = 3


def points(cases: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Every ok inference case with its work: ``arch``, ``flops_per_call``, ``gflops``;
    of the architectures that come in several sizes only (``WIDTHS``: the ResNet and
    the GAN come in one, which draws no line and fits nothing)."""
    eff = efficiency(cases, models)
    if not eff.empty:
        eff = eff[eff.model.map(lambda m: len(WIDTHS.get(arch_of(m), ())) > 1).astype(bool)]
    if eff.empty:
        return eff.assign(arch=pd.Series(dtype=str), flops_per_call=pd.Series(dtype=float))
    eff = eff.copy()
    eff["arch"] = eff.model.map(arch_of)
    eff["flops_per_call"] = eff.flops_per_sample * eff.batch_size
    return eff


def fit_one(work: np.ndarray, latency_s: np.ndarray) -> tuple[float, float, float]:
    """(overhead s, rate FLOP/s, worst relative miss) of ``latency = o + work / rate``,
    by least squares on relative error; overhead and 1/rate are held at 0 or above."""
    w = 1.0 / latency_s  # relative error: each equation divided by its own latency
    a = np.column_stack([np.ones_like(work), work]) * w[:, None]
    b = latency_s * w
    (o, inv), *_ = np.linalg.lstsq(a, b, rcond=None)
    if o < 0:  # no overhead to speak of: through the origin
        o, inv = 0.0, float(np.sum(work * w * b) / np.sum((work * w) ** 2))
    if inv <= 0:  # no growth with the work: overhead alone
        o, inv = float(np.sum(w * b) / np.sum(w * w)), 0.0
    fitted = o + work * inv
    miss = float(np.max(np.abs(fitted - latency_s) / latency_s))
    return float(o), (1.0 / inv if inv > 0 else math.inf), miss


def half_yardstick(overhead_s: float, rate: float, yardstick: float) -> float:
    """FLOPs per call at which ``work / (overhead + work / rate)`` reaches half of
    ``yardstick`` (FLOP/s); ``inf`` where the rate itself stays below it."""
    half = yardstick / 2
    if not (math.isfinite(yardstick) and yardstick > 0) or rate <= half:
        return math.inf
    return overhead_s * half / (1 - half / rate)


#: The batch size the fit and the chart use: the sizes are timed at it, and a batch of
#: the same FLOPs runs other kernels (a GEMM where batch 1 runs a GEMV), so mixing the
#: two would fit neither.
FIT_BATCH = 1


def fits(pts: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """One row per host, device, threads, architecture, framework and runtime, from its
    points at :data:`FIT_BATCH` (one per model size)."""
    peaks = machine_peaks(cases)
    rows = []
    keys = [*GROUP, "arch", "framework", "runtime"]
    for key, g in pts[pts.batch_size == FIT_BATCH].groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        sizes = sorted(set(g.model), key=lambda m: float(g[g.model == m].flops_per_sample.iloc[0]))
        row.update(sizes=len(sizes))
        if len(g) < MIN_POINTS:
            row.update(fit=f"too few sizes ({len(g)} < {MIN_POINTS}; --sweep times every size)")
            rows.append(row)
            continue
        o, rate, miss = fit_one(g.flops_per_call.to_numpy(float), g.p50_ms.to_numpy(float) / 1e3)
        peak = peaks.merge(pd.DataFrame([dict(zip(GROUP, key[:3], strict=True))]), on=GROUP)
        yardstick = float(peak.peak_gflops.iloc[0]) * 1e9 if len(peak) else math.nan
        half = half_yardstick(o, rate, yardstick)
        row.update(
            overhead_us=o * 1e6,
            rate_gflops=rate / 1e9,
            yardstick_gflops=yardstick / 1e9,
            half_yardstick_mflop=half / 1e6,
            worst_miss_pct=100 * miss,
            fit="poor" if miss > POOR_FIT else "good",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def fit_table_frame(fitted: pd.DataFrame) -> pd.DataFrame:
    """The report's table: overhead and rate side by side, what reaches half the yardstick."""
    if fitted.empty:
        return fitted
    out = fitted.copy()

    def half(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return "never" if math.isinf(v) else f"{v:.3g}"

    out["half_yardstick_mflop"] = out.get("half_yardstick_mflop", pd.Series(dtype=float)).map(half)
    cols = [
        *GROUP,
        "arch",
        "framework",
        "runtime",
        "sizes",
        "overhead_us",
        "rate_gflops",
        "yardstick_gflops",
        "half_yardstick_mflop",
        "worst_miss_pct",
        "fit",
    ]
    return out[[c for c in cols if c in out.columns]]


def plot(pts: pd.DataFrame, cases: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``scaling[-host-device].png``: achieved GFLOP/s against FLOPs per sample at batch 1
    (log-log), one panel per architecture, a line per framework and runtime (ONNX Runtime
    dashed), the GEMM yardstick as a grey dotted line. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report.plots import DPI, RC, _log_axis, framework_colour, literal, sanitise

    b1 = pts[pts.batch_size == FIT_BATCH]
    if b1.empty or not b1.model.map(is_size).astype(bool).any():
        return []  # no sizes ran: nothing grows
    peaks = machine_peaks(cases)
    pairs = sorted(set(zip(b1.host, b1.device, strict=True)))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(RC):
        for host, device in pairs:
            here = b1[(b1.host == host) & (b1.device == device)]
            here = here[here.threads == here.threads.max()]
            archs = sorted(set(here.arch))
            fig, axes = plt.subplots(1, len(archs), figsize=(4.6 * len(archs), 4.0), squeeze=False)
            for ax, arch in zip(axes[0], archs, strict=True):
                sub = here[here.arch == arch]
                for (fw, rt), line in sub.groupby(["framework", "runtime"], sort=True):
                    line = line.sort_values("flops_per_sample")
                    style = "--" if rt == "onnxruntime" else "-"
                    colour = framework_colour("onnxruntime" if rt == "onnxruntime" else fw)
                    label = literal(f"{fw} {rt}" if rt != "onnxruntime" else f"{fw} export, ORT")
                    ax.plot(
                        line.flops_per_sample,
                        line.gflops,
                        marker="o" if rt != "onnxruntime" else "s",
                        color=framework_colour(fw),
                        markeredgecolor=colour,
                        linestyle=style,
                        linewidth=1.2,
                        markersize=4,
                        label=label,
                    )
                peak = peaks[(peaks.host == host) & (peaks.device == device)]
                if len(peak):
                    y = float(peak.peak_gflops.max())
                    ax.axhline(y, color="0.4", linewidth=1, linestyle=":")
                    ax.text(
                        ax.get_xlim()[0], y, " GEMM yardstick", va="bottom", fontsize=7, color="0.3"
                    )
                _log_axis(ax, "x")  # plain-number labels (the report draws no mathtext)
                _log_axis(ax, "y")
                ax.set_title(literal(arch))
                ax.set_xlabel("FLOPs per sample (batch 1; log scale)")
                ax.grid(True, which="major", alpha=0.3)
            axes[0][0].set_ylabel("achieved GFLOP/s (log scale)")
            seen: dict[str, Any] = {}
            for ax in axes[0]:
                for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                    seen.setdefault(lab, h)
            fig.legend(
                list(seen.values()),
                list(seen.keys()),
                loc="lower center",
                ncol=min(4, len(seen)),
                fontsize=7,
                frameon=False,
            )
            fig.suptitle(
                literal(f"Achieved GFLOP/s as the work grows · {host} · {device}")[:110],
                fontsize=10,
            )
            rows = 1 + (len(seen) - 1) // 4
            fig.tight_layout(rect=(0, 0.06 * rows, 1, 0.95))
            suffix = "" if len(pairs) == 1 else f"-{sanitise(host)}-{sanitise(device)}"
            path = out_dir / f"scaling{suffix}.png"
            if path.exists():
                raise FileExistsError(f"{path} exists already: choose a new folder for the plots")
            with path.open("xb") as fh:
                fig.savefig(fh, format="png", dpi=DPI, facecolor="white")
            plt.close(fig)
            written.append(path)
    return written
