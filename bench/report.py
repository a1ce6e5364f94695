"""From raw results to the tables people read.

Loads the per-case records of one or more runs (``<run>/raw/*.jsonl``, every round kept)
into one tidy pandas DataFrame, one row per case, with the percentiles computed from
the raw rounds, and the per-model manifests into a second. Files that are corrupt,
truncated or not ours are skipped with a warning naming them; the rest is reported.

The columns of ``summary.csv`` and ``models.csv`` are a contract (README, "Result
files"): tools outside the project read them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: summary.csv: one row per case.
CASE_COLUMNS = [
    "run",
    "host",
    "device",
    "device_name",
    "framework",
    "model",
    "runtime",
    "exporter",
    "phase",
    "batch_size",
    "threads",
    "rounds",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "iqr_ms",
    "mean_ms",
    "min_ms",
    "max_ms",
    "throughput_sps",
    "unstable",
    "peak_rss_mb",
    "peak_device_mb",
    "status",
    "reason",
    "case_id",
]
#: models.csv: one row per trained model.
MODEL_COLUMNS = [
    "run",
    "host",
    "framework",
    "model",
    "parameters",
    "test_accuracy",
    "time_to_accuracy_s",
    "train_seconds",
    "exporter",
    "onnx_opset",
    "onnx_nodes",
    "onnx_parity_max_abs_diff",
    "reference_max_abs_diff",
    "initializers_as_inputs",
]
#: A case whose interquartile range exceeds this fraction of its median is flagged.
UNSTABLE_IQR_RATIO = 0.25


class NoResultsError(RuntimeError):
    pass


@dataclass
class RunData:
    cases: Any  # pandas.DataFrame
    models: Any  # pandas.DataFrame
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            p50_ms=p50,
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
    return RunData(cases, models, environments, skipped)


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
        "initializers_as_inputs": (onnx.get("export_notes") or {}).get(
            "initializers_stripped", onnx.get("initializers_as_inputs")
        ),
    }


# -- markdown ----------------------------------------------------------------------------
def _md_table(df: Any, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured table without the optional ``tabulate`` dependency."""
    if df.empty:
        return "_none_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for v in r.tolist():
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else format(v, floatfmt))
            else:
                cells.append(str(v).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latency_table(cases: Any, phase: str = "inference") -> Any:
    """p50 ms per (host, device, model, batch) x (framework/runtime); fastest in bold."""
    ok = cases[(cases.phase == phase) & (cases.status == "ok")].copy()
    if ok.empty:
        return ok
    ok["column"] = ok.framework + " " + ok.runtime
    table = ok.pivot_table(
        index=["host", "device", "model", "batch_size", "threads"],
        columns="column",
        values="p50_ms",
        aggfunc="first",
    )
    return table


def _bold_min(table: Any) -> Any:
    out = table.copy().astype(object)
    for idx, row in table.iterrows():
        best = row.min()
        for col, v in row.items():
            out.loc[idx, col] = "" if np.isnan(v) else (f"**{v:.3f}**" if v == best else f"{v:.3f}")
    return out.reset_index()


def onnx_speedup(cases: Any) -> Any:
    """native p50 / ONNX Runtime p50 per framework, model and batch (>1: ORT faster)."""
    ok = cases[(cases.phase == "inference") & (cases.status == "ok")]
    keys = ["host", "device", "framework", "model", "batch_size", "threads"]
    native = ok[ok.runtime == "native"].set_index(keys)["p50_ms"]
    ort = ok[ok.runtime == "onnxruntime"].set_index(keys)
    joined = ort[["exporter", "p50_ms"]].join(native.rename("native_p50_ms"), how="inner")
    joined["speedup"] = joined.native_p50_ms / joined.p50_ms
    return joined.rename(columns={"p50_ms": "onnxruntime_p50_ms"}).reset_index()


def write_markdown(data: RunData, out: Path, title: str) -> Path:
    cases, models = data.cases, data.models
    parts = [f"# {title}\n"]
    for run, fp in data.environments.items():
        m = (fp or {}).get("machine", {})
        gpus = (
            ", ".join(
                f"{g['name']} (driver {g['driver']}, CUDA {g['cuda']})" for g in m.get("gpus", [])
            )
            or "none"
        )
        git = m.get("git", {})
        parts.append(
            f"- **{run}**: host `{m.get('host')}`, {m.get('cpu_model')}, "
            f"{m.get('logical_cores')} logical cores, {m.get('memory_gib')} GiB; GPU: {gpus}; "
            f"commit `{str(git.get('commit'))[:12]}`{' (dirty)' if git.get('dirty') else ''}; "
            f"{m.get('time')}; mode: {(fp or {}).get('mode', '?')}\n"
        )
    parts.append(
        "\n## Inference latency, p50 ms (fastest in bold)\n\n"
        "Lower is better. `native` is each framework's best inference mode; "
        "`native-eager` runs op by op; `onnxruntime` runs that framework's own "
        "ONNX export.\n\n"
    )
    lat = latency_table(cases)
    parts.append(_md_table(_bold_min(lat)) if len(lat) else "_no inference results_\n")
    parts.append("\n## ONNX Runtime speedup over native (native p50 / ONNX Runtime p50)\n\n")
    parts.append(_md_table(onnx_speedup(cases).drop(columns=["host"]), ".2f"))
    parts.append("\n## Training step, p50 ms\n\n")
    train = latency_table(cases, "train_step")
    parts.append(_md_table(_bold_min(train)) if len(train) else "_none_\n")
    parts.append("\n## Cold start (load + first call, s) and peak resident memory (MiB)\n\n")
    cold = cases[(cases.phase == "cold_start") & (cases.status == "ok")]
    mem = (
        cases[(cases.phase == "inference") & (cases.status == "ok")]
        .groupby(["framework", "model", "runtime"], as_index=False)["peak_rss_mb"]
        .max()
    )
    cold_tbl = cold.assign(cold_start_s=cold.p50_ms / 1e3)[
        ["framework", "model", "runtime", "cold_start_s"]
    ].merge(mem, on=["framework", "model", "runtime"], how="outer")
    parts.append(_md_table(cold_tbl))
    parts.append("\n## Trained models\n\n")
    parts.append(_md_table(models.drop(columns=["run", "host"]), ".4g"))
    unstable = cases[cases.unstable.fillna(False).astype(bool)]
    parts.append(f"\n## Unstable cases (IQR > {UNSTABLE_IQR_RATIO:.0%} of the median)\n\n")
    parts.append(_md_table(unstable[["case_id", "rounds", "p50_ms", "iqr_ms"]]))
    failed = cases[cases.status != "ok"]
    parts.append("\n## Errors and unsupported cases\n\n")
    parts.append(_md_table(failed[["case_id", "status", "reason"]]))
    if data.skipped_files:
        parts.append("\n## Files left out\n\n" + "".join(f"- {s}\n" for s in data.skipped_files))
    out.write_text("".join(parts))
    return out


def write_report(run_dirs: list[Path], out_dir: Path, title: str = "xfbench report") -> Path:
    """Write summary.csv, models.csv and report.md into ``out_dir`` (created new)."""
    data = load_runs(run_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    data.cases.to_csv(out_dir / "summary.csv", index=False)
    data.models.to_csv(out_dir / "models.csv", index=False)
    return write_markdown(data, out_dir / "report.md", title)
