"""The harness timed against a known clock, through the real worker processes.

The known-clock adapter (``bench/adapters/clock_adapter.py``) costs batch x 10 us of busy
work per call: 50 us at batch 5, 1 ms at 100, 10 ms at 1000. The benchmark must report
that time per call within 2%, whether the work happens inside the call (``sync``) or in
``wait`` after a call that returns at once (``async``, as GPU kernels and JAX do). Then
the comparison of real runs: the same build measured twice flags nothing, a case slowed
by 20% through the suite's own hook is flagged, and ``--fail-on regression`` fails
only then.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.adapters.clock_adapter import SECONDS_PER_SAMPLE
from bench.matrix import Timing
from bench.orchestrator import RunPlan, run_timing
from bench.weights import save_weights
from models.spec import get_spec

CLOCK = "clock=bench.adapters.clock_adapter:ClockAdapter"
SIZES = [5, 100, 1000]  # 50 us, 1 ms, 10 ms a call
TIMING = Timing(min_rounds=15, max_time=0.25, warmup_s=0.02)


@pytest.fixture
def clock(monkeypatch, tmp_path) -> Path:
    """Artifacts for the clock adapter (its weights are never used, only validated)."""
    monkeypatch.setenv("XFBENCH_ADAPTERS", CLOCK)
    from bench import adapters

    adapters._entry_points.cache_clear()
    yield tmp_path / "artifacts"
    adapters._entry_points.cache_clear()


def _plan(artifacts: Path, raw: Path, repeat: int = 1, sizes=SIZES) -> RunPlan:
    spec = get_spec("mlp")
    save_weights(artifacts / "clock" / "mlp" / "weights.npz", spec, spec.init_weights(0))
    return RunPlan(
        ["clock"],
        ["mlp"],
        ["cpu"],
        sizes,
        [1],
        TIMING,
        repeat,
        0,
        artifacts,
        raw,
        case_timeout=120,
        onnxruntime=False,
        phases=("inference",),
        python=Path(sys.executable),
    )


def _median_per_call(record: dict) -> float:
    return float(np.median(record["stats"]["data"]))


def test_known_clock_within_two_percent(clock, tmp_path):
    records = run_timing(_plan(clock, tmp_path / "raw"), progress=lambda _: None)
    got = {(r["runtime"], r["batch_size"]): r for r in records}
    assert set(got) == {(m, b) for m in ("sync", "async") for b in SIZES}
    for (mode, b), r in sorted(got.items()):
        assert r["status"] == "ok", r["reason"]
        want = b * SECONDS_PER_SAMPLE
        measured = _median_per_call(r)
        assert abs(measured / want - 1) <= 0.02, (mode, b, measured, want)
        # Calls of 20 us or more are timed one per round, so p99 is per call.
        assert r["calls_per_round"] == 1


def test_an_asynchronous_call_is_timed_in_full(clock, tmp_path):
    """Returning at once costs nothing; only the wait makes the call 1 ms. A harness
    that did not wait inside the timed region would report a few microseconds."""
    records = run_timing(_plan(clock, tmp_path / "raw", sizes=[100]), progress=lambda _: None)
    (r,) = [r for r in records if r["runtime"] == "async"]
    assert _median_per_call(r) >= 0.98e-3


def _run_folder(clock: Path, root: Path, name: str) -> Path:
    """A run folder as `xfbench bench` writes it, timed in 3 interleaved processes."""
    import json

    from bench.fingerprint import machine

    run = root / name
    plan = _plan(clock, run / "raw", repeat=3, sizes=[5, 100])
    plan.timing = Timing(min_rounds=15, max_time=0.1, warmup_s=0.01)
    run_timing(plan, progress=lambda _: None)
    (run / "fingerprint.json").write_text(json.dumps({"machine": machine(), "mode": "full"}))
    (run / "models.json").write_text("[]")
    return run


def test_compare_flags_a_real_slowdown_and_nothing_else(clock, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    before = _run_folder(clock, tmp_path, "before")
    again = _run_folder(clock, tmp_path, "again")  # the same build, measured again
    slowed = "clock-mlp-sync-inference-cpu-b100-t1"
    monkeypatch.setenv("XFBENCH_TEST_HOOKS", "1")
    monkeypatch.setenv("XFBENCH_SLOWDOWN", f"1.2:{slowed}")
    after = _run_folder(clock, tmp_path, "after")
    monkeypatch.delenv("XFBENCH_SLOWDOWN")

    def report(new: Path, name: str) -> tuple[int, str]:
        argv = ["report", str(new), "--compare", str(before), "--fail-on", "regression"]
        code = main([*argv, "--output", str(tmp_path / name)])
        return code, capsys.readouterr().out

    code, out = report(again, "same")
    assert code == 0 and "0 regression(s)" in out
    code, out = report(after, "slow")
    assert code == 1 and "1 regression(s)" in out
    import pandas as pd

    table = pd.read_csv(tmp_path / "slow" / "comparison.csv")
    flagged = table[table.verdict == "slower"]
    assert [(r.runtime, r.batch_size) for r in flagged.itertuples()] == [("sync", 100)]
    assert 1.15 < float(flagged.ratio.iloc[0]) < 1.25


def test_cases_run_from_the_smallest_batch_up_compile_first(clock, tmp_path):
    """A large batch can slow every later small call of a framework (MXNet: 5x), so a
    process runs each batch size's first calls, then its timed calls, smallest first;
    the order within a group changes with the process number."""
    from bench.runner import read_records

    plan = _plan(clock, tmp_path / "raw", repeat=2, sizes=[5, 1, 3])
    plan.timing = Timing(min_rounds=3, max_time=0.005, warmup_s=0.0)
    plan.phases = ("compile", "inference", "train_step")
    run_timing(plan, progress=lambda _: None)
    orders = []
    for process in (1, 2):
        records = read_records(tmp_path / "raw" / f"clock-t1-p{process}.jsonl")
        ids = [r["case_id"] for r in records if r["event"] == "start"]
        keys = []
        for cid in ids:
            parts = cid.split("-")
            phase, batch = parts[3], int(parts[5][1:])
            keys.append((phase == "train_step", batch, phase == "inference"))
        assert keys == sorted(keys), ids
        orders.append(ids)
    assert orders[0] != orders[1]  # shuffled within groups, seeded by the process


def test_a_progress_bar_can_follow_every_case(clock, tmp_path):
    """``on_cases`` sees the count of ended cases rise to the total, never past it."""
    seen: list[tuple[int, int]] = []
    plan = _plan(clock, tmp_path / "raw", repeat=2, sizes=[5, 100])
    records = run_timing(plan, progress=lambda _: None, on_cases=lambda d, t: seen.append((d, t)))
    total = len(records)
    assert seen[-1] == (total, total)
    done = [d for d, _ in seen]
    assert done == sorted(done) and all(t == total for _, t in seen)
    assert len(set(done)) > 2  # followed within a worker, not only at its end
