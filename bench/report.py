"""From raw results to the tables people read.

Loads the per-case records of one or more runs (``<run>/raw/*.jsonl``, every round kept)
into one tidy pandas DataFrame, one row per case, with the percentiles computed from
the raw rounds, and the per-model manifests into a second. Files that are corrupt,
truncated or not ours are skipped with a warning naming them; the rest is reported.

The columns of ``summary.csv`` and ``models.csv`` are a contract (README, "Result
files"): tools outside the project read them.
"""

from __future__ import annotations

import html
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: summary.csv: one row per case.
CASE_COLUMNS = [
    "run", "host", "device", "device_name", "framework", "model", "runtime", "exporter",
    "phase", "batch_size", "threads", "rounds", "p50_ms", "p90_ms", "p99_ms", "p25_ms",
    "p75_ms", "iqr_ms", "mean_ms", "min_ms", "max_ms", "throughput_sps", "unstable",
    "peak_rss_mb", "peak_device_mb", "status", "reason", "case_id",
]  # fmt: skip
#: models.csv: one row per trained model.
MODEL_COLUMNS = [
    "run", "host", "framework", "model", "parameters", "test_accuracy",
    "time_to_accuracy_s", "train_seconds", "exporter", "onnx_opset", "onnx_nodes",
    "onnx_parity_max_abs_diff", "reference_max_abs_diff", "initializers_stripped",
    "flops_per_sample", "op_histogram",
]  # fmt: skip
#: A case whose interquartile range exceeds this fraction of its median is flagged.
UNSTABLE_IQR_RATIO = 0.25


class NoResultsError(RuntimeError):
    pass


@dataclass
class RunData:
    cases: Any  # pandas.DataFrame
    models: Any  # pandas.DataFrame
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)


def _warn_skip(path: Path, why: str, skipped: list[str]) -> None:
    warnings.warn(f"skipping {path}: {why}", stacklevel=3)
    skipped.append(f"{path}: {why}")


def case_row(record: dict[str, Any]) -> dict[str, Any]:
    """Percentiles, throughput and flags of one case record, from its raw rounds."""
    stats = record.get("stats") or {}
    data = np.asarray(stats.get("data") or [], dtype=float) * 1e3  # ms
    extra = record.get("extra_info") or {}
    row = {
        k: record.get(k)
        for k in (
            "framework",
            "model",
            "runtime",
            "phase",
            "device",
            "batch_size",
            "threads",
            "status",
            "reason",
            "case_id",
        )
    }
    row["rounds"] = int(data.size)
    if data.size:
        p25, p50, p75, p90, p99 = np.percentile(data, [25, 50, 75, 90, 99])
        row.update(
            p25_ms=p25,
            p50_ms=p50,
            p75_ms=p75,
            p90_ms=p90,
            p99_ms=p99,
            iqr_ms=p75 - p25,
            mean_ms=float(data.mean()),
            min_ms=float(data.min()),
            max_ms=float(data.max()),
        )
        row["throughput_sps"] = row["batch_size"] / (p50 / 1e3) if p50 > 0 else np.nan
        row["unstable"] = bool(data.size > 1 and (p75 - p25) > UNSTABLE_IQR_RATIO * p50)
    else:
        row["unstable"] = False
    rss = extra.get("peak_rss_bytes")
    dev = extra.get("peak_device_bytes")
    row["peak_rss_mb"] = rss / 2**20 if rss else np.nan
    row["peak_device_mb"] = dev / 2**20 if dev else np.nan
    return row


