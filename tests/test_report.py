"""The report stage on real results (tests/fixtures/runs, recorded by `tox -e bench-cpu`):
numbers checked against the raw rounds, both result schemas, statistics across
processes, comparison, several hosts, bad input, escaping, and the HTML rendered in
headless Chromium.

Schema-2 inputs (several processes per case) are DERIVED here from the real schema-1
fixtures: each case's recorded rounds, in their recorded order, are split into three
consecutive chunks and written as if three worker processes had timed them
(:func:`derive_v2_run`). The numbers are real measurements, relabelled; only the
cold-start and compile records (which schema 1 did not have) are synthetic, and say so
where they are made.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from bench.cli import main  # noqa: E402
from bench.report import (  # noqa: E402
    CASE_COLUMNS,
    MODEL_COLUMNS,
    NoResultsError,
    NothingToCompareError,
    load_runs,
    write_report,
)
from bench.report.analysis import (  # noqa: E402
    compare,
    efficiency,
    fmt_ms,
    headline,
    machine_peaks,
    onnx_speedup,
    regressions,
)

RUNS = Path(__file__).parent / "fixtures" / "runs"
RUN_A, RUN_B = RUNS / "cpu-a", RUNS / "cpu-b"
#: The columns of summary.csv, in order (README, "Result files").
SUMMARY_COLUMNS = [
    "run", "host", "device", "device_name", "framework", "model", "runtime", "exporter",
    "phase", "batch_size", "threads", "processes", "rounds", "calls_per_round", "p50_ms",
    "p50_ci_low_ms", "p50_ci_high_ms", "spread_pct", "p90_ms", "p99_ms", "p25_ms", "p75_ms",
    "iqr_ms", "mean_ms", "min_ms", "max_ms", "throughput_sps", "throughput_ci_low_sps",
    "throughput_ci_high_sps", "unstable", "other_cpus", "steal_cpus", "busy", "peak_rss_mb",
    "peak_device_mb", "status", "reason", "case_id", "import_ms", "load_ms", "first_call_ms",
    "process_ms", "rss_increase_mb",
]  # fmt: skip


def raw_ends_of(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in recs if r.get("event") == "end"]


def raw_ends(run: Path) -> dict[str, dict]:
    return {r["case_id"]: r for p in sorted((run / "raw").glob("*.jsonl")) for r in raw_ends_of(p)}


# -- schema-2 runs derived from the real schema-1 fixtures -----------------------------------
#: The mode names a schema-2 run would use for the schema-1 runtimes of the fixtures.
V2_MODES = {
    ("torch", "native"): "eager",
    ("mxnet", "native"): "hybrid",
    ("mxnet", "native-eager"): "imperative",
}
PROCESSES = 3


def v2_case_id(fw: str, model: str, runtime: str, phase: str, device: str, b: int, t: int) -> str:
    return f"{fw}-{model}-{runtime}-{phase}-{device}-b{b}-t{t}"


def derive_v2_run(
    dst: Path,
    src: Path = RUN_A,
    processes: int = PROCESSES,
    transform: Callable[[str, int, list[float]], list[float]] | None = None,
    host: str | None = None,
) -> Path:
    """A schema-2 run folder made from the real schema-1 run ``src``.

    Every timed case's rounds, in recorded order, are split into ``processes``
    consecutive chunks, written to ``raw/<group>-t<n>-p<k>.jsonl`` as process k (ONNX
    Runtime cases in the ``onnxruntime`` group, as a schema-2 run has them), with the
    runtimes renamed to mode names (:data:`V2_MODES`). ``transform(case_id, process,
    seconds)`` may change a chunk (to simulate a slower build). Schema-1 cold starts are
    left out (schema 2 keeps them in ``raw/coldstart.jsonl``).
    """
    dst.mkdir(parents=True)
    for name in ("fingerprint.json", "models.json"):
        shutil.copy(src / name, dst / name)
    if host is not None:
        fp = json.loads((dst / "fingerprint.json").read_text())
        fp["machine"]["host"] = host
        (dst / "fingerprint.json").write_text(json.dumps(fp))
    files: dict[str, list[dict]] = {}
    for path in sorted((src / "raw").glob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        worker = next(r for r in records if r.get("event") == "worker")
        for rec in records:
            if rec.get("event") != "end" or rec["phase"] == "cold_start":
                continue
            fw, threads = rec["framework"], rec["threads"]
            group = "onnxruntime" if rec["runtime"] == "onnxruntime" else fw
            runtime = V2_MODES.get((fw, rec["runtime"]), rec["runtime"])
            case_id = v2_case_id(
                fw, rec["model"], runtime, rec["phase"], rec["device"], rec["batch_size"], threads
            )
            stats = rec.get("stats") or {}
            data = list(stats.get("data") or [])
            chunks = np.array_split(np.array(data), processes) if data else [[]] * processes
            for k, chunk in enumerate(chunks, 1):
                name = f"{group}-t{threads}-p{k}.jsonl"
                if name not in files:
                    files[name] = [
                        {
                            **worker,
                            "schema": "xfbench-case/2",
                            "group": group,
                            "framework": group,
                            "process": k,
                            "env": {
                                **worker.get("env", {}),
                                "OMP_WAIT_POLICY": "PASSIVE",
                                "KMP_BLOCKTIME": "0",
                            },
                            "settings": (
                                {"session.intra_op.allow_spinning": "0"}
                                if group == "onnxruntime"
                                else {}
                            ),
                        }
                    ]
                seconds = [float(x) for x in chunk]
                if transform is not None:
                    seconds = transform(case_id, k, seconds)
                files[name].append(
                    {
                        **rec,
                        "schema": "xfbench-case/2",
                        "runtime": runtime,
                        "case_id": case_id,
                        "process": k,
                        "calls_per_round": stats.get("iterations", 1) if stats else 1,
                        "stats": {"data": seconds} if rec.get("stats") else None,
                    }
                )
    (dst / "raw").mkdir()
    for name, recs in files.items():
        (dst / "raw" / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    return dst


def scaled(factor: float) -> Callable[[str, int, list[float]], list[float]]:
    return lambda _cid, _k, seconds: [s * factor for s in seconds]


@pytest.fixture
def report_dir(tmp_path) -> Path:
    return tmp_path / "report"


@pytest.fixture
def v2_run(tmp_path) -> Path:
    return derive_v2_run(tmp_path / "v2-a")


# -- schema 1: the numbers come from the raw rounds ------------------------------------------
def test_percentiles_come_from_the_raw_rounds():
    cases = load_runs([RUN_A]).cases
    ends = raw_ends(RUN_A)
    assert len(cases) == len(ends) == 76
    for row in cases.itertuples():
        data = np.array(ends[row.case_id]["stats"]["data"]) * 1e3
        assert row.rounds == len(data) and row.processes == 1
        p25, p50, p75, p90, p99 = np.percentile(data, [25, 50, 75, 90, 99])
        assert row.p50_ms == pytest.approx(p50)
        assert row.p50_ci_low_ms <= row.p50_ms <= row.p50_ci_high_ms
        assert row.p90_ms == pytest.approx(p90) and row.p99_ms == pytest.approx(p99)
        assert row.iqr_ms == pytest.approx(p75 - p25)
        assert np.isnan(row.spread_pct)  # one process: no between-process spread
        assert row.calls_per_round == ends[row.case_id]["stats"]["iterations"]
        if row.phase in ("inference", "train_step"):
            assert row.throughput_sps == pytest.approx(row.batch_size / (p50 / 1e3))
            assert row.throughput_ci_low_sps <= row.throughput_sps <= row.throughput_ci_high_sps
        else:
            assert np.isnan(row.throughput_sps)
        timed = row.phase in ("inference", "train_step", "peak")
        assert row.unstable == (timed and len(data) > 1 and p75 - p25 > 0.25 * p50)
        assert row.runtime in ("native", "native-eager", "onnxruntime")  # kept as recorded


def test_written_tables_match_the_data(report_dir):
    report = write_report([RUN_A], report_dir)
    summary = pd.read_csv(report_dir / "summary.csv")
    cases = load_runs([RUN_A]).cases
    assert list(summary.columns) == SUMMARY_COLUMNS == CASE_COLUMNS
    np.testing.assert_allclose(summary.p50_ms, cases.p50_ms)
    np.testing.assert_allclose(summary.p50_ci_low_ms, cases.p50_ci_low_ms)
    models = pd.read_csv(report_dir / "models.csv")
    assert list(models.columns) == MODEL_COLUMNS
    assert set(models.framework) == {"torch", "mxnet"}
    assert (models.flops_per_sample > 0).all()
    md = report.markdown.read_text()
    for title in (
        "How to read this report",
        "Inference latency at a glance",
        "ONNX Runtime against each framework",
        "Training step",
        "Accuracy and time to accuracy",
        "Export diagnostics",
        "Efficiency against the machine's peak",
        "Thread scaling",
        "Cold start",
        "Memory",
        "Environment",
        "Worker settings",
        "Errors and unsupported",
    ):
        assert title in md, title
    # One process per case (schema 1): the report says the intervals are within-process.
    assert "**Every case of this report was measured in one process**" in md
    assert "scipy.stats.bootstrap" in md  # why not a one-level bootstrap


@pytest.mark.parametrize("source", ["one process", "three processes"])
def test_headline_bold_only_where_intervals_clear_the_runner_up(source, tmp_path):
    """Bold only where the fastest interval clears the runner-up's, and never from one
    process: its interval cannot see the variation between processes (two quick runs,
    back to back, swapped the winners a one-process report had called clear)."""
    run = RUN_A if source == "one process" else derive_v2_run(tmp_path / "v2")
    data = load_runs([run])
    table = headline(data, "inference")
    ok = data.cases[(data.cases.phase == "inference") & (data.cases.status == "ok")]
    assert table.columns[-2:] == ["onnxruntime (best export)", "fastest"]
    checked = 0
    for row in table.rows:
        _host, _device, threads, model, batch = (c.text for c in row[:5])
        sub = ok[(ok.model == model) & (ok.batch_size == int(batch)) & (ok.threads == int(threads))]
        best = sub.loc[sub.p50_ms.idxmin()]
        # The runner-up among the entries shown: each framework's best mode and ORT's best.
        entries = [
            g.loc[g.p50_ms.idxmin()]
            for _, g in sub.assign(
                key=np.where(sub.runtime == "onnxruntime", "ort", sub.framework)
            ).groupby("key")
        ]
        runner = sorted((e for e in entries if e.name != best.name), key=lambda e: e.p50_ms)[0]
        clear = best.p50_ci_high_ms < runner.p50_ci_low_ms
        bold = [c for c in row if c.bold]
        verdict = row[-1].text
        if source == "one process":
            assert not bold and verdict.startswith("provisional (one process)")
        elif clear:
            assert len(bold) == 1 and bold[0].text.startswith(fmt_ms(best.p50_ms) + " [")
            assert not verdict.startswith("tie")
        else:
            assert not bold and verdict.startswith("tie")
        checked += 1
    assert checked == 8


def test_efficiency_uses_the_measured_gemm_peak():
    data = load_runs([RUN_A])
    peaks = machine_peaks(data.cases)
    gemm = data.cases[data.cases.phase == "peak"]
    for p in peaks.itertuples():
        same = gemm[gemm.threads == p.threads]
        best = (2 * same.batch_size.astype(float) ** 3 / (same.p50_ms / 1e3) / 1e9).max()
        assert p.peak_gflops == pytest.approx(best)
    eff = efficiency(data.cases, data.models)
    flops = data.models.set_index(["framework", "model"]).flops_per_sample
    for r in eff.itertuples():
        expected = flops[(r.framework, r.model)] * r.batch_size / (r.p50_ms / 1e3) / 1e9
        assert r.gflops == pytest.approx(expected)
        peak = peaks[peaks.threads == r.threads].peak_gflops.iloc[0]
        assert r.pct_of_peak == pytest.approx(100 * expected / peak)


# -- schema 2: several processes per case ----------------------------------------------------
def test_schema_2_statistics_across_processes(v2_run):
    data = load_runs([v2_run])
    ends = raw_ends(RUN_A)
    cases = data.cases
    assert len(cases) == 76 - 16  # the schema-1 cold starts are not carried over
    assert set(cases.runtime) == {"eager", "hybrid", "imperative", "onnxruntime"}
    assert (cases.processes == PROCESSES).all()
    for row in cases.itertuples():
        src_runtime = {v: k[1] for k, v in V2_MODES.items() if k[0] == row.framework}.get(
            row.runtime, row.runtime
        )
        src = ends[
            v2_case_id(
                row.framework, row.model, src_runtime, row.phase, "cpu", row.batch_size, row.threads
            )
        ]
        rounds = np.array(src["stats"]["data"]) * 1e3
        medians = [np.median(c) for c in np.array_split(rounds, PROCESSES)]
        assert row.p50_ms == pytest.approx(np.median(medians))  # median of process medians
        assert row.spread_pct == pytest.approx(
            100 * (max(medians) - min(medians)) / np.median(medians)
        )
        # The other percentiles pool every round of every process: as in the one run.
        assert row.p90_ms == pytest.approx(np.percentile(rounds, 90))
        assert row.min_ms == pytest.approx(rounds.min())
        assert row.rounds == len(rounds)
        assert row.p50_ci_low_ms <= row.p50_ms <= row.p50_ci_high_ms
        assert row.status == "ok" and row.reason == ""
    # Deterministic: the same files give the same intervals, to the last digit.
    again = load_runs([v2_run]).cases
    np.testing.assert_array_equal(again.p50_ci_low_ms, cases.p50_ci_low_ms)
    np.testing.assert_array_equal(again.p50_ci_high_ms, cases.p50_ci_high_ms)


def test_schema_2_and_schema_1_runs_load_together(v2_run, report_dir):
    report = write_report([v2_run, RUN_B], report_dir)
    cases = pd.read_csv(report_dir / "summary.csv")
    assert set(cases.run) == {"v2-a", "cpu-b"}
    assert set(cases[cases.run == "cpu-b"].processes) == {1}
    assert set(cases[cases.run == "v2-a"].processes) == {PROCESSES}
    md = report.markdown.read_text()
    assert "‡" in md  # one-process intervals marked where the report mixes both


def edit_end(path: Path, case_id: str, **fields: Any) -> None:
    """Give the ``end`` record of ``case_id`` in the raw file ``path`` these fields."""
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in recs:
        if rec.get("case_id") == case_id and rec.get("event") == "end":
            rec.update(fields)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_a_case_failing_in_some_processes(tmp_path):
    victim = "torch-mlp-eager-inference-cpu-b8-t2"
    run = derive_v2_run(tmp_path / "v2")
    failed = {"status": "error", "reason": "RuntimeError: boom", "stats": None}
    edit_end(run / "raw" / "torch-t2-p2.jsonl", victim, **failed)
    row = load_runs([run]).cases.set_index("case_id").loc[victim]
    assert row.status == "ok" and row.processes == 2
    assert row.reason == "1 of 3 processes failed (p2 error: RuntimeError: boom)"
    # Failing everywhere: the status of the processes, the reason said once.
    for k in (1, 3):
        edit_end(run / "raw" / f"torch-t2-p{k}.jsonl", victim, **failed)
    row = load_runs([run]).cases.set_index("case_id").loc[victim]
    assert row.status == "error" and row.processes == 0
    assert row.reason == "RuntimeError: boom (all 3 processes)"


def test_cases_timed_on_a_busy_machine_are_marked(tmp_path, report_dir):
    run = derive_v2_run(tmp_path / "v2")
    victim = "torch-mlp-eager-inference-cpu-b8-t2"
    quiet = {"other_cpus": 0.01, "steal_cpus": 0.0}
    for k in (1, 2, 3):
        path = run / "raw" / f"torch-t2-p{k}.jsonl"
        for rec in raw_ends_of(path):
            edit_end(path, rec["case_id"], extra_info={**(rec.get("extra_info") or {}), **quiet})
    cases = load_runs([run]).cases.set_index("case_id")
    assert not cases.busy.any()
    assert cases.loc[victim].other_cpus == 0.01
    md = write_report([run], report_dir).markdown.read_text()
    assert "No case was timed on a busy machine" in md
    assert "Cases timed on a busy machine" not in md
    assert "Warning:" not in md

    path = run / "raw" / "torch-t2-p2.jsonl"
    rec = next(r for r in raw_ends_of(path) if r["case_id"] == victim)
    edit_end(path, victim, extra_info={**(rec.get("extra_info") or {}), "other_cpus": 1.02})
    cases = load_runs([run]).cases.set_index("case_id")
    assert cases.busy.sum() == 1 and cases.loc[victim].busy
    assert cases.loc[victim].other_cpus == 1.02  # the worst of its processes
    md = write_report([run], tmp_path / "busy").markdown.read_text()
    assert "cases were timed on a busy machine**" in md
    # And above the answers, which a reader reads first.
    answers = md.split("## The answers")[1].split("\n## ")[0]
    assert "**Warning: 1 of" in answers and "may be wrong, not just noisy" in answers
    assert answers.index("**Warning") < answers.index("\n- ")
    section = md.split("Cases timed on a busy machine (above")[1]
    assert victim in section.split("\n#")[0]


def test_load_not_recorded_is_said(v2_run, report_dir):
    md = write_report([v2_run], report_dir).markdown.read_text()
    assert "The load of the rest of the machine was not recorded" in md


def test_calls_per_round_marks_p99(v2_run, report_dir):
    report = write_report([v2_run], report_dir)
    cases = pd.read_csv(report_dir / "summary.csv")
    ort = cases[cases.runtime == "onnxruntime"]
    assert (ort.calls_per_round > 1).all()  # the fixtures' ORT rounds average 2-10 calls
    md = report.markdown.read_text()
    row = ort.iloc[0]
    p99 = next(line for line in md.splitlines() if f"| {row.exporter} |" in line)
    assert "†" in p99
    assert "p99 is a percentile of round averages" in md


def _cold_record(fw, model, runtime, process, import_s, load_s, first_s, increase_mb, status="ok"):
    """A synthetic ``xfbench-cold/1`` record (schema-1 runs have no cold-start processes)."""
    return {
        "schema": "xfbench-cold/1",
        "event": "cold",
        "framework": fw,
        "model": model,
        "runtime": runtime,
        "phase": "cold_start",
        "device": "cpu",
        "batch_size": 1,
        "threads": 2,
        "process": process,
        "case_id": f"{fw}-{model}-{runtime}-cold_start-cpu-b1-t2",
        "status": status,
        "reason": "" if status == "ok" else "killed",
        "import_s": import_s,
        "load_s": load_s,
        "first_call_s": first_s,
        "process_s": import_s + load_s + first_s + 0.05,
        "rss_baseline_bytes": 300 * 2**20,
        "rss_increase_bytes": increase_mb * 2**20,
        "peak_device_bytes": None,
        "batch_sizes": [1, 8],
    }


def _compile_record(process, seconds):
    """A synthetic compile-phase record: one first call per process."""
    return {
        "schema": "xfbench-case/2",
        "event": "end",
        "framework": "torch",
        "model": "mlp",
        "runtime": "eager",
        "phase": "compile",
        "device": "cpu",
        "batch_size": 8,
        "threads": 2,
        "case_id": "torch-mlp-eager-compile-cpu-b8-t2",
        "process": process,
        "status": "ok",
        "reason": "",
        "calls_per_round": 1,
        "extra_info": {},
        "stats": {"data": [seconds]},
    }


def test_cold_starts_and_compile_phase(v2_run, report_dir):
    cold = [
        _cold_record("torch", "mlp", "eager", 1, 1.0, 0.10, 0.010, 50),
        _cold_record("torch", "mlp", "eager", 2, 1.2, 0.12, 0.012, 54),
        _cold_record("torch", "mlp", "eager", 3, 1.1, 0.11, 0.011, 52),
        _cold_record("torch", "mlp", "onnxruntime", 1, 0.2, 0.02, 0.001, 10),
        _cold_record("torch", "mlp", "onnxruntime", 2, 0.0, 0.0, 0.0, 0, status="timeout"),
    ]
    (v2_run / "raw" / "coldstart.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cold))
    with (v2_run / "raw" / "torch-t2-p1.jsonl").open("a") as fh:
        for k, s in ((1, 0.30), (2, 0.50), (3, 0.40)):
            fh.write(json.dumps(_compile_record(k, s)) + "\n")
    report = write_report([v2_run], report_dir)
    cases = pd.read_csv(report_dir / "summary.csv").set_index("case_id")
    eager = cases.loc["torch-mlp-eager-cold_start-cpu-b1-t2"]
    assert eager.phase == "cold_start" and eager.processes == 3
    assert eager.import_ms == pytest.approx(1100)
    assert eager.load_ms == pytest.approx(110)
    assert eager.first_call_ms == pytest.approx(11)
    assert eager.p50_ms == pytest.approx(1221)  # median total
    assert (eager.min_ms, eager.max_ms) == (pytest.approx(1110), pytest.approx(1332))
    assert eager.rss_increase_mb == pytest.approx(52)
    ort = cases.loc["torch-mlp-onnxruntime-cold_start-cpu-b1-t2"]
    assert ort.status == "ok" and ort.processes == 1
    assert ort.reason == "1 of 2 processes failed (p2 timeout: killed)"
    comp = cases.loc["torch-mlp-eager-compile-cpu-b8-t2"]
    assert comp.p50_ms == pytest.approx(400) and comp.processes == 3
    md = report.markdown.read_text()
    assert "Compile phase" in md and "includes compilation or tracing" in md
    assert "| 1,221 | 1,110–1,332 | 1,100 | 110.0 | 11.00 |" in md


def test_onnx_speedup_over_best_and_default_mode(v2_run):
    data = load_runs([v2_run])
    sp = onnx_speedup(data)
    cases = data.cases.set_index("case_id")
    mx = sp[(sp.framework == "mxnet")]
    assert len(mx) == 8 and set(mx.default_mode) == {"hybrid"}  # mxnet's first mode
    for r in sp.itertuples():
        assert r.speedup_vs_best == pytest.approx(r.best_p50_ms / r.onnxruntime_p50_ms)
        assert r.speedup_vs_best_ci_low <= r.speedup_vs_best <= r.speedup_vs_best_ci_high
        assert r.speedup_vs_default_ci_low <= r.speedup_vs_default <= r.speedup_vs_default_ci_high
        ort = cases.loc[
            v2_case_id(
                r.framework, r.model, "onnxruntime", "inference", "cpu", r.batch_size, r.threads
            )
        ]
        assert r.onnxruntime_p50_ms == ort.p50_ms and r.exporter == ort.exporter
        assert r.speedup_vs_default <= r.speedup_vs_best + 1e-12  # best is never slower


def test_headline_tie_when_intervals_overlap(tmp_path):
    """mxnet's MLP at batch 1 made the same as torch's, 1% slower: the intervals overlap,
    so the row is a tie, with no bold."""
    twin = "mxnet-mlp-hybrid-inference-cpu-b1-t1"
    source = "torch-mlp-eager-inference-cpu-b1-t1"
    original = derive_v2_run(tmp_path / "orig")
    torch_rounds = {}
    for k in range(1, PROCESSES + 1):
        for line in (original / "raw" / f"torch-t1-p{k}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec.get("case_id") == source:
                torch_rounds[k] = rec["stats"]["data"]

    def twin_of_torch(case_id, k, seconds):
        return [s * 1.01 for s in torch_rounds[k]] if case_id == twin else seconds

    def slower_ort(case_id, k, seconds):  # ONNX Runtime out of the way in that row
        return [s * 100 for s in seconds] if "onnxruntime" in case_id else seconds

    run = derive_v2_run(
        tmp_path / "tie",
        transform=lambda c, k, s: slower_ort(c, k, twin_of_torch(c, k, s)),
    )
    data = load_runs([run])
    table = headline(data, "inference")
    row = next(r for r in table.rows if [c.text for c in r[:5]] == ["vm", "cpu", "1", "mlp", "1"])
    assert not any(c.bold for c in row)
    assert row[-1].text.startswith("tie: ") and "mxnet hybrid" in row[-1].text
    assert "torch eager" in row[-1].text
    # Elsewhere, a clear winner is bold.
    assert any(c.bold for r in table.rows for c in r)


# -- comparison ------------------------------------------------------------------------------
def test_comparison_of_identical_runs_flags_nothing(tmp_path, v2_run):
    copy = derive_v2_run(tmp_path / "v2-copy")
    table = compare(load_runs([copy]), load_runs([v2_run]))
    assert len(table) == 60
    assert set(table.verdict) == {"same"}
    assert (table.ratio == 1).all()
    assert (table.ratio_ci_low < 1).all() and (table.ratio_ci_high > 1).all()


def test_comparison_flags_cases_twenty_percent_slower(tmp_path, v2_run):
    """Every case made 20% slower is flagged, except where the run's own processes
    disagree too much for the test (which answers for all 60 cases at once) to tell a
    20% change from noise: there "slower" would be a guess."""
    slow = derive_v2_run(tmp_path / "v2-slow", transform=scaled(1.2))
    table = compare(load_runs([slow]), load_runs([v2_run]))
    np.testing.assert_allclose(table.ratio, 1.2)
    assert set(table.verdict) <= {"slower", "same"}
    flagged = table.verdict == "slower"
    assert flagged.sum() >= 40  # most of the real cases
    assert (table[flagged].p_holm <= 0.05).all()
    assert (table[~flagged].p_holm > 0.05).all()
    assert (table.p_holm >= table.p_value).all()
    # What the comparison says it can guard, it guards: every case whose detectable
    # change is below 20% is flagged, and none is below the minimum effect.
    assert (table.detectable_change >= 0.05).all()
    assert set(table[table.detectable_change < 0.2].verdict) == {"slower"}
    assert (table.detectable_change < 0.2).sum() >= 30
    assert (
        len(regressions(table)) == (flagged & table.phase.isin(["inference", "train_step"])).sum()
    )
    # The other way round, the same cases are faster.
    back = compare(load_runs([v2_run]), load_runs([slow]))
    assert set(back.verdict) <= {"faster", "same"}
    assert (back.verdict == "faster").sum() == flagged.sum()


def test_comparison_ignores_changes_below_the_minimum_effect(tmp_path, v2_run):
    slow = derive_v2_run(tmp_path / "v2-slow", transform=scaled(1.02))
    table = compare(load_runs([slow]), load_runs([v2_run]))
    np.testing.assert_allclose(table.ratio, 1.02)
    assert set(table.verdict) == {"same"}
    # A 2% change is significant for the steadiest cases: only the floor keeps them out.
    assert (table.ratio_ci_low > 1).any()
    assert set(compare(load_runs([slow]), load_runs([v2_run]), min_effect=0.01).verdict) >= {
        "slower"
    }


def test_comparison_verdicts_follow_the_test_and_the_effect():
    """Two real runs taken one after the other (one process each)."""
    table = compare(load_runs([RUN_B]), load_runs([RUN_A]))
    assert len(table) == 76
    for r in table.itertuples():
        if min(r.old_rounds, r.new_rounds) < 2:
            assert r.verdict == "n/a" and np.isnan(r.p_holm)
        elif r.verdict == "slower":
            assert r.p_holm <= 0.05 and r.ratio >= 1.05
        elif r.verdict == "faster":
            assert r.p_holm <= 0.05 and r.ratio <= 1 / 1.05
        else:
            assert r.verdict == "same"
            assert r.p_holm > 0.05 or 1 / 1.05 < r.ratio < 1.05
    assert set(table[table.phase == "cold_start"].verdict) == {"n/a"}


def test_nothing_to_compare_is_an_error(tmp_path, v2_run, capsys):
    other = derive_v2_run(tmp_path / "gpu-run")
    for path in (other / "raw").glob("*.jsonl"):
        path.write_text(path.read_text().replace('"device": "cpu"', '"device": "cuda"'))
    with pytest.raises(NothingToCompareError, match=r"v2-a.*gpu-run|gpu-run.*v2-a"):
        write_report([other], tmp_path / "r", compare_with=v2_run)
    assert not (tmp_path / "r").exists()
    assert isinstance(NothingToCompareError("x"), NoResultsError)  # the CLI's usage error
    code = main(
        ["report", str(other), "--compare", str(v2_run), "--fail-on", "regression",
         "--output", str(tmp_path / "r2")]
    )  # fmt: skip
    assert code == 2
    assert "nothing to compare" in capsys.readouterr().err


def _slowed_copy(tmp_path: Path, factor: float) -> tuple[Path, str]:
    """RUN_A with every round of one case multiplied by ``factor``."""
    run = tmp_path / "slowed"
    shutil.copytree(RUN_A, run)
    path = run / "raw" / "torch-t2.jsonl"
    lines, victim = [], "torch-mlp-native-inference-cpu-b8-t2"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "end" and rec["case_id"] == victim:
            rec["stats"]["data"] = [t * factor for t in rec["stats"]["data"]]
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return run, victim


def test_fail_on_regression_exit_status(tmp_path, capsys):
    slowed, victim = _slowed_copy(tmp_path, 3.0)
    out = tmp_path / "cmp"
    code = main(
        [
            "report",
            str(slowed),
            "--compare",
            str(RUN_A),
            "--fail-on",
            "regression",
            "--output",
            str(out),
        ]
    )
    assert code == 1
    assert "1 regression(s)" in capsys.readouterr().out
    table = pd.read_csv(out / "comparison.csv")
    flagged = table[table.verdict == "slower"]
    assert len(flagged) == 1
    f = flagged.iloc[0]
    flagged_id = (
        f"{f.framework}-{f.model}-{f.runtime}-{f.phase}-{f.device}-b{f.batch_size}-t{f.threads}"
    )
    assert flagged_id == victim
    assert "Comparison with an earlier run: 1 regression(s)" in (out / "report.md").read_text()
    assert (
        main(
            [
                "report",
                str(RUN_A),
                "--compare",
                str(RUN_A),
                "--fail-on",
                "regression",
                "--output",
                str(tmp_path / "same"),
            ]
        )
        == 0
    )


# -- several hosts, bad input, files ---------------------------------------------------------
def test_several_hosts_merge_grouped_by_host(tmp_path, report_dir):
    other = derive_v2_run(tmp_path / "gpu-box-run", src=RUN_B, host="gpu-box")
    data = load_runs([RUN_A, other])
    assert set(data.cases.host) == {"vm", "gpu-box"}
    report = write_report([RUN_A, other], report_dir)
    md = report.markdown.read_text()
    assert "| gpu-box | cpu |" in md and "| vm | cpu |" in md
    plots = sorted(p.name for p in (report_dir / "plots").glob("*.png"))
    assert "latency_vs_batch-gpu-box-cpu.png" in plots and "latency_vs_batch-vm-cpu.png" in plots


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path, report_dir):
    run = tmp_path / "damaged"
    shutil.copytree(RUN_A, run)
    torn = run / "raw" / "torch-t1.jsonl"
    torn.write_text(torn.read_text()[:-500])  # a truncated last record
    (run / "raw" / "foreign.jsonl").write_text('{"hello": "world"}\n')
    (run / "raw" / "future-t1-p1.jsonl").write_text(
        '{"schema": "xfbench-case/9", "event": "end", "case_id": "x"}\n'
    )
    (run / "models.json").write_text("{ not json")
    with pytest.warns(UserWarning) as caught:
        report = write_report([run], report_dir)
    messages = " ".join(str(w.message) for w in caught)
    assert "torch-t1.jsonl: 1 unreadable line(s) left out" in messages
    assert "foreign.jsonl: not an xfbench results log" in messages
    assert "future-t1-p1.jsonl: records of schema xfbench-case/9 left out" in messages
    assert "models.json: not valid JSON" in messages
    cases = pd.read_csv(report_dir / "summary.csv")
    assert len(cases) == 75  # the torn case only
    assert "Files left out" in report.markdown.read_text()


def test_no_results_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "raw").mkdir(parents=True)
    with pytest.raises(NoResultsError, match="no results found"), pytest.warns(UserWarning) as w:
        load_runs([empty])
    assert {str(m.message).rsplit("/", 1)[-1] for m in w} == {
        "fingerprint.json: missing",
        "models.json: missing",
    }
    with pytest.warns(UserWarning, match="missing"):
        assert main(["report", str(empty), "--output", str(tmp_path / "r")]) == 2
    assert "run `tox -e bench-cpu` first" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_a_report_never_replaces_another(tmp_path, report_dir, capsys):
    write_report([RUN_A], report_dir)
    before = (report_dir / "report.md").read_text()
    with pytest.raises(FileExistsError):
        write_report([RUN_A], report_dir)
    assert (report_dir / "report.md").read_text() == before
    # Without --output the CLI picks a new folder.
    run = tmp_path / "run"
    shutil.copytree(RUN_A, run)
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    assert len(list((tmp_path / "reports").glob("*-report/report.md"))) == 1
    assert (run / "report.md").exists()


def test_html_is_self_contained(report_dir):
    report = write_report([RUN_A], report_dir)
    page = report.html.read_text()
    assert "http://" not in page and "https://" not in page
    images = len(list((report_dir / "plots").glob("*.png")))
    assert images >= 3 and page.count("<img ") == images
    assert page.count("src='data:image/png;base64,") == images


def test_data_is_escaped_everywhere(tmp_path, report_dir):
    """A host name is data: shown as text in HTML and Markdown, and drawn as text."""
    host = "<script>alert(1)</script> $\\foo{$ | *x*"
    run = derive_v2_run(tmp_path / "hostile", host=host)
    report = write_report([run], report_dir, title="<b>title</b>")
    page = report.html.read_text()
    assert "<script>" not in page and "<b>title" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $\\foo{$ | *x*" in page
    assert "&lt;b&gt;title&lt;/b&gt;" in page
    md = report.markdown.read_text()
    assert "<script>" not in md
    assert "\\<script\\>alert(1)\\</script\\> \\$\\\\foo{\\$ \\| \\*x\\*" in md
    assert len(list((report_dir / "plots").glob("*.png"))) >= 3  # no mathtext error


def test_the_package_imports_light_and_the_template_escapes():
    code = (
        "import sys, bench.report, bench.report.plots; "
        "heavy = {'matplotlib', 'pandas', 'jinja2'} & set(sys.modules); print(sorted(heavy))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    from bench.report.render import environment

    env = environment()
    assert env.autoescape is True
    assert "report.html.j2" in env.list_templates()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def headless_chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with ``args``, offline; skips the test where there is none,
    unless XFBENCH_REQUIRE_BROWSER=1 (CI installs chromium)."""
    if CHROMIUM is None:
        if os.environ.get("XFBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here (XFBENCH_REQUIRE_BROWSER=1)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tempfile.mkdtemp()}",
            "--hide-scrollbars",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_html_renders_its_plots_in_headless_chromium(report_dir, tmp_path):
    if CHROMIUM is None:
        headless_chromium()  # skips, or fails where a browser is required
    from matplotlib.image import imread

    report = write_report([RUN_A], report_dir)
    shot = tmp_path / "shot.png"
    headless_chromium("--window-size=1200,1800", f"--screenshot={shot}", report.html.as_uri())
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1800, 1200)
    # Tables are black on white; the plots are what brings saturated colour to the page.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).mean() > 0.002, "no plot rendered in the first screen"


