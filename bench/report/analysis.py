"""The report's tables: the per-case statistics of summary.csv, then every table of the
report (headline, details, ONNX Runtime, compile, cold start, memory, efficiency,
comparison, environment) in one table model that the Markdown and HTML renderers share.

Nothing here formats markup: a :class:`Cell` is text and a bold flag, a note is text in
which only `code` and **bold** are marked; ``render.py`` turns both into Markdown or
HTML, escaping everything that came from the data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import load
from bench.report import stats
from bench.report.load import NoResultsError, RunData

ORT = "onnxruntime"
GROUP = ["host", "device", "threads"]
#: Phases with many rounds per process (compile and cold starts have one sample each).
TIMED = ("inference", "train_step", "peak")
#: A case whose pooled interquartile range exceeds this fraction of its median is flagged.
UNSTABLE_IQR_RATIO = 0.25
#: ... and so is one whose processes' medians differ by more than this (percent).
UNSTABLE_SPREAD_PCT = 10.0
#: An exporter whose graph has more than this many times the smallest node count for
#: the same model is called out in the export diagnostics.
LARGE_GRAPH_RATIO = 2.0

#: summary.csv: one row per case (a contract: README, "Result files").
CASE_COLUMNS = [
    "run", "host", "device", "device_name", "framework", "model", "runtime", "exporter",
    "phase", "batch_size", "threads", "processes", "rounds", "calls_per_round", "p50_ms",
    "p50_ci_low_ms", "p50_ci_high_ms", "spread_pct", "p90_ms", "p99_ms", "p25_ms", "p75_ms",
    "iqr_ms", "mean_ms", "min_ms", "max_ms", "throughput_sps", "throughput_ci_low_sps",
    "throughput_ci_high_sps", "unstable", "other_cpus", "steal_cpus", "busy", "peak_rss_mb",
    "peak_device_mb", "status", "reason", "case_id",
    # cold_start rows from raw/coldstart.jsonl (schema xfbench-cold/1) only:
    "import_ms", "load_ms", "first_call_ms", "process_ms", "rss_increase_mb",
]  # fmt: skip
#: The text columns of summary.csv; ``unstable`` and ``busy`` are flags, the rest numbers.
TEXT_COLUMNS = (
    "run", "host", "device", "device_name", "framework", "model", "runtime", "exporter",
    "phase", "status", "reason", "case_id",
)  # fmt: skip
COMPARE_KEYS = ["device", "framework", "model", "runtime", "phase", "batch_size", "threads"]
VERDICT_ORDER = {"slower": 0, "faster": 1, "same": 2, "n/a": 3}


class NothingToCompareError(NoResultsError):
    """``--compare`` found no case measured in both runs: a comparison that checks
    nothing must not pass as one that found no regression."""


# -- the table model -----------------------------------------------------------------------
@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    numeric: list[bool]  # right-aligned columns

    @property
    def empty(self) -> bool:
        return not self.rows


@dataclass
class Section:
    title: str
    notes: list[str] = field(default_factory=list)  # paragraphs; only `code` and **bold**
    table: Table | None = None
    images: list[Path] = field(default_factory=list)
    level: int = 2


@dataclass
class Document:
    title: str
    sections: list[Section]


def code(text: Any) -> str:
    """``text`` from the data as a `code` span of a note: backticks cannot nest, and a
    line break would end the span (or the paragraph)."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


# -- formatting ----------------------------------------------------------------------------
def _finite(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v)


def fmt_ms(v: Any) -> str:
    """Four significant digits, whatever the scale (0.01234, 1.234, 123.4, 1234)."""
    if not _finite(v):
        return ""
    v = float(v)
    if v == 0:
        return "0"
    decimals = min(6, max(0, 3 - math.floor(math.log10(abs(v)))))
    return f"{v:,.{decimals}f}"


def fmt_ci(p50: Any, lo: Any, hi: Any, fmt: Callable[[Any], str] = fmt_ms) -> str:
    if not _finite(p50):
        return ""
    if not (_finite(lo) and _finite(hi)):
        return fmt(p50)
    return f"{fmt(p50)} [{fmt(lo)}–{fmt(hi)}]"


def fmt_ratio(v: Any) -> str:
    return f"{v:.3f}" if _finite(v) else ""


