"""The benchmark worker against the real framework: a quick slice of the matrix, a
worker that dies mid-run, and one that hangs. Each must lose only its own case."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.matrix import Timing, generate_cases
from bench.runner import WorkerPlan, read_records, run_worker
from bench.zoo import build_model
from models.spec import get_spec

TINY = Timing(min_rounds=3, max_time=0.02, warmup_iterations=1)


@pytest.fixture
def plan(adapter, test_artifacts, tmp_path) -> WorkerPlan:
    build_model(adapter, get_spec("mlp"), test_artifacts, progress=False)
    expected = generate_cases(
        [adapter.name],
        ["mlp"],
        ["cpu"],
        [1, 4],
        [1],
        {adapter.name: adapter.eager_variant() is not None},
    )
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
    )


def _by_id(records):
    return {r["case_id"]: r for r in records}


def test_quick_slice_records_every_round(plan):
    records = _by_id(run_worker(plan, echo=False))
    assert set(records) == {c.id for c in plan.expected}
    assert {r["status"] for r in records.values()} == {"ok"}
    for r in records.values():
        data = r["stats"]["data"]
        assert len(data) == r["stats"]["rounds"] >= (1 if r["phase"] == "cold_start" else 3)
        assert r["extra_info"]["peak_rss_bytes"] > 0
    worker = [r for r in read_records(plan.results) if r["event"] == "worker"]
    assert worker[0]["threads"] == 1 and worker[0]["env"]["OMP_NUM_THREADS"] == "1"
    assert list(plan.raw_dir.glob("*.part1.json"))  # pytest-benchmark's own JSON too


def test_a_crashing_case_loses_only_itself(plan, monkeypatch):
    victim = next(c.id for c in plan.expected if c.phase == "inference" and c.batch_size == 4)
    monkeypatch.setenv("XFBENCH_FAULT", f"crash:{victim}")
    records = _by_id(run_worker(plan, echo=False))
    assert set(records) == {c.id for c in plan.expected}
    assert records[victim]["status"] == "error"
    assert "worker died during this case (signal SIGABRT)" in records[victim]["reason"]
    assert all(r["status"] == "ok" for cid, r in records.items() if cid != victim)


def test_a_hanging_case_times_out_and_the_rest_run(plan, monkeypatch):
    victim = next(c.id for c in plan.expected if c.phase == "train_step")
    monkeypatch.setenv("XFBENCH_FAULT", f"hang:{victim}")
    # Long enough for a restarted worker's first case (data load, JAX's first compile)
    # on a loaded 2-core machine, short enough to keep the test quick.
    plan.case_timeout = 10
    records = _by_id(run_worker(plan, echo=False))
    assert records[victim]["status"] == "timeout"
    assert "time limit of 10 s" in records[victim]["reason"]
    assert all(r["status"] == "ok" for cid, r in records.items() if cid != victim)