#: Measures the page as laid out, after the report's own markup: every table cell whose
#: right edge passes its scroll container's (or the window's), where that container does
#: not scroll sideways; the page's width; the scroll boxes that scroll and how wide they
#: are. Written into the page as JSON, for --dump-dom to bring back.
LAYOUT_CHECK = """
(function () {
  const vw = document.documentElement.clientWidth;
  function box(el) {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox !== 'visible') return [p, ox];
    }
    return [null, 'visible'];
  }
  const out = {innerWidth: window.innerWidth, clientWidth: vw,
               scrollWidth: document.documentElement.scrollWidth,
               cells: 0, clipped: [], scrolling: [], cramped: []};
  for (const cell of document.querySelectorAll('td, th')) {
    out.cells += 1;
    const [p, ox] = box(cell);
    const right = cell.getBoundingClientRect().right;
    const limit = p ? p.getBoundingClientRect().right : vw;
    const scrolls = p !== null && (ox === 'auto' || ox === 'scroll')
      && p.scrollWidth > p.clientWidth;
    if (right > limit + 0.5 && !scrolls) out.clipped.push(cell.textContent.slice(0, 80));
  }
  for (const p of document.querySelectorAll('table')) {
    const [b, ox] = box(p);
    if (b && b.scrollWidth > b.clientWidth) {
      out.scrolling.push(ox);
      // a box scrolls only when the window has no room left for its table
      if (b.clientWidth < vw - 100) out.cramped.push(b.clientWidth + ' of ' + vw);
    }
  }
  const pre = document.createElement('pre');
  pre.id = 'xfbench-layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_html_tables_are_never_cut_off_in_headless_chromium(tmp_path, width):
    """At 1280 px (and on a wide screen) no table cell reaches past what its scroll box
    shows unless that box scrolls sideways (``overflow-x: auto``), the page itself is no
    wider than the window, and a table scrolls only where the window has no room for it
    (the page's text width does not cut tables off)."""
    if CHROMIUM is None:
        headless_chromium()  # skips, or fails where a browser is required
    run = derive_v2_run(tmp_path / "v2-a")
    report = write_report([run], tmp_path / "report")
    page = report.html.read_text()
    assert "<script" not in page  # the report has no script: the check is added to a copy
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", f"<script>{LAYOUT_CHECK}</script></body>"))
    dom = headless_chromium(f"--window-size={width},1000", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="xfbench-layout">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["innerWidth"] == width
    assert layout["cells"] > 500
    assert layout["clipped"] == []
    assert layout["scrollWidth"] <= width
    assert layout["cramped"] == []
    assert set(layout["scrolling"]) <= {"auto", "scroll"}
    if width == 1280:  # the widest tables do not fit: they scroll, in their own box
        assert layout["scrolling"]


def test_the_answers_name_the_fastest_entry_and_the_runner_up(v2_run):
    """One line per model and batch size; the fastest named is
    the row's lowest p50, the margin is the runner-up's p50 over it, and a tie is said
    where the intervals overlap."""
    from bench.report.analysis import answers

    data = load_runs([v2_run])
    lines = answers(data)
    ok = data.cases[(data.cases.phase == "inference") & (data.cases.status == "ok")]
    keys = ["host", "device", "threads", "model"]
    assert len(lines) == sum(g.batch_size.nunique() for _, g in ok.groupby(keys))
    assert ok.threads.nunique() > 1  # several thread counts: each line says which
    for line in lines:
        where, _, rest = line.partition(" at batch ")
        host, device, threads, model = where.split(" ")
        batch = int(rest.split(":")[0])
        at = (ok.host == host) & (ok.device == device) & (ok.threads == int(threads))
        rows = ok[at & (ok.model == model) & (ok.batch_size == batch)].sort_values("p50_ms")
        best, second = rows.iloc[0], rows.iloc[1]
        label = (
            f"onnxruntime on {best.framework}'s export"
            if best.runtime == "onnxruntime"
            else f"{best.framework} {best.runtime}"
        )
        assert f"fastest {label} {fmt_ms(best.p50_ms)} ms (" in line
        tie = bool(best.p50_ci_high_ms >= second.p50_ci_low_ms)
        assert ("(a tie with" in line.split("; ")[0]) is tie
        if not tie:
            margin = second.p50_ms / best.p50_ms
            shown = f"{margin:.3f}x" if margin < 1.1 else f"{margin:.2f}x"  # 1.00x: no
            assert f"{shown} ahead of" in line
        assert ("provisional: one process" in line) is (int(best.processes) == 1)
    # They open the report.
    assert "## The answers" in (write_report([v2_run], v2_run).markdown.read_text())
    # A run of one process per case cannot call a winner: every answer says so.
    single = answers(load_runs([RUN_A]))
    assert single and all("provisional: one process" in line for line in single)


def test_a_fleets_parts_pair_native_and_onnxruntime_cases(tmp_path):
    """A fleet times a framework's group and ONNX Runtime's as two parts (runs): within
    one fleet they are compared as one run's cases, as `xfbench bench` compares them."""
    from bench.report.analysis import onnx_speedup

    parts = []
    for k, want_ort in enumerate((False, True)):
        run = Path(shutil.copytree(RUNS / "cpu-a", tmp_path / f"20261126-08000{k}-vm-cpu"))
        for f in (run / "raw").glob("*.jsonl"):
            records = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            kept = [
                r
                for r in records
                if "case_id" not in r or ("-onnxruntime-" in r["case_id"]) == want_ort
            ]
            f.write_text("".join(json.dumps(r) + "\n" for r in kept))
        parts.append(run)
    whole = len(onnx_speedup(load_runs([RUNS / "cpu-a"])))
    assert whole > 0
    assert onnx_speedup(load_runs(parts)).empty  # two unrelated runs: never paired
    for run in parts:
        fp = json.loads((run / "fingerprint.json").read_text())
        fp["fleet"] = {"run": "20261126-080000-vm-fleet", "local": None}
        (run / "fingerprint.json").write_text(json.dumps(fp))
    sp = onnx_speedup(load_runs(parts))
    assert len(sp) == whole and set(sp.run) == {"20261126-080000-vm-fleet"}


def test_one_build_in_several_runs_is_one_row_of_the_model_tables(tmp_path):
    """A fleet's parts each carry the models they used: the same build, one row."""
    from bench.report.document import _model_sections

    copy = Path(shutil.copytree(RUNS / "cpu-a", tmp_path / "20261126-090000-vm-cpu"))
    once = _model_sections(load_runs([RUNS / "cpu-a"]).models)
    twice = _model_sections(load_runs([RUNS / "cpu-a", copy]).models)
    assert [len(s.table.rows) for s in twice] == [len(s.table.rows) for s in once]
    assert all(len(s.table.rows) > 0 for s in once)
