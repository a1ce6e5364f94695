"""Raw run folders into tidy pandas DataFrames, one row per thing measured.

Reads the records of docs/results.md: the timing workers' ``raw/*.jsonl`` (schema
``xfbench-case/2``, one file per group, thread count and process, and the older
``xfbench-case/1``, one process per case), the cold starts' ``raw/coldstart.jsonl``
(``xfbench-cold/1``), ``fingerprint.json``, ``models.json`` and the marker of a run that
stopped early, ``incomplete.json``. A file that is
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
    "run", "host", "framework", "model", "parameters", "test_accuracy", "quality",
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


def no_results_message(run_dirs: Iterable[Path]) -> str:
    return (
        "no results found in "
        + ", ".join(str(d) for d in run_dirs)
        + ": run `tox -e bench-cpu` first, or point at a folder under reports/"
    )


@dataclass
class RunData:
    """Everything read from the runs; ``cases`` (summary.csv) is added by the analysis."""

    processes: pd.DataFrame
    cold: pd.DataFrame
    models: pd.DataFrame
    workers: pd.DataFrame
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    #: run -> its folder, as given.
    folders: dict[str, Path] = field(default_factory=dict)
    #: run -> the number of ``raw/*.jsonl`` files found in it.
    raw_files: dict[str, int] = field(default_factory=dict)
    #: run -> its ``incomplete.json`` ({"reason": str, "t": time}) where it has one.
    incomplete: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: pd.DataFrame | None = None
    #: (run, case_id) -> stats.Estimate of the case's headline p50 (set by the analysis).
    estimates: dict[tuple[str, str], Any] = field(default_factory=dict)
    _samples: dict[tuple[str, str], list[np.ndarray]] | None = field(default=None, repr=False)

    @property
    def runs(self) -> list[str]:
        return list(self.environments)

    @property
    def empty(self) -> bool:
        """No case, cold start or model manifest was read."""
        return self.processes.empty and self.cold.empty and self.models.empty

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


def read_incomplete(run_dir: Path, skipped: list[str]) -> dict[str, Any] | None:
    """The run's ``incomplete.json`` (written by the bench when a run stops early):
    ``{"reason": str, "t": time}``; None when there is none. A damaged marker still says
    the run is incomplete."""
    path = Path(run_dir) / "incomplete.json"
    if not path.exists():
        return None
    marker = _read_json(path, skipped)
    if not isinstance(marker, dict):
        return {"reason": "the run left a damaged incomplete.json", "t": None}
    return {"reason": str(marker.get("reason") or "no reason recorded"), "t": marker.get("t")}


def _process_of(rec: dict[str, Any], path: Path) -> int:
    """The process number of a record: its own field (schema 2), else the file name's
    ``-p<k>``, else 1 (schema 1: one process per case)."""
    if isinstance(rec.get("process"), int):
        return rec["process"]
    m = _PROCESS_IN_NAME.search(path.stem)
    return int(m.group(1)) if m else 1


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mb(value: Any) -> float:
    return value / _MIB if isinstance(value, int | float) and value else np.nan


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else np.nan


def _ms(value: Any) -> float:
    return float(value) * 1e3 if isinstance(value, int | float) else np.nan


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _case_fields(
    rec: dict[str, Any], texts: tuple[str, ...], numbers: tuple[str, ...]
) -> dict[str, Any]:
    """The fields naming a case: texts as text (a number where a name belongs is shown,
    not sorted against names), numbers as numbers (else the record is damaged)."""
    row: dict[str, Any] = {k: _text(rec.get(k)) for k in texts}
    for k in numbers:
        value = rec.get(k)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{k} is not a number: {value!r}")
        row[k] = value
    return row


def _process_row(rec: dict[str, Any], process: int, path: Path) -> dict[str, Any]:
    stats = _dict(rec.get("stats"))
    data = np.asarray(stats.get("data") or [], dtype=float).ravel() * 1e3  # s/call -> ms
    extra = _dict(rec.get("extra_info"))
    calls = rec.get("calls_per_round") or stats.get("iterations") or 1
    row = _case_fields(
        rec,
        ("framework", "model", "runtime", "phase", "device", "case_id", "schema", "status"),
        ("batch_size", "threads"),
    )
    row.update(
        process=process,
        reason=_text(rec.get("reason")) or "",
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
        **_case_fields(
            rec, ("framework", "model", "runtime", "device", "case_id", "status"), ("threads",)
        ),
        "reason": _text(rec.get("reason")) or "",
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


def _quality(verdict: Any) -> str | None:
    """A generator's judged quality in a few words (bench/quality.py); None for the
    classifiers, which have an accuracy instead."""
    if not isinstance(verdict, dict) or "confidence" not in verdict:
        return None
    return f"confidence {verdict['confidence']:.3f}, {verdict.get('classes')} of 10 digits"


def _model_row(m: dict[str, Any], run: str, host: str) -> dict[str, Any]:
    onnx = _dict(m.get("onnx"))
    train = _dict(m.get("train"))
    return {
        "run": run,
        "host": host,
        "framework": m["framework"],
        "model": m.get("model"),
        "parameters": m.get("parameters"),
        "test_accuracy": train.get("test_accuracy"),
        "quality": _quality(train.get("quality")),
        "time_to_accuracy_s": train.get("time_to_accuracy_s"),
        "train_seconds": train.get("train_seconds"),
        "exporter": onnx.get("exporter"),
        "onnx_opset": onnx.get("opset"),
        "onnx_nodes": onnx.get("node_count"),
        "onnx_parity_max_abs_diff": onnx.get("parity_max_abs_diff"),
        "reference_max_abs_diff": m.get("reference_max_abs_diff"),
        "initializers_stripped": _dict(onnx.get("export_notes")).get("initializers_stripped", 0),
        "flops_per_sample": onnx.get("flops_per_sample"),
        "op_histogram": ", ".join(
            f"{op}×{n}" for op, n in sorted(_dict(onnx.get("op_histogram")).items())
        ),
    }


def read_runs(run_dirs: Iterable[Path], require_results: bool = True) -> RunData:
    """Every record of every run in ``run_dirs``, as tidy DataFrames.

    Raises :class:`NoResultsError` when none of the folders holds a case, a cold start
    or a model manifest, unless ``require_results`` is false (then the empty frames are
    returned: :attr:`RunData.empty`, and the report says what is missing).
    """
    run_dirs = [Path(d) for d in run_dirs]
    process_rows: list[dict[str, Any]] = []
    cold_rows: list[dict[str, Any]] = []
    model_rows: list[dict[str, Any]] = []
    worker_rows: list[dict[str, Any]] = []
    environments: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    folders: dict[str, Path] = {}
    raw_files: dict[str, int] = {}
    incomplete: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        marker = read_incomplete(run_dir, skipped)
        if marker is not None:
            incomplete[run_dir.name] = marker
        fp = _read_json(run_dir / "fingerprint.json", skipped)
        fp = fp if isinstance(fp, dict) else {}
        machine = fp.get("machine") if isinstance(fp.get("machine"), dict) else {}
        host = str(machine.get("host") or run_dir.name)
        gpus = [g for g in _list(machine.get("gpus")) if isinstance(g, dict)]
        run = run_dir.name
        environments[run] = fp
        folders[run] = run_dir

        def device_name(device: Any, machine: dict = machine, gpus: list = gpus) -> str:
            if device == "cuda" and gpus:
                return str(gpus[0].get("name", ""))
            return str(machine.get("cpu_model") or "")

        exporters: dict[str, str] = {}
        manifests = _read_json(run_dir / "models.json", skipped)
        if manifests is not None and not isinstance(manifests, list):
            _warn_skip(run_dir / "models.json", "not a list of model manifests", skipped)
            manifests = None
        damaged = 0
        for m in manifests or []:
            if isinstance(m, dict) and isinstance(m.get("framework"), str):
                try:
                    row = _model_row(m, run, host)
                except (TypeError, ValueError, AttributeError):
                    damaged += 1
                    continue
                exporters[m["framework"]] = row["exporter"] or ""
                model_rows.append(row)
            else:
                damaged += 1
        if damaged:
            _warn_skip(run_dir / "models.json", f"{damaged} damaged manifest(s) left out", skipped)
        ends: dict[tuple[str, int], dict[str, Any]] = {}
        colds: dict[tuple[str, int], dict[str, Any]] = {}
        paths = sorted((run_dir / "raw").glob("*.jsonl"))
        raw_files[run] = len(paths)
        for path in paths:
            damaged = 0
            for rec in _read_jsonl(path, skipped):
                try:
                    process = _process_of(rec, path)
                    case_id = rec.get("case_id")
                    if rec.get("schema") in CASE_SCHEMAS and rec.get("event") == "end":
                        # A restarted case ends twice in one file: the last record counts.
                        if isinstance(case_id, str) and case_id:
                            ends[(case_id, process)] = _process_row(rec, process, path)
                    elif rec.get("schema") == COLD_SCHEMA and isinstance(case_id, str) and case_id:
                        colds[(case_id, process)] = _cold_row(rec, process, path)
                    elif rec.get("event") == "worker":
                        worker_rows.append(
                            {"run": run, "host": host, **_worker_row(rec, process, path)}
                        )
                except (TypeError, ValueError, AttributeError):
                    damaged += 1  # a field of the wrong kind: the record is left out
            if damaged:
                _warn_skip(path, f"{damaged} damaged record(s) left out", skipped)
        for rows, found in ((process_rows, ends), (cold_rows, colds)):
            for row in found.values():
                row.update(run=run, host=host, device_name=device_name(row["device"]))
                if row["runtime"] == "onnxruntime" and not row["exporter"]:
                    row["exporter"] = exporters.get(row["framework"], "")
                elif row["runtime"] != "onnxruntime":
                    row["exporter"] = ""
                rows.append(row)
    if require_results and not process_rows and not cold_rows and not model_rows:
        raise NoResultsError(no_results_message(run_dirs))
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
        folders=folders,
        raw_files=raw_files,
        incomplete=incomplete,
    )