def _read_jsonl(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _warn_skip(path, f"unreadable ({exc})", skipped)
        return []
    records, bad = [], 0
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    if bad:
        _warn_skip(path, f"{bad} unreadable line(s) left out", skipped)
    if records and not any(
        r.get("schema") == "xfbench-case/1" or r.get("event") == "worker" for r in records
    ):
        _warn_skip(path, "not an xfbench results log", skipped)
        return []
    return records


def _read_json(path: Path, skipped: list[str]) -> Any:
    if not path.exists():
        _warn_skip(path, "missing", skipped)
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _warn_skip(path, f"not valid JSON ({exc.__class__.__name__})", skipped)
        return None


def load_runs(run_dirs: Iterable[Path]) -> RunData:
    """One DataFrame of cases and one of models for every run in ``run_dirs``."""
    import pandas as pd

    case_rows: list[dict[str, Any]] = []
    model_rows: list[dict[str, Any]] = []
    environments: dict[str, dict[str, Any]] = {}
    workers: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    for run_dir in map(Path, run_dirs):
        fp = _read_json(run_dir / "fingerprint.json", skipped) or {}
        machine = fp.get("machine", {}) if isinstance(fp, dict) else {}
        host = machine.get("host", run_dir.name)
        gpus = machine.get("gpus") or []
        run = run_dir.name
        environments[run] = fp
        ends: dict[str, dict[str, Any]] = {}
        for path in sorted((run_dir / "raw").glob("*.jsonl")):
            for rec in _read_jsonl(path, skipped):
                if rec.get("event") == "end" and rec.get("case_id"):
                    ends[rec["case_id"]] = rec  # a restarted case: the last word counts
                elif rec.get("event") == "worker":
                    workers.setdefault(run, [])
                    if not any(
                        w.get("framework") == rec.get("framework")
                        and w.get("threads") == rec.get("threads")
                        for w in workers[run]
                    ):
                        workers[run].append(rec)
        exporters = {}
        for m in _read_json(run_dir / "models.json", skipped) or []:
            if isinstance(m, dict) and "framework" in m:
                exporters[m["framework"]] = m["onnx"]["exporter"]
                model_rows.append(_model_row(m, run, host))
        for rec in ends.values():
            row = case_row(rec)
            row.update(
                run=run,
                host=host,
                device_name=(
                    gpus[0]["name"]
                    if row["device"] == "cuda" and gpus
                    else machine.get("cpu_model", "")
                ),
                exporter=exporters.get(row["framework"], "")
                if row["runtime"] == "onnxruntime"
                else "",
            )
            case_rows.append(row)
    if not case_rows and not model_rows:
        raise NoResultsError(
            "no results found in "
            + ", ".join(str(d) for d in run_dirs)
            + ": run `tox -e bench-cpu` first, or point at a folder under reports/"
        )
    cases = pd.DataFrame(case_rows).reindex(columns=CASE_COLUMNS)
    models = pd.DataFrame(model_rows).reindex(columns=MODEL_COLUMNS)
    cases = cases.sort_values(
        ["host", "device", "model", "phase", "batch_size", "framework", "runtime", "threads"],
        kind="stable",
    ).reset_index(drop=True)
    return RunData(cases, models, environments, workers, skipped)


def _model_row(m: dict[str, Any], run: str, host: str) -> dict[str, Any]:
    onnx = m.get("onnx", {})
    train = m.get("train", {})
    return {
        "run": run,
        "host": host,
        "framework": m["framework"],
        "model": m["model"],
        "parameters": m.get("parameters"),
        "test_accuracy": train.get("test_accuracy"),
        "time_to_accuracy_s": train.get("time_to_accuracy_s"),
        "train_seconds": train.get("train_seconds"),
        "exporter": onnx.get("exporter"),
        "onnx_opset": onnx.get("opset"),
        "onnx_nodes": onnx.get("node_count"),
        "onnx_parity_max_abs_diff": onnx.get("parity_max_abs_diff"),
        "reference_max_abs_diff": m.get("reference_max_abs_diff"),
        "initializers_stripped": (onnx.get("export_notes") or {}).get("initializers_stripped", 0),
        "flops_per_sample": onnx.get("flops_per_sample"),
        "op_histogram": ", ".join(
            f"{op}×{n}" for op, n in sorted((onnx.get("op_histogram") or {}).items())
        ),
    }


# -- tables ------------------------------------------------------------------------------
GROUP = ["host", "device", "threads"]
#: An exporter whose graph has more than this many times the smallest node count for
#: the same model is called out in the export diagnostics.
LARGE_GRAPH_RATIO = 2.0


def _ok(cases: Any, phase: str) -> Any:
    return cases[(cases.phase == phase) & (cases.status == "ok")]


def latency_detail(cases: Any, model: str) -> tuple[Any, Any]:
    """p50/p90/p99 and throughput of every inference case of ``model``, with a mask of
    the fastest (lowest p50) per host, device, threads and batch size."""
    ok = _ok(cases, "inference")
    ok = ok[ok.model == model]
    keys = [*GROUP, "batch_size"]
    table = ok[
        [
            *keys,
            "framework",
            "runtime",
            "exporter",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "throughput_sps",
            "unstable",
        ]
    ].sort_values([*keys, "p50_ms"])
    fastest = table.p50_ms == table.groupby(keys).p50_ms.transform("min")
    return table.reset_index(drop=True), fastest.reset_index(drop=True)


def latency_pivot(cases: Any, phase: str = "inference") -> Any:
    """p50 ms, one row per host/device/threads/model/batch, one column per
    framework and runtime."""
    ok = _ok(cases, phase).copy()
    if ok.empty:
        return ok
    ok["column"] = ok.framework + " " + ok.runtime
    return ok.pivot_table(
        index=[*GROUP, "model", "batch_size"], columns="column", values="p50_ms", aggfunc="first"
    )


def onnx_speedup(cases: Any) -> Any:
    """native p50 / ONNX Runtime p50 per framework (i.e. per exporter), model and batch:
    above 1 means the framework's own export runs faster under ONNX Runtime."""
    ok = _ok(cases, "inference")
    keys = [*GROUP, "framework", "model", "batch_size"]
    native = ok[ok.runtime == "native"].set_index(keys)["p50_ms"].rename("native_p50_ms")
    ort = ok[ok.runtime == "onnxruntime"].set_index(keys)[["exporter", "p50_ms"]]
    joined = ort.rename(columns={"p50_ms": "onnxruntime_p50_ms"}).join(native, how="inner")
    joined["speedup"] = joined.native_p50_ms / joined.onnxruntime_p50_ms
    return joined.reset_index()


def machine_peaks(cases: Any) -> Any:
    """Best float32 GEMM GFLOP/s per host, device and threads, and who reached it."""
    import pandas as pd

    peak = _ok(cases, "peak").copy()
    if peak.empty:
        return pd.DataFrame(columns=[*GROUP, "peak_gflops", "gemm_n", "by"])
    peak["gflops"] = 2 * peak.batch_size.astype(float) ** 3 / (peak.p50_ms / 1e3) / 1e9
    best = peak.loc[peak.groupby(GROUP).gflops.idxmax()]
    return best.rename(
        columns={"gflops": "peak_gflops", "batch_size": "gemm_n", "framework": "by"}
    )[[*GROUP, "peak_gflops", "gemm_n", "by"]]


def efficiency(cases: Any, models: Any) -> Any:
    """Achieved GFLOP/s of every inference case and its share of the measured peak."""
    ok = _ok(cases, "inference")
    flops = models.dropna(subset=["flops_per_sample"]).drop_duplicates(["framework", "model"])[
        ["framework", "model", "flops_per_sample"]
    ]
    eff = ok.merge(flops, on=["framework", "model"], how="inner")
    eff["gflops"] = eff.flops_per_sample * eff.batch_size / (eff.p50_ms / 1e3) / 1e9
    eff = eff.merge(machine_peaks(cases), on=GROUP, how="left")
    eff["pct_of_peak"] = 100 * eff.gflops / eff.peak_gflops
    return eff[
        [
            *GROUP,
            "model",
            "batch_size",
            "framework",
            "runtime",
            "flops_per_sample",
            "p50_ms",
            "gflops",
            "pct_of_peak",
        ]
    ].sort_values([*GROUP, "model", "batch_size", "gflops"], ascending=[True] * 5 + [False])


def export_diagnostics(models: Any) -> Any:
    """Opset, nodes, op histogram, FLOPs and parity per export, large graphs called out."""
    cols = [
        "framework",
        "model",
        "exporter",
        "onnx_opset",
        "onnx_nodes",
        "op_histogram",
        "flops_per_sample",
        "onnx_parity_max_abs_diff",
        "initializers_stripped",
    ]
    diag = models.drop_duplicates(["host", "framework", "model"])[cols].copy()
    smallest = diag.groupby("model").onnx_nodes.transform("min")
    ratio = diag.onnx_nodes / smallest
    diag["note"] = [
        f"{r:.1f}x the nodes of the smallest export" if r > LARGE_GRAPH_RATIO else "" for r in ratio
    ]
    return diag.sort_values(["model", "onnx_nodes"]).reset_index(drop=True)


def thread_scaling(cases: Any) -> Any:
    """Throughput by thread count, where a run swept threads."""
    ok = _ok(cases, "inference")
    if ok.threads.nunique() < 2:
        return ok.iloc[0:0]
    ok = ok.assign(column="threads=" + ok.threads.astype(str))
    return ok.pivot_table(
        index=["host", "device", "model", "batch_size", "framework", "runtime"],
        columns="column",
        values="throughput_sps",
    )


def memory_and_cold_start(cases: Any) -> Any:
    keys = ["host", "device", "framework", "model", "runtime"]
    cold = _ok(cases, "cold_start")
    cold = cold.assign(cold_start_s=cold.p50_ms / 1e3)[[*keys, "cold_start_s"]]
    used = (
        cases[cases.status == "ok"]
        .groupby(keys, as_index=False)
        .agg(peak_rss_mb=("peak_rss_mb", "max"), peak_device_mb=("peak_device_mb", "max"))
    )
    return cold.merge(used, on=keys, how="outer").sort_values(keys).reset_index(drop=True)


def compare(new: Any, old: Any) -> Any:
    """Side by side p50 of the cases two runs share, with a noise-aware verdict.

    A change counts only when each run's median lies outside the other run's
    interquartile range: the shift exceeds the spread of both runs, whatever its size
    in percent. Single-round cases (cold starts) get no verdict.
    """
    keys = ["device", "framework", "model", "runtime", "phase", "batch_size", "threads"]
    cols = ["p25_ms", "p50_ms", "p75_ms", "rounds"]
    a = old[old.status == "ok"].set_index(keys)[[*cols, "run"]].add_prefix("old_")
    b = new[new.status == "ok"].set_index(keys)[[*cols, "run"]].add_prefix("new_")
    both = b.join(a, how="inner").reset_index()
    both["ratio"] = both.new_p50_ms / both.old_p50_ms
    verdicts = []
    for r in both.itertuples():
        if min(r.old_rounds, r.new_rounds) < 2:
            verdicts.append("n/a (one round)")
        elif r.new_p50_ms > r.old_p75_ms and r.old_p50_ms < r.new_p25_ms:
            verdicts.append("slower")
        elif r.new_p50_ms < r.old_p25_ms and r.old_p50_ms > r.new_p75_ms:
            verdicts.append("faster")
        else:
            verdicts.append("same (within noise)")
    both["verdict"] = verdicts
    return both[[*keys, "old_p50_ms", "new_p50_ms", "ratio", "verdict"]]


VERDICT_ORDER = {"slower": 0, "faster": 1, "same (within noise)": 2, "n/a (one round)": 3}


def regressions(comparison: Any) -> Any:
    """Timed phases that got slower (``peak`` measures the machine, not the code)."""
    return comparison[
        (comparison.verdict == "slower") & comparison.phase.isin(["inference", "train_step"])
    ]


# -- rendering ---------------------------------------------------------------------------
@dataclass
class Section:
    title: str
    note: str = ""
    table: Any = None  # a DataFrame, shown with its index when ``index`` is set
    index: bool = False
    bold: Any = None  # same-shape boolean mask of cells to emphasise
    images: list[Path] = field(default_factory=list)
    level: int = 2


def _cell(v: Any, fmt: str) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else ""
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else format(v, fmt)
    return str(v)


def _fmt_for(column: str) -> str:
    if column.endswith(("_abs_diff",)):
        return ".1e"
    if column in ("speedup", "ratio", "pct_of_peak", "gflops", "peak_gflops"):
        return ".2f" if column in ("speedup", "ratio") else ".1f"
    if column in ("throughput_sps", "flops_per_sample", "peak_rss_mb", "peak_device_mb"):
        return ",.0f"
    if column == "test_accuracy":
        return ".4f"
    if column == "memory GiB":
        return ".1f"
    return ".3f"


def _rows(section: Section) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    df = section.table.reset_index() if section.index else section.table
    mask = section.bold.reset_index(drop=True) if section.bold is not None else None
    header = [str(c) for c in df.columns]
    rows, bold = [], []
    for i, (_, r) in enumerate(df.reset_index(drop=True).iterrows()):
        rows.append([_cell(v, _fmt_for(str(c))) for c, v in r.items()])
        if mask is None:
            bold.append([False] * len(header))
        elif getattr(mask, "ndim", 1) == 1:  # a row mask: bold the whole row's p50
            bold.append([bool(mask.iloc[i]) and c == "p50_ms" for c in header])
        else:
            bold.append([bool(mask.iloc[i].get(c, False)) for c in header])
    return header, rows, bold


def render_markdown(sections: list[Section], title: str, image_dir: Path) -> str:
    out = [f"# {title}\n"]
    for s in sections:
        out.append(f"\n{'#' * s.level} {s.title}\n\n")
        if s.note:
            out.append(s.note + "\n\n")
        for img in s.images:
            out.append(f"![{img.stem}]({img.relative_to(image_dir).as_posix()})\n\n")
        if s.table is None:
            continue
        if s.table.empty:
            out.append("_none_\n")
            continue
        header, rows, bold = _rows(s)
        out.append("| " + " | ".join(header) + " |\n")
        out.append("|" + "|".join("---" for _ in header) + "|\n")
        for row, b in zip(rows, bold, strict=True):
            cells = [
                f"**{c}**" if bb and c else c.replace("|", "\\|")
                for c, bb in zip(row, b, strict=True)
            ]
            out.append("| " + " | ".join(cells) + " |\n")
    return "".join(out)


HTML_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#1b1f24}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:12.5px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fbfcfd}strong{color:#0b6e2e}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#57606a}
"""


def render_html(sections: list[Section], title: str) -> str:
    """One self-contained page: styles inline, plots embedded as data URIs."""
    from bench.plots import embed_png

    out = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        out.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        if s.note:
            out.append(f"<p class='note'>{_inline_md(s.note)}</p>")
        for img in s.images:
            out.append(f"<img alt='{html.escape(img.stem)}' src='{embed_png(img)}'>")
        if s.table is None:
            continue
        if s.table.empty:
            out.append("<p><em>none</em></p>")
            continue
        header, rows, bold = _rows(s)
        out.append(
            "<table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr></thead><tbody>"
        )
        for row, b in zip(rows, bold, strict=True):
            out.append(
                "<tr>"
                + "".join(
                    f"<td><strong>{html.escape(c)}</strong></td>"
                    if bb and c
                    else f"<td>{html.escape(c)}</td>"
                    for c, bb in zip(row, b, strict=True)
                )
                + "</tr>"
            )
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """The report's notes use only `code` and **bold**."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _environment(data: RunData) -> list[Section]:
    import pandas as pd

    rows = []
    for run, fp in data.environments.items():
        m = (fp or {}).get("machine", {})
        gpus = (
            "; ".join(
                f"{g['name']} (driver {g['driver']}, CUDA {g['cuda']}, {g['memory_mib']} MiB)"
                for g in m.get("gpus", [])
            )
            or "none"
        )
        git = m.get("git", {})
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
                "mode": (fp or {}).get("mode"),
                "threads": ",".join(map(str, (fp or {}).get("options", {}).get("threads", []))),
            }
        )
    versions = []
    for run, workers in data.workers.items():
        for w in workers:
            versions.append(
                {
                    "run": run,
                    "framework": w.get("framework"),
                    "threads": w.get("threads"),
                    **{k: v for k, v in (w.get("versions") or {}).items()},
                }
            )
    return [
        Section("Environment", "Where and how each run was taken.", pd.DataFrame(rows)),
        Section("Library versions (per worker)", "", pd.DataFrame(versions).fillna(""), level=3),
    ]