def fmt_sps(v: Any) -> str:
    if not _finite(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else fmt_ms(v)


def _fmt_value(column: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else ""
    if isinstance(v, int | np.integer):
        return str(int(v))
    if not isinstance(v, float | np.floating):
        return str(v)
    if column.endswith("_abs_diff"):
        return f"{v:.1e}"
    if column in ("speedup", "ratio"):
        return fmt_ratio(v)
    if column in ("pct_of_peak", "gflops", "peak_gflops", "spread %", "spread_pct", "memory GiB"):
        return f"{v:,.1f}"
    if column.endswith(("_mb", " MB")) or column in ("flops_per_sample", "parameters"):
        return f"{v:,.0f}"
    if column.endswith("sps") or column.startswith(("samples/s", "threads=")):
        return fmt_sps(v)
    if column == "test_accuracy":
        return f"{v:.4f}"
    if column.endswith("_s"):
        return f"{v:,.2f}"
    if float(v).is_integer() and column in ("batch_size", "threads", "onnx_opset", "onnx_nodes"):
        return str(int(v))
    return fmt_ms(v)


def _group_cells(r: Any) -> list[Cell]:
    """The host, device and threads cells that open every grouped table row."""
    return [Cell(str(r.host)), Cell(str(r.device)), Cell(_fmt_value("threads", r.threads))]


def frame_table(df: pd.DataFrame, bold: pd.DataFrame | None = None) -> Table:
    """A DataFrame as a :class:`Table`: every value formatted by its column's kind."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool for c in df.columns]
    rows = []
    for i, values in enumerate(df.itertuples(index=False, name=None)):
        rows.append(
            [
                Cell(
                    _fmt_value(str(c), v),
                    bool(bold is not None and bold.iloc[i].get(c, False)),
                )
                for c, v in zip(df.columns, values, strict=True)
            ]
        )
    return Table([str(c) for c in df.columns], rows, numeric)


# -- per-case statistics (summary.csv) -----------------------------------------------------
def _status(rows: pd.DataFrame, measured: pd.Series) -> tuple[str, str]:
    """One status for a case measured in several processes: ``ok`` if any process
    measured it; the failures of the others counted in ``reason``."""
    failed = [
        (int(p), str(s), str(r or ""))
        for p, s, r, m in zip(rows.process, rows.status, rows.reason, measured, strict=True)
        if not m
    ]
    n = len(rows)
    if measured.any():
        if not failed:
            return "ok", ""
        detail = "; ".join(
            f"p{p} " + (s if s != "ok" else "no rounds") + (f": {r}" if r else "")
            for p, s, r in failed
        )
        return "ok", f"{len(failed)} of {n} processes failed ({detail})"
    status = Counter(str(s) for s in rows.status).most_common(1)[0][0]
    reasons = list(dict.fromkeys(r for _, _, r in failed if r))
    if len(reasons) <= 1:
        reason = reasons[0] if reasons else ("no rounds recorded" if status == "ok" else "")
        if n > 1 and reason:
            reason = f"{reason} (all {n} processes)"
        return ("error" if status == "ok" else status), reason
    return status, "; ".join(f"p{p} {s}: {r}" for p, s, r in failed)


def _first(values: Sequence[Any]) -> Any:
    for v in values:
        if isinstance(v, str) and v:
            return v
    return values[0] if len(values) else ""


def _case_columns(run: str, rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "run": run,
        "host": rows.iloc[0]["host"],
        "device_name": _first(list(rows.device_name)),
        "exporter": _first(list(rows.exporter)),
    }


def _latency_columns(est: stats.Estimate, samples: list[np.ndarray]) -> dict[str, Any]:
    """The p50 with its interval, the pooled percentiles and extremes: the columns timed
    cases and cold starts share."""
    p25, p75, p90, p99 = stats.percentiles(samples, [25, 75, 90, 99])
    pooled = np.concatenate(samples) if samples else np.empty(0)
    return {
        "processes": est.processes,
        "rounds": est.rounds,
        "p50_ms": est.p50,
        "p50_ci_low_ms": est.low,
        "p50_ci_high_ms": est.high,
        "spread_pct": est.spread_pct,
        "p90_ms": p90,
        "p99_ms": p99,
        "p25_ms": p25,
        "p75_ms": p75,
        "iqr_ms": p75 - p25,
        "mean_ms": float(pooled.mean()) if pooled.size else np.nan,
        "min_ms": float(pooled.min()) if pooled.size else np.nan,
        "max_ms": float(pooled.max()) if pooled.size else np.nan,
    }


def _timed_row(run: str, case_id: str, rows: pd.DataFrame, data: RunData) -> dict[str, Any]:
    first = rows.iloc[0]
    measured = (rows.status == "ok") & (rows.rounds > 0)
    status, reason = _status(rows, measured)
    samples = data.samples(run, case_id)
    est = stats.estimate(samples, seed=stats.seed_for("p50", run, case_id))
    data.estimates[(run, case_id)] = est
    other, steal = rows.other_cpus.max(), rows.steal_cpus.max()
    row = {
        **{k: first[k] for k in ("framework", "model", "runtime", "phase", "device", "case_id")},
        **_case_columns(run, rows),
        "batch_size": first["batch_size"],
        "threads": first["threads"],
        **_latency_columns(est, samples),
        "calls_per_round": int(rows[measured].calls_per_round.max())
        if measured.any()
        else int(rows.calls_per_round.max()),
        "other_cpus": other,
        "steal_cpus": steal,
        "busy": bool(load.busy({"other_cpus": other, "steal_cpus": steal})),
        "peak_rss_mb": rows.peak_rss_mb.max(),
        "peak_device_mb": rows.peak_device_mb.max(),
        "status": status,
        "reason": reason,
    }
    if first["phase"] in ("inference", "train_step") and est.p50 > 0:
        b = float(first["batch_size"])
        row["throughput_sps"] = b / (est.p50 / 1e3)
        row["throughput_ci_low_sps"] = b / (est.high / 1e3)  # the slowest plausible p50
        row["throughput_ci_high_sps"] = b / (est.low / 1e3) if est.low > 0 else np.nan
    row["unstable"] = bool(
        first["phase"] in TIMED
        and est.rounds > 1
        and (
            row["iqr_ms"] > UNSTABLE_IQR_RATIO * est.p50
            or (est.processes > 1 and est.spread_pct > UNSTABLE_SPREAD_PCT)
        )
    )
    return row


def _cold_row(run: str, case_id: str, rows: pd.DataFrame, data: RunData) -> dict[str, Any]:
    """A cold-start case: each fresh process is one sample of the total (import + load +
    first call)."""
    first = rows.iloc[0]
    measured = (rows.status == "ok") & rows.total_ms.notna()
    status, reason = _status(rows, measured)
    ok = rows[measured]
    samples = [np.array([t]) for t in ok.total_ms]
    est = stats.estimate(samples, seed=stats.seed_for("cold", run, case_id))
    data.estimates[(run, case_id)] = est
    peak_rss = ok.rss_baseline_mb + ok.rss_increase_mb
    return {
        **{k: first[k] for k in ("framework", "model", "runtime", "device", "threads", "case_id")},
        **_case_columns(run, rows),
        "phase": "cold_start",
        "batch_size": 1,
        **_latency_columns(est, samples),
        "calls_per_round": 1,
        "unstable": False,
        "peak_rss_mb": peak_rss.max() if len(ok) else np.nan,
        "peak_device_mb": ok.peak_device_mb.max() if len(ok) else np.nan,
        "status": status,
        "reason": reason,
        "import_ms": ok.import_ms.median(),
        "load_ms": ok.load_ms.median(),
        "first_call_ms": ok.first_call_ms.median(),
        "process_ms": ok.process_ms.median(),
        "rss_increase_mb": ok.rss_increase_mb.median(),
    }


def empty_cases() -> pd.DataFrame:
    """summary.csv without a row, each column of its kind."""

    def kind(column: str) -> str:
        if column in TEXT_COLUMNS:
            return "str"
        if column in ("unstable", "busy"):
            return "bool"
        return "int64" if column in ("processes", "rounds", "calls_per_round") else "float64"

    return pd.DataFrame({c: pd.Series(dtype=kind(c)) for c in CASE_COLUMNS})


def summarise(data: RunData) -> pd.DataFrame:
    """summary.csv: one row per case, with :attr:`RunData.estimates` filled on the way."""
    rows = [
        _timed_row(run, case_id, grp, data)
        for (run, case_id), grp in data.processes.groupby(["run", "case_id"], sort=False)
    ]
    rows += [
        _cold_row(run, case_id, grp, data)
        for (run, case_id), grp in data.cold.groupby(["run", "case_id"], sort=False)
    ]
    if not rows:  # nothing finished: the columns still have their kinds (tables merge them)
        cases = empty_cases()
        data.cases = cases
        return cases
    cases = pd.DataFrame(rows).reindex(columns=CASE_COLUMNS)
    for col in ("unstable", "busy"):
        cases[col] = cases[col].fillna(False).astype(bool)
    for col in ("processes", "rounds", "calls_per_round"):
        cases[col] = cases[col].fillna(0).astype(int)
    cases = cases.sort_values(
        ["host", "device", "model", "phase", "batch_size", "framework", "runtime", "threads"],
        kind="stable",
    ).reset_index(drop=True)
    data.cases = cases
    return cases


def ok_cases(cases: pd.DataFrame, phase: str) -> pd.DataFrame:
    return cases[(cases.phase == phase) & (cases.status == "ok") & cases.p50_ms.notna()]


def _est(data: RunData, row: Any) -> stats.Estimate:
    return data.estimates[(row.run, row.case_id)]


def single_process_only(cases: pd.DataFrame) -> bool:
    ok = cases[(cases.status == "ok") & cases.phase.isin(TIMED)]
    return bool(len(ok)) and bool((ok.processes <= 1).all())


# -- modes ---------------------------------------------------------------------------------
def _schema1_frameworks(data: RunData) -> set[str]:
    p = data.processes
    schemas = p.groupby("framework").schema.agg(lambda s: set(s.dropna()))
    return {fw for fw, found in schemas.items() if found <= {"xfbench-case/1"}}


#: What the runtimes of schema-1 runs were (they named no modes).
LEGACY_MODES = {
    "native": "schema-1 runs: the framework in its best inference mode (torch `eval` + "
    "`inference_mode`, a compiled `tf.function`, MXNet hybridized with `static_alloc`)",
    "native-eager": "schema-1 runs: the framework op by op, where that differs",
}


def mode_order(data: RunData) -> dict[str, list[str]]:
    """Each framework's native modes, its default (first) mode first.

    The order is ``native`` first for schema-1 runs; else the worker's own ``modes``
    list where it recorded one; else the adapter's (when the framework's adapter is
    installed here); modes neither names come last, in the order the records name them.
    """
    seen: dict[str, list[str]] = {}
    for fw, rt in zip(data.processes.framework, data.processes.runtime, strict=True):
        if rt != ORT and isinstance(fw, str) and isinstance(rt, str):
            seen.setdefault(fw, [])
            if rt not in seen[fw]:
                seen[fw].append(rt)
    legacy = _schema1_frameworks(data)
    out = {}
    for fw, modes in seen.items():
        declared: list[str] = []
        if fw in legacy:
            declared = list(LEGACY_MODES)
        else:
            for listed in data.workers[data.workers.framework == fw].modes:
                if listed:
                    declared = [str(m) for m in listed]
                    break
            if not declared:
                declared = list(adapter_class_attr(fw, "modes", ()))
        order = [m for m in declared if m in modes] + [m for m in modes if m not in declared]
        out[fw] = order
    return out


def adapter_class_attr(framework: str, name: str, default: Any) -> Any:
    try:
        from bench.adapters import adapter_class

        return getattr(adapter_class(framework), name, default)
    except Exception:  # an adapter not installed here, or an older one: use the data
        return default


def mode_notes(data: RunData) -> dict[tuple[str, str], str]:
    """One line per framework and mode: what the worker recorded, else (schema-1 runs)
    what ``native`` and ``native-eager`` meant then, else the adapter's ``mode_notes``."""
    notes: dict[tuple[str, str], str] = {}
    for fw, recorded in zip(data.workers.framework, data.workers.mode_notes, strict=True):
        for mode, note in (recorded or {}).items():
            notes.setdefault((str(fw), str(mode)), str(note))
    legacy = _schema1_frameworks(data)
    for fw, modes in mode_order(data).items():
        declared = {} if fw in legacy else adapter_class_attr(fw, "mode_notes", {})
        for m in modes:
            if (fw, m) in notes:
                continue
            if fw in legacy and m in LEGACY_MODES:
                notes[(fw, m)] = LEGACY_MODES[m]
            elif m in declared:
                notes[(fw, m)] = str(declared[m])
    return notes


# -- headline and detail tables ------------------------------------------------------------
def _mark(est: stats.Estimate, mixed: bool) -> str:
    """‡ after a one-process interval, where the report mixes one- and many-process cases."""
    return "‡" if mixed and est.within_process_only else ""


@dataclass
class _Entry:
    column: str
    label: str
    est: stats.Estimate
    text: str


def _winner(entries: list[_Entry]) -> tuple[_Entry | None, str]:
    """The entry to bold (None: none) and the verdict text of one row."""
    ranked = sorted(entries, key=lambda e: e.est.p50)
    if not ranked:
        return None, ""
    if len(ranked) == 1:
        return None, f"{ranked[0].label} (nothing to compare)"
    best, runner_up = ranked[0], ranked[1]
    if best.est.within_process_only or runner_up.est.within_process_only:
        # One process cannot see the variation between processes (a re-run's): its
        # interval is no ground for calling a winner (two quick runs swapped them).
        return None, f"provisional (one process): {best.label}"
    if not best.est.overlaps(runner_up.est):
        return best, best.label
    tied = [e.label for e in ranked if e.est.overlaps(best.est)]
    return None, "tie: " + ", ".join(tied)


def headline(data: RunData, phase: str = "inference") -> Table:
    """One row per host, device, threads, model and batch size; one column per framework
    with its best native mode (lowest p50; ``onnxruntime`` excluded), for inference one
    more with ONNX Runtime's best export; the fastest in bold only where its interval
    clears the runner-up's, else the row says ``tie``."""
    cases = data.cases
    ok = ok_cases(cases, phase)
    frameworks = sorted(ok[ok.runtime != ORT].framework.unique())
    with_ort = phase == "inference" and (ok.runtime == ORT).any()
    mixed = not single_process_only(cases)
    keys = [*GROUP, "model", "batch_size"]
    columns = [*keys, *frameworks, *(["onnxruntime (best export)"] if with_ort else []), "fastest"]
    rows = []
    for key, grp in ok.groupby(keys, sort=True):
        entries: list[_Entry] = []
        for fw in frameworks:
            native = grp[(grp.framework == fw) & (grp.runtime != ORT)]
            if len(native):
                best = native.loc[native.p50_ms.idxmin()]
                est = _est(data, best)
                text = fmt_ci(est.p50, est.low, est.high) + _mark(est, mixed) + f" {best.runtime}"
                entries.append(_Entry(fw, f"{fw} {best.runtime}", est, text))
        if with_ort:
            ort = grp[grp.runtime == ORT]
            if len(ort):
                best = ort.loc[ort.p50_ms.idxmin()]
                est = _est(data, best)
                via = best.exporter or best.framework
                text = fmt_ci(est.p50, est.low, est.high) + _mark(est, mixed) + f" {via}"
                entries.append(
                    _Entry("onnxruntime (best export)", f"onnxruntime ({via})", est, text)
                )
        bold, verdict = _winner(entries)
        by_column = {e.column: e for e in entries}
        cells = [Cell(_fmt_value(k, v)) for k, v in zip(keys, key, strict=True)]
        for col in columns[len(keys) : -1]:
            e = by_column.get(col)
            cells.append(Cell(e.text if e else "", bold=e is not None and e is bold))
        cells.append(Cell(verdict))
        rows.append(cells)
    numeric = [False] * len(columns)
    return Table(columns, rows, numeric)


def _fastest(entries: list[_Entry]) -> str:
    """``<label> <p50> ms (<margin> ahead of <runner-up>)`` or ``(a tie with ...)``."""
    ranked = sorted(entries, key=lambda e: e.est.p50)
    best = ranked[0]
    if len(ranked) == 1:
        verdict = "nothing to compare"
    elif best.est.overlaps(ranked[1].est):
        verdict = f"a tie with {ranked[1].label}"
    else:
        margin = ranked[1].est.p50 / best.est.p50
        verdict = f"{margin:.3f}x" if margin < 1.1 else f"{margin:.2f}x"
        verdict += f" ahead of {ranked[1].label}"
    if any(e.est.within_process_only for e in ranked[:2]):
        verdict += "; provisional: one process"  # a re-run may swap them
    return f"{best.label} {fmt_ms(best.est.p50)} ms ({verdict})"


def answers(data: RunData) -> list[str]:
    """The headline answers in words, one line per model and batch size (prefixed with
    host, device and threads where a report holds several): the fastest way to run it,
    and the fastest framework (each at its best native mode), each with its margin over
    the runner-up, or the tie."""
    ok = ok_cases(data.cases, "inference")
    lines = []
    groups = list(ok.groupby([*GROUP, "model"], sort=True))
    several = len({key[:-1] for key, _ in groups}) > 1
    for key, grp in groups:
        where = " ".join(str(k) for k in key[:-1]) + " " if several else ""
        for b in sorted({int(b) for b in grp.batch_size}):
            rows = list(grp[grp.batch_size == b].itertuples())
            every = [
                _Entry(
                    "",
                    f"onnxruntime on {r.framework}'s export"
                    if r.runtime == ORT
                    else f"{r.framework} {r.runtime}",
                    _est(data, r),
                    "",
                )
                for r in rows
            ]
            per_framework: dict[str, _Entry] = {}  # each framework's best native mode
            for e, r in zip(every, rows, strict=True):
                held = per_framework.get(r.framework)
                if r.runtime != ORT and (held is None or e.est.p50 < held.est.p50):
                    per_framework[r.framework] = e
            text = f"{where}{key[-1]} at batch {b}: fastest {_fastest(every)}"
            if per_framework and len(per_framework) < len(every):
                text += f"; fastest framework {_fastest(list(per_framework.values()))}"
            lines.append(text)
    return lines


def detail(data: RunData, model: str, phase: str = "inference") -> Table:
    """Every mode and runtime of one model: p50 with its interval, p90, p99, spread,
    processes, rounds, calls per round and throughput; per host, device, threads and
    batch size the fastest p50 in bold where its interval clears the runner-up's."""
    ok = ok_cases(data.cases, phase)
    ok = ok[ok.model == model].sort_values([*GROUP, "batch_size", "p50_ms"])
    mixed = not single_process_only(data.cases)
    columns = [
        *GROUP, "batch_size", "framework", "runtime", "exporter", "p50 ms [95% CI]",
        "p90 ms", "p99 ms", "spread %", "processes", "rounds", "calls/round",
        "samples/s [95% CI]", "unstable",
    ]  # fmt: skip
    rows = []
    for _, grp in ok.groupby([*GROUP, "batch_size"], sort=False):
        ests = [_est(data, r) for r in grp.itertuples()]
        entries = [_Entry("", str(i), e, "") for i, e in enumerate(ests)]
        bold, _ = _winner(entries)
        for i, r in enumerate(grp.itertuples()):
            est = ests[i]
            dagger = "†" if r.calls_per_round > 1 else ""
            rows.append(
                [
                    *_group_cells(r),
                    Cell(_fmt_value("batch_size", r.batch_size)),
                    Cell(str(r.framework)),
                    Cell(str(r.runtime)),
                    Cell(str(r.exporter or "")),
                    Cell(
                        fmt_ci(est.p50, est.low, est.high) + _mark(est, mixed),
                        bold=bold is not None and bold.label == str(i),
                    ),
                    Cell(fmt_ms(r.p90_ms)),
                    Cell(fmt_ms(r.p99_ms) + dagger),
                    Cell(f"{r.spread_pct:.1f}" if r.processes > 1 else ""),
                    Cell(str(r.processes)),
                    Cell(str(r.rounds)),
                    Cell(str(r.calls_per_round)),
                    Cell(
                        fmt_ci(
                            r.throughput_sps,
                            r.throughput_ci_low_sps,
                            r.throughput_ci_high_sps,
                            fmt_sps,
                        )
                    ),
                    Cell("yes" if r.unstable else ""),
                ]
            )
    numeric = [c not in ("host", "device", "framework", "runtime", "exporter") for c in columns]
    return Table(columns, rows, numeric)


def compile_times(data: RunData) -> pd.DataFrame:
    """The first call of each mode per batch size (compilation or tracing included),
    median over processes, beside the steady-state p50 of the same mode."""
    comp = ok_cases(data.cases, "compile")
    keys = ["run", *GROUP, "framework", "model", "runtime", "batch_size"]
    steady = ok_cases(data.cases, "inference")[[*keys, "p50_ms"]].rename(
        columns={"p50_ms": "steady_p50_ms"}
    )
    out = comp.merge(steady, on=keys, how="left")
    out["first_call_over_steady"] = out.p50_ms / out.steady_p50_ms
    return out.sort_values([*GROUP, "model", "framework", "runtime", "batch_size"])


def compile_table(data: RunData) -> Table:
    comp = compile_times(data)
    columns = [
        *GROUP, "framework", "model", "runtime", "batch_size", "first call ms [95% CI]",
        "range ms", "processes", "steady p50 ms", "first call / steady",
    ]  # fmt: skip
    rows = []
    for r in comp.itertuples():
        est = _est(data, r)
        rows.append(
            [
                *_group_cells(r),
                Cell(str(r.framework)),
                Cell(str(r.model)),
                Cell(str(r.runtime)),
                Cell(_fmt_value("batch_size", r.batch_size)),
                Cell(fmt_ci(est.p50, est.low, est.high)),
                Cell(f"{fmt_ms(r.min_ms)}–{fmt_ms(r.max_ms)}"),
                Cell(str(r.processes)),
                Cell(fmt_ms(r.steady_p50_ms)),
                Cell(
                    f"{r.first_call_over_steady:,.1f}x" if _finite(r.first_call_over_steady) else ""
                ),
            ]
        )
    return Table(
        columns,
        rows,
        [c not in ("host", "device", "framework", "model", "runtime") for c in columns],
    )


# -- ONNX Runtime against the frameworks ---------------------------------------------------
def comparison_run(data: RunData, run: str) -> str:
    """The run whose cases ``run``'s are compared with: a fleet's part (its fingerprint
    names the fleet) stands for its fleet; any other run for itself."""
    fp = data.environments.get(run) or {}
    fleet = fp.get("fleet") if isinstance(fp.get("fleet"), dict) else {}
    return str(fleet["run"]) if fleet.get("run") else run


def onnx_speedup(data: RunData) -> pd.DataFrame:
    """Per framework (i.e. per exporter), model and batch: ONNX Runtime's speedup over the
    framework's best native mode and over its default (first) mode, ``native p50 /
    onnxruntime p50`` (above 1: ONNX Runtime is faster), each with a 95% interval from
    independent bootstraps of both sides."""
    ok = ok_cases(data.cases, "inference")
    # A fleet times a framework's group and ONNX Runtime's in parts (runs) of their own:
    # within one fleet, and one host (GROUP), they are one run's cases.
    ok = ok.assign(_pair=ok.run.map(lambda run: comparison_run(data, run)))
    order = mode_order(data)
    keys = ["run", *GROUP, "framework", "model", "batch_size"]
    out = []
    for key, grp in ok.groupby(["_pair", *keys[1:]], sort=True):
        ort = grp[grp.runtime == ORT]
        native = grp[grp.runtime != ORT]
        if ort.empty or native.empty:
            continue
        o = ort.iloc[0]
        o_est = _est(data, o)
        best = native.loc[native.p50_ms.idxmin()]
        row = dict(zip(keys, key, strict=True))
        row.update(
            exporter=o.exporter,
            onnxruntime_p50_ms=o.p50_ms,
            onnxruntime_ci_low_ms=o.p50_ci_low_ms,
            onnxruntime_ci_high_ms=o.p50_ci_high_ms,
        )
        for which, r in (("best", best), ("default", _default_row(native, order))):
            if r is None:
                continue
            ratio = stats.ratio(_est(data, r), o_est)
            row.update(
                {
                    f"{which}_mode": r.runtime,
                    f"{which}_p50_ms": r.p50_ms,
                    f"{which}_ci_low_ms": r.p50_ci_low_ms,
                    f"{which}_ci_high_ms": r.p50_ci_high_ms,
                    f"speedup_vs_{which}": ratio.value,
                    f"speedup_vs_{which}_ci_low": ratio.low,
                    f"speedup_vs_{which}_ci_high": ratio.high,
                }
            )
        row["speedup_vs_best_draws"] = _ratio_draws(_est(data, best), o_est)
        out.append(row)
    return pd.DataFrame(out)


def _ratio_draws(numerator: stats.Estimate, denominator: stats.Estimate) -> np.ndarray:
    """The bootstrap draws of ``numerator.p50 / denominator.p50``, paired index by index
    as :func:`stats.ratio` pairs them (independent seeds, so independent draws)."""
    n = min(numerator.draws.size, denominator.draws.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator.draws[:n] / denominator.draws[:n]


def onnx_summary(data: RunData, sp: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per host, device, threads and framework, one figure: the geometric mean over its
    models and batch sizes of the speedup of ONNX Runtime (its own export) over the
    framework's best native mode, with

    * a 95% interval from the cases' bootstrap draws: draw ``j`` of the geometric mean
      is the geometric mean of every case's draw ``j`` of its ratio. The cases' draws are
      independent (each case and each side has its own seed), so this is a bootstrap of
      the geometric mean under the measurement noise of these cases, each case's best
      mode held fixed. It is *not* built from the per-case intervals, and it says
      nothing about models or batch sizes that were not measured: ``range`` (the least
      and the greatest per-case speedup) shows how much the cases differ;
    * the number of cases where ONNX Runtime is faster (interval above 1), a tie
      (interval includes 1) and slower (interval below 1).
    """
    sp = onnx_speedup(data) if sp is None else sp
    keys = [*GROUP, "framework"]
    out = []
    if sp.empty:
        return pd.DataFrame(out)
    for key, grp in sp.groupby(keys, sort=True):
        ratios = grp.speedup_vs_best.to_numpy(float)
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
        if not ratios.size:
            continue
        geo = float(np.exp(np.log(ratios).mean()))
        lo = hi = math.nan
        draws = [np.asarray(d, float) for d in grp.speedup_vs_best_draws]
        n = min((d.size for d in draws), default=0)
        if n and len(draws) == ratios.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(np.stack([d[:n] for d in draws]))
            logs = logs[:, np.isfinite(logs).all(axis=0)]
            if logs.size:
                lo, hi = stats.interval(np.exp(logs.mean(axis=0)))
        words = [
            _speedup_word(a, b)
            for a, b in zip(grp.speedup_vs_best_ci_low, grp.speedup_vs_best_ci_high, strict=True)
        ]
        out.append(
            {
                **dict(zip(keys, key, strict=True)),
                "exporter": _first(list(grp.exporter)),
                "cases": len(grp),
                "models": grp.model.nunique(),
                "batch_sizes": grp.batch_size.nunique(),
                "geomean_speedup": geo,
                "geomean_ci_low": lo,
                "geomean_ci_high": hi,
                "min_speedup": float(ratios.min()),
                "max_speedup": float(ratios.max()),
                "faster": words.count("ONNX Runtime faster"),
                "tie": words.count("tie"),
                "slower": words.count("framework faster"),
            }
        )
    return pd.DataFrame(out)


def onnx_summary_table(data: RunData, sp: pd.DataFrame | None = None) -> Table:
    summary = onnx_summary(data, sp)
    columns = [
        *GROUP, "framework", "exporter", "cases (models x batch sizes)",
        "geometric mean speedup vs best [95% CI]", "range of speedups (min–max)",
        "ONNX Runtime faster", "tie", "ONNX Runtime slower",
    ]  # fmt: skip
    rows = [
        [
            *_group_cells(r),
            Cell(str(r.framework)),
            Cell(str(r.exporter or "")),
            Cell(f"{r.cases} ({r.models} x {r.batch_sizes})"),
            Cell(
                fmt_ci(r.geomean_speedup, r.geomean_ci_low, r.geomean_ci_high, fmt_ratio),
                bold=True,
            ),
            Cell(f"{fmt_ratio(r.min_speedup)}–{fmt_ratio(r.max_speedup)}"),
            Cell(str(r.faster)),
            Cell(str(r.tie)),
            Cell(str(r.slower)),
        ]
        for r in summary.itertuples()
    ]
    return Table(
        columns, rows, [c not in ("host", "device", "framework", "exporter") for c in columns]
    )


def onnx_slower(data: RunData, sp: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every case where the export under ONNX Runtime is slower than the framework's
    best native mode (the speedup's 95% interval below 1), the worst first."""
    sp = onnx_speedup(data) if sp is None else sp
    if sp.empty:
        return sp
    slow = sp[sp.speedup_vs_best_ci_high < 1]
    return slow.sort_values("speedup_vs_best", kind="stable").reset_index(drop=True)


def onnx_slower_table(data: RunData, sp: pd.DataFrame | None = None) -> Table:
    slow = onnx_slower(data, sp)
    columns = [
        *GROUP, "model", "batch_size", "framework", "exporter", "onnxruntime p50 ms [95% CI]",
        "best mode", "best p50 ms [95% CI]", "speedup vs best [95% CI]",
        "ONNX Runtime slower by [95% CI]",
    ]  # fmt: skip
    rows = [
        [
            *_group_cells(r),
            Cell(str(r.model)),
            Cell(_fmt_value("batch_size", r.batch_size)),
            Cell(str(r.framework)),
            Cell(str(r.exporter or "")),
            Cell(fmt_ci(r.onnxruntime_p50_ms, r.onnxruntime_ci_low_ms, r.onnxruntime_ci_high_ms)),
            Cell(str(r.best_mode)),
            Cell(fmt_ci(r.best_p50_ms, r.best_ci_low_ms, r.best_ci_high_ms)),
            Cell(
                fmt_ci(
                    r.speedup_vs_best,
                    r.speedup_vs_best_ci_low,
                    r.speedup_vs_best_ci_high,
                    fmt_ratio,
                )
            ),
            Cell(
                fmt_ci(
                    1 / r.speedup_vs_best,
                    1 / r.speedup_vs_best_ci_high,
                    1 / r.speedup_vs_best_ci_low,
                    lambda v: f"{v:.2f}x",
                ),
                bold=True,
            ),
        ]
        for r in (slow.itertuples() if len(slow) else [])
    ]
    text = ("host", "device", "model", "framework", "exporter", "best mode")
    return Table(columns, rows, [c not in text for c in columns])


def _default_row(native: pd.DataFrame, order: dict[str, list[str]]) -> Any:
    fw = native.framework.iloc[0]
    for mode in order.get(fw, []):
        hit = native[native.runtime == mode]
        if len(hit):
            return hit.iloc[0]
    return None


def _speedup_word(lo: Any, hi: Any) -> str:
    if not (_finite(lo) and _finite(hi)):
        return ""
    return "ONNX Runtime faster" if lo > 1 else "framework faster" if hi < 1 else "tie"


def speedup_table(data: RunData, sp: pd.DataFrame | None = None) -> Table:
    sp = onnx_speedup(data) if sp is None else sp
    columns = [
        *GROUP, "model", "batch_size", "framework", "exporter", "onnxruntime p50 ms [95% CI]",
        "best mode", "best p50 ms", "speedup vs best [95% CI]", "verdict vs best",
        "default mode", "default p50 ms", "speedup vs default [95% CI]",
    ]  # fmt: skip
    rows = []
    for r in sp.itertuples():
        rows.append(
            [
                *_group_cells(r),
                Cell(str(r.model)),
                Cell(_fmt_value("batch_size", r.batch_size)),
                Cell(str(r.framework)),
                Cell(str(r.exporter or "")),
                Cell(
                    fmt_ci(r.onnxruntime_p50_ms, r.onnxruntime_ci_low_ms, r.onnxruntime_ci_high_ms)
                ),
                Cell(str(r.best_mode)),
                Cell(fmt_ms(r.best_p50_ms)),
                Cell(
                    fmt_ci(
                        r.speedup_vs_best,
                        r.speedup_vs_best_ci_low,
                        r.speedup_vs_best_ci_high,
                        fmt_ratio,
                    )
                ),
                Cell(_speedup_word(r.speedup_vs_best_ci_low, r.speedup_vs_best_ci_high)),
                Cell(str(getattr(r, "default_mode", "") or "")),
                Cell(fmt_ms(getattr(r, "default_p50_ms", np.nan))),
                Cell(
                    fmt_ci(
                        getattr(r, "speedup_vs_default", np.nan),
                        getattr(r, "speedup_vs_default_ci_low", np.nan),
                        getattr(r, "speedup_vs_default_ci_high", np.nan),
                        fmt_ratio,
                    )
                ),
            ]
        )
    text = (
        "host",
        "device",
        "model",
        "framework",
        "exporter",
        "best mode",
        "verdict vs best",
        "default mode",
    )
    return Table(columns, rows, [c not in text for c in columns])


# -- cold start and memory -----------------------------------------------------------------
#: The model of the ``peak`` phase (``bench/matrix.py``): a yardstick of the machine,
#: not a model, so it has no cold start or memory rows of its own.
GEMM = "gemm"


def cold_starts(cases: pd.DataFrame) -> pd.DataFrame:
    """The cold starts of the models (never the GEMM yardstick), every time in ms."""
    cold = ok_cases(cases, "cold_start")
    return cold[cold.model != GEMM].sort_values(
        ["host", "device", "framework", "model", "runtime", "threads"]
    )


def cold_start_table(data: RunData) -> Table:
    cold = cold_starts(data.cases)
    columns = [
        *GROUP, "framework", "model", "runtime", "total ms (median)", "range ms", "import ms",
        "load ms", "first call ms", "interpreter start to exit ms", "processes",
    ]  # fmt: skip
    rows = [
        [
            *_group_cells(r),
            Cell(str(r.framework)),
            Cell(str(r.model)),
            Cell(str(r.runtime)),
            Cell(fmt_ms(r.p50_ms)),
            Cell(f"{fmt_ms(r.min_ms)}–{fmt_ms(r.max_ms)}" if r.processes > 1 else ""),
            Cell(fmt_ms(r.import_ms)),
            Cell(fmt_ms(r.load_ms)),
            Cell(fmt_ms(r.first_call_ms)),
            Cell(fmt_ms(r.process_ms)),
            Cell(str(r.processes)),
        ]
        for r in cold.itertuples()
    ]
    return Table(
        columns,
        rows,
        [c not in ("host", "device", "framework", "model", "runtime") for c in columns],
    )


def memory(data: RunData) -> pd.DataFrame:
    keys = ["host", "device", "framework", "model", "runtime"]
    cases = data.cases[(data.cases.status == "ok") & (data.cases.model != GEMM)]
    cold = (
        cases[cases.phase == "cold_start"]
        .groupby(keys, as_index=False)
        .agg(
            rss_increase_mb=("rss_increase_mb", "median"),
            cold_peak_device_mb=("peak_device_mb", "max"),
        )
    )
    timed = (
        cases[~cases.phase.isin(["cold_start", "peak"])]
        .groupby(keys, as_index=False)
        .agg(
            worker_peak_rss_mb=("peak_rss_mb", "max"),
            worker_peak_device_mb=("peak_device_mb", "max"),
        )
    )
    out = cold.merge(timed, on=keys, how="outer")
    out["peak_device_mb"] = out[["cold_peak_device_mb", "worker_peak_device_mb"]].max(axis=1)
    return (
        out[[*keys, "rss_increase_mb", "peak_device_mb", "worker_peak_rss_mb"]]
        .sort_values(keys)
        .reset_index(drop=True)
    )


# -- machine peak, efficiency, exports, threads --------------------------------------------
def machine_peaks(cases: pd.DataFrame) -> pd.DataFrame:
    """Best float32 GEMM GFLOP/s per host, device and threads (from the median p50), and
    who reached it."""
    peak = ok_cases(cases, "peak").copy()
    if peak.empty:  # the group columns keep their kinds: efficiency() merges on them
        none = cases.iloc[0:0]
        return pd.DataFrame(
            {
                **{c: none[c] for c in GROUP},
                "peak_gflops": pd.Series(dtype="float64"),
                "gemm_n": none.batch_size,
                "by": none.framework,
            }
        )
    peak["gflops"] = 2 * peak.batch_size.astype(float) ** 3 / (peak.p50_ms / 1e3) / 1e9
    best = peak.loc[peak.groupby(GROUP).gflops.idxmax()]
    return best.rename(
        columns={"gflops": "peak_gflops", "batch_size": "gemm_n", "framework": "by"}
    )[[*GROUP, "peak_gflops", "gemm_n", "by"]].reset_index(drop=True)


def efficiency(cases: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Achieved GFLOP/s of every inference case (at its median p50) and its share of the
    measured peak."""
    ok = ok_cases(cases, "inference")
    flops = models.dropna(subset=["flops_per_sample"]).drop_duplicates(["framework", "model"])[
        ["framework", "model", "flops_per_sample"]
    ]
    eff = ok.merge(flops, on=["framework", "model"], how="inner")
    eff["gflops"] = eff.flops_per_sample * eff.batch_size / (eff.p50_ms / 1e3) / 1e9
    eff = eff.merge(machine_peaks(cases), on=GROUP, how="left")
    eff["pct_of_peak"] = 100 * eff.gflops / eff.peak_gflops
    cols = [*GROUP, "model", "batch_size", "framework", "runtime", "flops_per_sample", "p50_ms"]
    return (
        eff[[*cols, "gflops", "pct_of_peak"]]
        .sort_values([*GROUP, "model", "batch_size", "gflops"], ascending=[True] * 5 + [False])
        .reset_index(drop=True)
    )


def export_diagnostics(models: pd.DataFrame) -> pd.DataFrame:
    """Opset, nodes, op histogram, FLOPs and parity per export, large graphs called out."""
    cols = [
        "framework", "model", "exporter", "onnx_opset", "onnx_nodes", "op_histogram",
        "flops_per_sample", "onnx_parity_max_abs_diff", "initializers_stripped",
    ]  # fmt: skip
    diag = models.drop_duplicates(["host", "framework", "model"])[cols].copy()
    smallest = diag.groupby("model").onnx_nodes.transform("min")
    ratio = diag.onnx_nodes / smallest
    diag["note"] = [
        f"{r:.1f}x the nodes of the smallest export" if r > LARGE_GRAPH_RATIO else "" for r in ratio
    ]
    return diag.sort_values(["model", "onnx_nodes"]).reset_index(drop=True)


def thread_scaling(cases: pd.DataFrame) -> pd.DataFrame:
    """Throughput (samples/s at the median p50) by thread count, where threads were swept."""
    ok = ok_cases(cases, "inference")
    if ok.threads.nunique() < 2:
        return ok.iloc[0:0]
    ok = ok.assign(column="threads=" + ok.threads.astype(int).astype(str))
    return ok.pivot_table(
        index=["host", "device", "model", "batch_size", "framework", "runtime"],
        columns="column",
        values="throughput_sps",
    ).reset_index()


# -- comparison ----------------------------------------------------------------------------
def compare(new: RunData, old: RunData, min_effect: float = stats.MIN_EFFECT) -> pd.DataFrame:
    """The cases both runs measured, side by side, with a verdict per case.

    ``ratio`` is new p50 / old p50 (medians over processes) with a 95% interval from
    independent hierarchical bootstraps of both runs. ``p_value`` is the case's
    two-sided test of a change (:func:`stats.change_pvalues`: a moderated t-test on the
    per-process medians), ``p_holm`` the same after Holm's adjustment over every case
    compared. ``slower`` / ``faster`` need ``p_holm`` <= 5% (so two runs of one build
    flag any case with at most 5% probability) and the change to be at least
    ``min_effect``; ``same`` otherwise; ``n/a`` without a test. ``detectable_change`` is
    the smallest slowdown the test is sure to flag in that case, were it the only one
    to change (:func:`stats.detectable_change`): what this comparison can guard. Raises
    :class:`NothingToCompareError` when the runs share no measured case.
    """
    if new.cases is None:
        summarise(new)
    if old.cases is None:
        summarise(old)
    cols = ["run", "case_id", "p50_ms", "processes", "rounds"]
    a = old.cases[old.cases.status == "ok"].set_index(COMPARE_KEYS)[cols].add_prefix("old_")
    b = new.cases[new.cases.status == "ok"].set_index(COMPARE_KEYS)[cols].add_prefix("new_")
    both = b.join(a, how="inner").reset_index()
    if both.empty:
        raise NothingToCompareError(
            f"nothing to compare: {', '.join(new.runs)} and {', '.join(old.runs)} share no "
            "case measured in both (same device, framework, model, runtime, phase, batch "
            "size and threads, status ok)"
        )
    out, tests = [], []
    for r in both.itertuples():
        o_samples = _compare_samples(old, r.old_run, r.old_case_id)
        n_samples = _compare_samples(new, r.new_run, r.new_case_id)
        o = stats.estimate(o_samples, seed=stats.seed_for("compare-old", r.old_case_id))
        n = stats.estimate(n_samples, seed=stats.seed_for("compare-new", r.new_case_id))
        tests.append((n_samples, o_samples, n, o))
        change = stats.ratio(n, o)
        out.append(
            {
                **{k: getattr(r, k) for k in COMPARE_KEYS},
                "old_run": r.old_run,
                "new_run": r.new_run,
                "old_p50_ms": o.p50,
                "old_ci_low_ms": o.low,
                "old_ci_high_ms": o.high,
                "old_processes": o.processes,
                "old_rounds": o.rounds,
                "new_p50_ms": n.p50,
                "new_ci_low_ms": n.low,
                "new_ci_high_ms": n.high,
                "new_processes": n.processes,
                "new_rounds": n.rounds,
                "ratio": change.value,
                "ratio_ci_low": change.low,
                "ratio_ci_high": change.high,
            }
        )
    # Each phase's noise is of its own kind (a cold start is not a warm call): the
    # variance prior of the test is fitted per phase; the adjustment spans them all.
    p, se, df = np.full(len(out), np.nan), np.full(len(out), np.nan), np.full(len(out), np.inf)
    phases = np.array([row["phase"] for row in out])
    for phase in dict.fromkeys(phases):
        at = np.flatnonzero(phases == phase)
        result = stats.change_tests([tests[i] for i in at])
        p[at], se[at], df[at] = result.p, result.se, result.df
    adjusted = stats.holm(p)
    detectable = stats.detectable_change(se, df, int(np.isfinite(p).sum()), min_effect)
    for row, p_case, p_holm, smallest in zip(out, p, adjusted, detectable, strict=True):
        row.update(
            p_value=p_case,
            p_holm=p_holm,
            detectable_change=smallest,
            verdict=stats.verdict(row["ratio"], p_holm, min_effect),
        )
    table = pd.DataFrame(out)
    table = table.assign(_order=table.verdict.map(VERDICT_ORDER))
    return (
        table.sort_values(["_order", "ratio"], ascending=[True, False], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def _compare_samples(data: RunData, run: str, case_id: str) -> list[np.ndarray]:
    """The case's samples: the rounds of each process, or one total per cold start."""
    rows = data.cold[(data.cold.run == run) & (data.cold.case_id == case_id)]
    if len(rows):
        ok = rows[(rows.status == "ok") & rows.total_ms.notna()]
        return [np.array([t]) for t in ok.total_ms]
    return data.samples(run, case_id)


def regressions(comparison: pd.DataFrame) -> pd.DataFrame:
    """Timed phases that got slower (``peak`` measures the machine, not the code)."""
    return comparison[
        (comparison.verdict == "slower") & comparison.phase.isin(["inference", "train_step"])
    ]


def comparison_table(comparison: pd.DataFrame) -> Table:
    columns = [
        *COMPARE_KEYS, "old p50 ms [95% CI]", "new p50 ms [95% CI]", "new/old [95% CI]",
        "change %", "processes old/new", "p (Holm)", "detectable %", "verdict",
    ]  # fmt: skip
    rows = []
    for r in comparison.itertuples():
        rows.append(
            [
                *(Cell(_fmt_value(k, getattr(r, k))) for k in COMPARE_KEYS),
                Cell(fmt_ci(r.old_p50_ms, r.old_ci_low_ms, r.old_ci_high_ms)),
                Cell(fmt_ci(r.new_p50_ms, r.new_ci_low_ms, r.new_ci_high_ms)),
                Cell(fmt_ci(r.ratio, r.ratio_ci_low, r.ratio_ci_high, fmt_ratio)),
                Cell(f"{100 * (r.ratio - 1):+.1f}" if _finite(r.ratio) else ""),
                Cell(f"{r.old_processes}/{r.new_processes}"),
                Cell(f"{r.p_holm:.2g}" if _finite(r.p_holm) else ""),
                Cell(f"{100 * r.detectable_change:.0f}" if _finite(r.detectable_change) else ""),
                Cell(r.verdict, bold=r.verdict in ("slower", "faster")),
            ]
        )
    text = {"device", "framework", "model", "runtime", "phase", "verdict", "processes old/new"}
    return Table(columns, rows, [c not in text for c in columns])


# -- environment ---------------------------------------------------------------------------
def _joined(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))


def environment_table(data: RunData) -> pd.DataFrame:
    rows = []

    def mapping(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    def listed(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    for run, fp in data.environments.items():
        fp = mapping(fp)  # a damaged fingerprint shows as blanks, never as an error
        m = mapping(fp.get("machine"))
        gpus = (
            "; ".join(
                f"{g.get('name')} (driver {g.get('driver')}, CUDA {g.get('cuda')}, "
                f"{g.get('memory_mib')} MiB)"
                for g in map(mapping, listed(m.get("gpus")))
            )
            or "none"
        )
        git = mapping(m.get("git"))
        options = mapping(fp.get("options"))
        rows.append(
            {
                "run": run,
                "host": m.get("host"),
                "cpu": m.get("cpu_model"),
                "cores (logical/physical)": f"{m.get('logical_cores')}/{m.get('physical_cores')}",
                "memory GiB": m.get("memory_gib"),
                "gpu": gpus,
                "os": m.get("os"),
                "python": m.get("python"),
                "commit": f"{str(git.get('commit'))[:12]}"
                + (" (dirty)" if git.get("dirty") else ""),
                "started": m.get("time"),
                "mode": fp.get("mode"),
                "threads": ",".join(map(str, listed(options.get("threads")))),
                "processes per case": options.get("repeat", ""),
            }
        )
    return pd.DataFrame(rows)


def _worker_groups(data: RunData) -> list[dict[str, Any]]:
    """Worker records of one run, group and thread count that recorded the same
    versions, environment and settings, folded into one row listing their processes."""
    folded: dict[tuple[Any, ...], dict[str, Any]] = {}
    for w in data.workers.itertuples():
        key = (
            w.run,
            w.group,
            w.threads,
            tuple(sorted(w.versions.items())),
            tuple(sorted(w.env.items())),
            tuple(sorted(w.settings.items())),
        )
        entry = folded.setdefault(
            key,
            {
                "run": w.run,
                "group": w.group,
                "threads": w.threads,
                "processes": [],
                "versions": w.versions,
                "env": w.env,
                "settings": w.settings,
            },
        )
        if w.process not in entry["processes"]:
            entry["processes"].append(w.process)
    out = list(folded.values())
    for e in out:
        e["processes"] = ",".join(map(str, sorted(e["processes"])))
    return out


def versions_table(data: RunData) -> pd.DataFrame:
    rows = [
        {k: e[k] for k in ("run", "group", "threads", "processes")} | e["versions"]
        for e in _worker_groups(data)
    ]
    return pd.DataFrame(rows).fillna("") if rows else pd.DataFrame()


#: Shown first among the workers' environment variables: they change how threads wait.
SPIN_VARIABLES = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")


def settings_table(data: RunData) -> pd.DataFrame:
    groups = _worker_groups(data)
    names = sorted({k for e in groups for k in e["env"]})
    names = [n for n in SPIN_VARIABLES if n in names] + [
        n for n in names if n not in SPIN_VARIABLES
    ]
    rows = [
        {k: e[k] for k in ("run", "group", "threads", "processes")}
        | {n: e["env"].get(n, "") for n in names}
        | {"settings": _joined(e["settings"])}
        for e in groups
    ]
    return pd.DataFrame(rows) if rows else pd.DataFrame()


#: What ONNX Runtime runs (``bench/ort.py``: ``make_session`` and ``OrtRunner``).
ORT_MODE_NOTE = (
    "ONNX Runtime on the framework's own ONNX export, in a worker process of its own: all "
    "graph optimizations, the run's intra-op threads, inputs and outputs bound on the "
    "device; inference only"
)
#: Said where an adapter declares a mode without a note (the conformance kit requires one).
NO_DESCRIPTION = "(no description)"


def modes_table(data: RunData) -> pd.DataFrame:
    """Every runtime of every framework in the run, one line each: its native modes
    (default first) with the adapter's ``mode_notes``, then ONNX Runtime on its export.
    A mode without a note says so rather than being left blank."""
    notes = mode_notes(data)
    order = mode_order(data)
    cases = data.cases if data.cases is not None else empty_cases()
    ort = cases[cases.runtime == ORT]
    exporters = {
        str(fw): _first(list(grp.exporter)) for fw, grp in ort.groupby("framework", sort=True)
    }
    frameworks = sorted(
        {*order, *exporters, *(str(f) for f in cases.framework.dropna().unique())} - {ORT, ""}
    )
    rows = []
    for fw in frameworks:
        for i, m in enumerate(order.get(fw, [])):
            note = " ".join(str(notes.get((fw, m)) or "").split())
            rows.append(
                {
                    "framework": fw,
                    "mode": m,
                    "default": "yes" if i == 0 else "",
                    "what it runs": note or NO_DESCRIPTION,
                }
            )
        if fw in exporters:
            exporter = exporters[fw]
            rows.append(
                {
                    "framework": fw,
                    "mode": ORT,
                    "default": "",
                    "what it runs": ORT_MODE_NOTE
                    + (f"; export: {exporter}" if isinstance(exporter, str) and exporter else ""),
                }
            )
    return pd.DataFrame(rows)
