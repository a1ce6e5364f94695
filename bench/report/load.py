"""Raw run folders into tidy pandas DataFrames, one row per thing measured.

Reads the records of docs/results.md: the timing workers' ``raw/*.jsonl`` (schema
``xfbench-case/2``, one file per group, thread count and process, and the older
``xfbench-case/1``, one process per case), the cold starts' ``raw/coldstart.jsonl``
(``xfbench-cold/1``), ``fingerprint.json`` and ``models.json``. A file that is
unreadable, truncated, of an unknown schema or not ours is left out, or the part of it
that is, with a warning naming it; the rest is read. Nothing here computes a statistic.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CASE_SCHEMAS = ("xfbench-case/1", "xfbench-case/2")
COLD_SCHEMA = "xfbench-cold/1"
SCHEMAS = (*CASE_SCHEMAS, COLD_SCHEMA)

#: models.csv: one row per trained model.
MODEL_COLUMNS = [
    "run", "host", "framework", "model", "parameters", "test_accuracy",
    "time_to_accuracy_s", "train_seconds", "exporter", "onnx_opset", "onnx_nodes",
    "onnx_parity_max_abs_diff", "reference_max_abs_diff", "initializers_stripped",
    "flops_per_sample", "op_histogram",
]  # fmt: skip
#: One row per case and process: what one timing worker measured of one case.
PROCESS_COLUMNS = [
    "run", "host", "device_name", "framework", "model", "runtime", "exporter", "phase",
    "device", "batch_size", "threads", "case_id", "process", "schema", "status", "reason",
    "calls_per_round", "rounds", "times_ms", "peak_rss_mb", "peak_device_mb", "providers",
    "other_cpus", "steal_cpus", "file",
]  # fmt: skip
#: One row per cold-start process.
COLD_COLUMNS = [
    "run", "host", "device_name", "framework", "model", "runtime", "exporter", "device",
    "threads", "case_id", "process", "status", "reason", "import_ms", "load_ms",
    "first_call_ms", "total_ms", "process_ms", "rss_baseline_mb", "rss_increase_mb",
    "peak_device_mb", "batch_sizes",
]  # fmt: skip
#: One row per worker record (a timing process of one group and thread count).
WORKER_COLUMNS = [
    "run", "host", "group", "framework", "threads", "process", "pid", "python", "exporter",
    "versions", "env", "settings", "modes", "mode_notes", "file",
]  # fmt: skip

_PROCESS_IN_NAME = re.compile(r"-p(\d+)$")
_MIB = 2**20


class NoResultsError(RuntimeError):
    """The folders hold no result the report can read."""


@dataclass
class RunData:
    """Everything read from the runs; ``cases`` (summary.csv) is added by the analysis."""

    processes: pd.DataFrame
    cold: pd.DataFrame
    models: pd.DataFrame
    workers: pd.DataFrame
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    cases: pd.DataFrame | None = None
    #: (run, case_id) -> stats.Estimate of the case's headline p50 (set by the analysis).
    estimates: dict[tuple[str, str], Any] = field(default_factory=dict)
    _samples: dict[tuple[str, str], list[np.ndarray]] | None = field(default=None, repr=False)

    @property
    def runs(self) -> list[str]:
        return list(self.environments)

    def samples(self, run: str, case_id: str) -> list[np.ndarray]:
        """The per-call times (ms) of every process that measured one case (status ok)."""
        if self._samples is None:
            self._samples = {}
            p = self.processes
            for key, times, status in zip(
                zip(p.run, p.case_id, strict=True), p.times_ms, p.status, strict=True
            ):
                if status == "ok" and len(times):
                    self._samples.setdefault(key, []).append(times)
        return self._samples.get((run, case_id), [])


def _warn_skip(path: Path, why: str, skipped: list[str]) -> None:
    warnings.warn(f"skipping {path}: {why}", stacklevel=4)
    skipped.append(f"{path}: {why}")


def _read_jsonl(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    """The records of one results log that this report understands."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _warn_skip(path, f"unreadable ({exc})", skipped)
        return []
    records, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1  # a torn last line (a worker killed mid-write), or damage
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    if bad:
        _warn_skip(path, f"{bad} unreadable line(s) left out", skipped)
    known = [r for r in records if r.get("schema") in SCHEMAS or r.get("event") == "worker"]
    newer = sorted(
        {
            str(r["schema"])
            for r in records
            if str(r.get("schema", "")).startswith("xfbench-") and r["schema"] not in SCHEMAS
        }
    )
    if newer:
        _warn_skip(
            path,
            f"records of schema {', '.join(newer)} left out (this report reads "
            f"{', '.join(SCHEMAS)})",
            skipped,
        )
    elif records and not known:
        _warn_skip(path, "not an xfbench results log", skipped)
    return known