def build_sections(
    data: RunData, plots: dict[str, list[Path]], comparison: Any = None
) -> list[Section]:
    cases, models = data.cases, data.models
    sections = _environment(data)
    if comparison is not None:
        regressed = regressions(comparison)
        sections.append(
            Section(
                f"Comparison with an earlier run: {len(regressed)} regression(s)",
                "A change is flagged only when each run's median lies outside the other run's "
                "interquartile range (the shift exceeds the noise of both runs), not at a "
                "fixed percentage. `ratio` is new p50 / old p50.",
                comparison.assign(_order=comparison.verdict.map(VERDICT_ORDER))
                .sort_values(["_order", "ratio"], ascending=[True, False])
                .drop(columns="_order"),
            )
        )
    pivot = latency_pivot(cases)
    bold = pivot.eq(pivot.min(axis=1), axis=0).reset_index(drop=True) if len(pivot) else None
    sections.append(
        Section(
            "Inference latency at a glance: p50 ms, fastest in bold",
            "Lower is better. `native` is each framework in its best inference mode (torch "
            "`eval` + `inference_mode`, a compiled `tf.function`, MXNet hybridized with "
            "`static_alloc`); `native-eager` runs op by op where that differs; `onnxruntime` "
            "runs that framework's own ONNX export.",
            pivot,
            index=True,
            bold=bold,
            images=plots.get("latency_vs_batch", []),
        )
    )
    for model in sorted(cases.model.dropna().unique()):
        if model == "gemm":
            continue
        table, fastest = latency_detail(cases, model)
        sections.append(
            Section(
                f"{model}: latency percentiles and throughput",
                "Throughput is samples per second at the median latency; the fastest p50 of "
                "each batch size is in bold.",
                table,
                bold=fastest,
                level=3,
            )
        )
    sections.append(
        Section(
            "ONNX Runtime speedup over native, per exporter",
            "native p50 / ONNX Runtime p50 of the same framework's export: above 1, ONNX "
            "Runtime is faster.",
            onnx_speedup(cases),
            images=plots.get("native_vs_onnxruntime", []),
        )
    )
    train = latency_pivot(cases, "train_step")
    sections.append(
        Section(
            "Training step: p50 ms",
            "Forward, loss, backward and an Adam update on one batch, from numpy inputs to the "
            "loss on the host.",
            train,
            index=True,
            bold=train.eq(train.min(axis=1), axis=0).reset_index(drop=True) if len(train) else None,
            images=plots.get("train_step", []),
        )
    )
    sections.append(
        Section(
            "Accuracy and time to accuracy",
            "Test accuracy after the spec's epochs; time to accuracy is training time until "
            "the first epoch whose test accuracy reached the target.",
            models[
                [
                    "host",
                    "framework",
                    "model",
                    "parameters",
                    "test_accuracy",
                    "time_to_accuracy_s",
                    "train_seconds",
                ]
            ],
        )
    )
    sections.append(
        Section(
            "Export diagnostics",
            "FLOPs are counted from each ONNX graph (2 x multiply-accumulates of Conv, Gemm, "
            f"MatMul and LSTM). An export with more than {LARGE_GRAPH_RATIO:g}x the nodes of "
            "the smallest export of the same model is called out.",
            export_diagnostics(models),
        )
    )
    peaks = machine_peaks(cases)
    sections.append(
        Section(
            "Efficiency against the machine's peak",
            "Peak: the best float32 GEMM (n x n, 2n³ FLOPs) any framework reached in this "
            "run on the same device and threads. Achieved GFLOP/s: the graph's FLOPs per "
            "sample x batch / p50. The peak is a measured yardstick, not a hardware "
            "ceiling: a case whose shapes suit the kernels better than the GEMM's can "
            "exceed 100%.",
            peaks,
        )
    )
    eff = efficiency(cases, models)
    sections.append(Section("Achieved GFLOP/s per case", "", eff, level=3))
    scaling = thread_scaling(cases)
    if len(scaling):
        sections.append(
            Section(
                "Thread scaling: throughput (samples/s)",
                "",
                scaling,
                index=True,
                images=plots.get("thread_scaling", []),
            )
        )
    sections.append(
        Section(
            "Cold start and peak memory",
            "Cold start: loading the weights (or creating the ONNX Runtime session) and the "
            "first call, in a process where the framework is already imported. Peak RSS: "
            "the worker process's resident-memory high-water mark during the case (it "
            "includes the models loaded before).",
            memory_and_cold_start(cases),
        )
    )
    unstable = cases[cases.unstable.fillna(False).astype(bool)]
    sections.append(
        Section(
            f"Unstable cases (IQR above {UNSTABLE_IQR_RATIO:.0%} of the median)",
            "Their percentiles are reported, but the spread is too wide to trust small "
            "differences.",
            unstable[["run", "case_id", "rounds", "p50_ms", "iqr_ms"]],
        )
    )
    failed = cases[cases.status != "ok"]
    sections.append(
        Section("Errors and unsupported cases", "", failed[["run", "case_id", "status", "reason"]])
    )
    if data.skipped_files:
        import pandas as pd

        sections.append(Section("Files left out", "", pd.DataFrame({"file": data.skipped_files})))
    return sections


