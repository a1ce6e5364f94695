"""The benchmark worker against the real framework: a quick slice of the matrix, a
worker that dies mid-run, and one that hangs. Each must lose only its own case."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.matrix import Framework, Timing, native_cases
from bench.runner import WorkerPlan, read_records, run_worker
from bench.zoo import build_model
from models.spec import get_spec

TINY = Timing(min_rounds=3, max_time=0.02, warmup_s=0.0)


@pytest.fixture
def plan(adapter, test_artifacts, tmp_path) -> WorkerPlan:
    build_model(adapter, get_spec("mlp"), test_artifacts, progress=False)
    # The default mode only: compiling modes would make this slice slow, and the
    # isolation under test does not depend on the mode.
    fw = Framework.of(adapter.name)
    fw = Framework(fw.name, fw.models, fw.modes[:1], fw.train_modes[:1])
    expected = native_cases(fw, ["mlp"], ["cpu"], [1, 4], 1)
    return WorkerPlan(
        adapter.name,
        1,
        ["mlp"],
        ["cpu"],
        [1, 4],
        TINY,
        test_artifacts,
        tmp_path / "raw",
        case_timeout=60,
        expected=expected,
        python=Path(sys.executable),
        runtimes=fw.modes,
    )


def _by_id(records):
    return {r["case_id"]: r for r in records}


def test_quick_slice_records_every_round(plan):
    records = _by_id(run_worker(plan, echo=False))
    assert set(records) == {c.id for c in plan.expected}
    assert {r["status"] for r in records.values()} == {"ok"}
    for r in records.values():
        data = r["stats"]["data"]
        assert len(data) == r["stats"]["rounds"] >= (1 if r["phase"] == "compile" else 3)
        assert r["process"] == 1 and r["calls_per_round"] >= 1
        assert r["extra_info"]["peak_rss_bytes"] > 0
    worker = [r for r in read_records(plan.results) if r["event"] == "worker"]
    assert worker[0]["threads"] == 1 and worker[0]["env"]["OMP_NUM_THREADS"] == "1"
    assert list(plan.raw_dir.glob("*.part1.json"))  # pytest-benchmark's own JSON too


def test_a_crashing_case_loses_only_itself(plan, monkeypatch):
    victim = next(c.id for c in plan.expected if c.phase == "inference" and c.batch_size == 4)
    monkeypatch.setenv("XFBENCH_TEST_HOOKS", "1")
    monkeypatch.setenv("XFBENCH_FAULT", f"crash:{victim}")
    records = _by_id(run_worker(plan, echo=False))
    assert set(records) == {c.id for c in plan.expected}
    assert records[victim]["status"] == "error"
    assert "worker died during this case (signal SIGABRT)" in records[victim]["reason"]
    assert all(r["status"] == "ok" for cid, r in records.items() if cid != victim)


def test_a_hanging_case_times_out_and_the_rest_run(plan, monkeypatch):
    victim = next(c.id for c in plan.expected if c.phase == "train_step")
    monkeypatch.setenv("XFBENCH_TEST_HOOKS", "1")
    monkeypatch.setenv("XFBENCH_FAULT", f"hang:{victim}")
    # Long enough for a restarted worker's first case (data load, JAX's first compile)
    # on a loaded 2-core machine, short enough to keep the test quick.
    plan.case_timeout = 10
    records = _by_id(run_worker(plan, echo=False))
    assert records[victim]["status"] == "timeout"
    assert "time limit of 10 s" in records[victim]["reason"]
    assert all(r["status"] == "ok" for cid, r in records.items() if cid != victim)


def test_onnxruntime_group_runs_the_export_in_its_own_worker(plan):
    """The onnxruntime group: a worker that imports ONNX Runtime and no framework."""
    from bench.matrix import onnxruntime_cases

    plan.group, plan.frameworks = "onnxruntime", [plan.expected[0].framework]
    fw = Framework.of(plan.frameworks[0])
    plan.expected = onnxruntime_cases([fw], ["mlp"], ["cpu"], [1, 4], 1)
    plan.runtimes = ()
    records = _by_id(run_worker(plan, echo=False))
    assert set(records) == {c.id for c in plan.expected}
    assert {r["status"] for r in records.values()} == {"ok"}, records
    worker = next(r for r in read_records(plan.results) if r["event"] == "worker")
    assert worker["group"] == "onnxruntime" and "onnxruntime" in worker["versions"]
    assert worker["settings"]["session.intra_op.allow_spinning"] == "1"
    # the framework itself was never imported in that process
    log = (plan.raw_dir / f"{plan.stem}.log").read_text()
    assert "Traceback" not in log


def test_cold_start_in_fresh_processes(plan):
    from bench.orchestrator import RunPlan, run_cold_starts

    fw = plan.expected[0].framework
    run = RunPlan(
        [fw], ["mlp"], ["cpu"], [1, 4], [1], TINY, 1, 2, plan.artifacts, plan.raw_dir,
        case_timeout=120, python=plan.python,
    )  # fmt: skip
    records = run_cold_starts(run, progress=lambda _: None)
    assert {(r["runtime"], r["process"]) for r in records} == {
        (rt, p) for rt in (Framework.of(fw).modes[0], "onnxruntime") for p in (1, 2)
    }
    for r in records:
        assert r["status"] == "ok", r["reason"]
        parts = [r["import_s"], r["load_s"], r["first_call_s"]]
        assert all(p > 0 for p in parts)
        assert r["process_s"] > sum(parts)  # the interpreter's own start is outside them
        assert r["rss_increase_bytes"] > 0 and r["rss_baseline_bytes"] > 0
    assert read_records(plan.raw_dir / "coldstart.jsonl") == records