def _read_json(path: Path, skipped: list[str]) -> Any:
    if not path.exists():
        _warn_skip(path, "missing", skipped)
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _warn_skip(path, f"not valid JSON ({exc.__class__.__name__})", skipped)
        return None


def _process_of(rec: dict[str, Any], path: Path) -> int:
    """The process number of a record: its own field (schema 2), else the file name's
    ``-p<k>``, else 1 (schema 1: one process per case)."""
    if isinstance(rec.get("process"), int):
        return rec["process"]
    m = _PROCESS_IN_NAME.search(path.stem)
    return int(m.group(1)) if m else 1


def _mb(value: Any) -> float:
    return value / _MIB if isinstance(value, int | float) and value else np.nan


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else np.nan


def _ms(value: Any) -> float:
    return float(value) * 1e3 if isinstance(value, int | float) else np.nan


def _process_row(rec: dict[str, Any], process: int, path: Path) -> dict[str, Any]:
    stats = rec.get("stats") or {}
    data = np.asarray(stats.get("data") or [], dtype=float) * 1e3  # s per call -> ms
    extra = rec.get("extra_info") or {}
    calls = rec.get("calls_per_round") or stats.get("iterations") or 1
    row = {
        k: rec.get(k)
        for k in (
            "framework",
            "model",
            "runtime",
            "phase",
            "device",
            "batch_size",
            "threads",
            "case_id",
            "schema",
            "status",
            "reason",
        )
    }
    row.update(
        process=process,
        reason=row["reason"] or "",
        calls_per_round=int(calls),
        rounds=int(data.size),
        times_ms=data,
        peak_rss_mb=_mb(extra.get("peak_rss_bytes")),
        peak_device_mb=_mb(extra.get("peak_device_bytes")),
        providers=", ".join(map(str, extra.get("providers") or [])),
        exporter=extra.get("exporter") or "",
        other_cpus=_number(extra.get("other_cpus")),
        steal_cpus=_number(extra.get("steal_cpus")),
        file=path.name,
    )
    return row


def _cold_row(rec: dict[str, Any], process: int, path: Path) -> dict[str, Any]:
    parts = [_ms(rec.get(k)) for k in ("import_s", "load_s", "first_call_s")]
    ok = rec.get("status") == "ok"
    return {
        **{
            k: rec.get(k)
            for k in ("framework", "model", "runtime", "device", "threads", "case_id", "status")
        },
        "reason": rec.get("reason") or "",
        "process": process,
        "import_ms": parts[0],
        "load_ms": parts[1],
        "first_call_ms": parts[2],
        # The cold start proper: what the process did from importing the framework to
        # the end of its first call (interpreter start-up is in process_ms).
        "total_ms": float(np.sum(parts)) if ok and all(np.isfinite(parts)) else np.nan,
        "process_ms": _ms(rec.get("process_s")),
        "rss_baseline_mb": _mb(rec.get("rss_baseline_bytes")),
        "rss_increase_mb": (
            rec["rss_increase_bytes"] / _MIB
            if isinstance(rec.get("rss_increase_bytes"), int | float)
            else np.nan
        ),
        "peak_device_mb": _mb(rec.get("peak_device_bytes")),
        "batch_sizes": ",".join(map(str, rec.get("batch_sizes") or [])),
        "exporter": rec.get("exporter") or "",
        "file": path.name,
    }