def write_report(
    run_dirs: list[Path],
    out_dir: Path,
    title: str = "xfbench report",
    compare_with: Path | None = None,
) -> Report:
    """Write summary.csv, models.csv, report.md, report.html and plots into ``out_dir``.

    ``out_dir`` must not hold a report already: a report never replaces another.
    """
    from bench.plots import make_plots

    data = load_runs(run_dirs)
    comparison = None
    if compare_with is not None:
        comparison = compare(data.cases, load_runs([compare_with]).cases)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.html", "summary.csv", "models.csv"):
        if (out_dir / name).exists():
            raise FileExistsError(f"{out_dir / name} exists; a report never replaces another")
    data.cases.to_csv(out_dir / "summary.csv", index=False)
    data.models.to_csv(out_dir / "models.csv", index=False)
    if comparison is not None:
        comparison.to_csv(out_dir / "comparison.csv", index=False)
    images = make_plots(data.cases, out_dir / "plots")
    plots: dict[str, list[Path]] = {}
    for img in images:
        plots.setdefault(img.stem.split("-")[0], []).append(img)
    sections = build_sections(data, plots, comparison)
    (out_dir / "report.md").write_text(render_markdown(sections, title, out_dir))
    (out_dir / "report.html").write_text(render_html(sections, title))
    return Report(
        out_dir,
        out_dir / "report.md",
        out_dir / "report.html",
        0 if comparison is None else len(regressions(comparison)),
    )


@dataclass(frozen=True)
class Report:
    folder: Path
    markdown: Path
    html: Path
    regressions: int