def _worker_row(rec: dict[str, Any], process: int, path: Path) -> dict[str, Any]:
    return {
        "group": rec.get("group") or rec.get("framework"),
        "framework": rec.get("framework"),
        "threads": rec.get("threads"),
        "process": process,
        "pid": rec.get("pid"),
        "python": rec.get("python"),
        "exporter": rec.get("exporter") or "",
        "versions": dict(rec.get("versions") or {}),
        "env": dict(rec.get("env") or {}),
        "settings": dict(rec.get("settings") or {}),
        "modes": list(rec.get("modes") or []),
        "mode_notes": dict(rec.get("mode_notes") or {}),
        "file": path.name,
    }


def _model_row(m: dict[str, Any], run: str, host: str) -> dict[str, Any]:
    onnx = m.get("onnx") or {}
    train = m.get("train") or {}
    return {
        "run": run,
        "host": host,
        "framework": m["framework"],
        "model": m.get("model"),
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


def read_runs(run_dirs: Iterable[Path]) -> RunData:
    """Every record of every run in ``run_dirs``, as tidy DataFrames.

    Raises :class:`NoResultsError` when none of the folders holds a case, a cold start
    or a model manifest.
    """
    run_dirs = [Path(d) for d in run_dirs]
    process_rows: list[dict[str, Any]] = []
    cold_rows: list[dict[str, Any]] = []
    model_rows: list[dict[str, Any]] = []
    worker_rows: list[dict[str, Any]] = []
    environments: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for run_dir in run_dirs:
        fp = _read_json(run_dir / "fingerprint.json", skipped)
        fp = fp if isinstance(fp, dict) else {}
        machine = fp.get("machine") if isinstance(fp.get("machine"), dict) else {}
        host = str(machine.get("host") or run_dir.name)
        gpus = machine.get("gpus") or []
        run = run_dir.name
        environments[run] = fp

        def device_name(device: Any, machine: dict = machine, gpus: list = gpus) -> str:
            if device == "cuda" and gpus:
                return str(gpus[0].get("name", ""))
            return str(machine.get("cpu_model") or "")

        exporters: dict[str, str] = {}
        for m in _read_json(run_dir / "models.json", skipped) or []:
            if isinstance(m, dict) and "framework" in m:
                exporters[m["framework"]] = (m.get("onnx") or {}).get("exporter") or ""
                model_rows.append(_model_row(m, run, host))
        ends: dict[tuple[str, int], dict[str, Any]] = {}
        colds: dict[tuple[str, int], dict[str, Any]] = {}
        for path in sorted((run_dir / "raw").glob("*.jsonl")):
            for rec in _read_jsonl(path, skipped):
                process = _process_of(rec, path)
                if rec.get("schema") in CASE_SCHEMAS and rec.get("event") == "end":
                    if rec.get("case_id"):  # a restarted case: the last record counts
                        ends[(rec["case_id"], process)] = _process_row(rec, process, path)
                elif rec.get("schema") == COLD_SCHEMA and rec.get("case_id"):
                    colds[(rec["case_id"], process)] = _cold_row(rec, process, path)
                elif rec.get("event") == "worker":
                    worker_rows.append(
                        {"run": run, "host": host, **_worker_row(rec, process, path)}
                    )
        for rows, found in ((process_rows, ends), (cold_rows, colds)):
            for row in found.values():
                row.update(run=run, host=host, device_name=device_name(row["device"]))
                if row["runtime"] == "onnxruntime" and not row["exporter"]:
                    row["exporter"] = exporters.get(row["framework"], "")
                elif row["runtime"] != "onnxruntime":
                    row["exporter"] = ""
                rows.append(row)
    if not process_rows and not cold_rows and not model_rows:
        raise NoResultsError(
            "no results found in "
            + ", ".join(str(d) for d in run_dirs)
            + ": run `tox -e bench-cpu` first, or point at a folder under reports/"
        )
    processes = pd.DataFrame(process_rows, columns=PROCESS_COLUMNS)
    processes = processes.sort_values(["run", "case_id", "process"], kind="stable")
    cold = pd.DataFrame(cold_rows, columns=COLD_COLUMNS)
    cold = cold.sort_values(["run", "case_id", "process"], kind="stable")
    return RunData(
        processes=processes.reset_index(drop=True),
        cold=cold.reset_index(drop=True),
        models=pd.DataFrame(model_rows, columns=MODEL_COLUMNS),
        workers=pd.DataFrame(worker_rows, columns=WORKER_COLUMNS),
        environments=environments,
        skipped_files=skipped,
    )
