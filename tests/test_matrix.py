"""Option parsing and case generation of the benchmark matrix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.adapters import framework_names
from bench.cli import main
from bench.matrix import (
    DEFAULT_BATCH_SIZES,
    QUICK_BATCH_SIZES,
    Case,
    Framework,
    MatrixError,
    Timing,
    cold_start_cases,
    native_cases,
    onnxruntime_cases,
    parse_batch_sizes,
    parse_choices,
    parse_threads,
    split_list,
)
from bench.threads import available_cpus, cgroup_cpu_limit


def test_split_list_accepts_repeats_and_commas():
    assert split_list(["1,32", " 256 "]) == ["1", "32", "256"]
    assert split_list("cpu") == ["cpu"]
    assert split_list(None) == []


def test_batch_sizes():
    assert parse_batch_sizes(None) == list(DEFAULT_BATCH_SIZES)
    assert parse_batch_sizes(None, quick=True) == list(QUICK_BATCH_SIZES)
    assert parse_batch_sizes(["8,1", "8"]) == [8, 1]
    with pytest.raises(MatrixError, match="whole numbers from 1 to 1024, got 'big'"):
        parse_batch_sizes(["big"])
    with pytest.raises(MatrixError, match="from 1 to 1024, got 0"):
        parse_batch_sizes(["0"])


def test_threads_default_to_the_cpus_this_process_may_use():
    assert parse_threads(None) == [available_cpus()]
    assert available_cpus() <= len(os.sched_getaffinity(0))
    assert parse_threads(["1,2"]) == [1, 2]
    with pytest.raises(MatrixError, match="thread counts"):
        parse_threads(["-1"])


def test_a_cgroup_quota_caps_the_thread_count(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_an_empty_list_is_an_error_not_all():
    with pytest.raises(MatrixError, match="empty model list; valid models: a, b"):
        parse_choices([","], ("a", "b"), "model")
    with pytest.raises(MatrixError, match="empty model list"):
        parse_choices([""], ("a", "b"), "model")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_timing_refuses_non_finite_or_negative_times(bad):
    with pytest.raises(MatrixError, match="max_time must be a finite"):
        Timing(min_rounds=5, max_time=bad, warmup_s=0.1)


def test_rounds_are_single_calls_unless_a_call_is_very_short():
    t = Timing(min_rounds=5, max_time=0.3, warmup_s=0.0, min_round_s=2e-5)
    assert t.plan(1e-3) == (300, 1)
    assert t.plan(1.0) == (5, 1)  # at least min_rounds
    rounds, calls = t.plan(5e-6)
    assert calls == 4 and rounds == t.max_rounds


def test_unknown_device_lists_valid_ones():
    with pytest.raises(MatrixError, match="unknown device 'tpu'; valid devices: cpu, cuda"):
        parse_choices(["tpu"], ("cpu", "cuda"), "device")


TORCH = Framework(
    "torch", ("cnn", "lstm", "mlp"), ("eager", "compile", "script"), ("eager", "compile")
)
SKL = Framework("sklearn", ("mlp",), ("native",), ("native",))


def test_native_cases_cover_every_mode():
    cases = native_cases(TORCH, ["cnn", "mlp"], ["cpu"], [1, 32], 2)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    by_phase = {
        p: [c for c in cases if c.phase == p] for p in ("compile", "inference", "train_step")
    }
    assert len(by_phase["compile"]) == len(by_phase["inference"]) == 3 * 2 * 2
    assert {c.runtime for c in by_phase["train_step"]} == {"eager", "compile"}
    assert "torch-cnn-compile-inference-cpu-b32-t2" in ids
    assert [c.id for c in cases if c.phase == "peak"] == ["torch-gemm-eager-peak-cpu-b1024-t2"]
    # every case of the worker belongs to its group; none is an onnxruntime case
    assert {c.group for c in cases} == {"torch"}


def test_onnxruntime_runs_every_export_in_a_group_of_its_own():
    cases = onnxruntime_cases([TORCH, SKL], ["cnn", "mlp"], ["cpu"], [1], 2)
    assert [c.id for c in cases] == [
        "torch-cnn-onnxruntime-inference-cpu-b1-t2",
        "torch-mlp-onnxruntime-inference-cpu-b1-t2",
        "sklearn-mlp-onnxruntime-inference-cpu-b1-t2",
    ]
    assert {c.group for c in cases} == {"onnxruntime"}


def test_cold_starts_for_the_default_mode_and_onnxruntime():
    cases = cold_start_cases([TORCH, SKL], ["cnn", "mlp"], ["cpu"], 2)
    assert {(c.framework, c.model, c.runtime) for c in cases} == {
        ("torch", "cnn", "eager"),
        ("torch", "cnn", "onnxruntime"),
        ("torch", "mlp", "eager"),
        ("torch", "mlp", "onnxruntime"),
        ("sklearn", "mlp", "native"),
        ("sklearn", "mlp", "onnxruntime"),
    }
    assert {c.batch_size for c in cases} == {1}


def test_case_id_encodes_every_dimension():
    case = Case("mxnet", "lstm", "onnxruntime", "inference", "cuda", 256, 4)
    assert case.id == "mxnet-lstm-onnxruntime-inference-cuda-b256-t4"
    assert case.as_dict()["case_id"] == case.id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["-f", "caffe"],
            f"unknown framework 'caffe'; valid frameworks: {', '.join(framework_names())}",
        ),
        (["-m", "vgg"], "unknown model 'vgg'; valid models: cnn, lstm, mlp"),
        (["-d", "tpu"], "unknown device 'tpu'; valid devices: cpu, cuda"),
        (["-b", "1,x"], "batch sizes must be whole numbers from 1 to 1024, got 'x'"),
        (["-b", "5000"], "batch sizes must be from 1 to 1024, got 5000"),
        (["-t", "0"], "thread counts must be from 1 to"),
        (["--case-timeout", "0"], "--case-timeout must be a positive number"),
        (["--case-timeout", "nan"], "--case-timeout must be a positive number"),
        (["--max-time", "inf"], "--max-time must be a positive number"),
        (["--max-time", "nan"], "--max-time must be a positive number"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--cold-starts", "-1"], "--cold-starts must be 0 or more"),
        (["--min-effect", "1.5"], "--min-effect must be a fraction"),
        (["-f", ""], "empty framework list"),
        (["-m", ","], "empty model list"),
        (["-f", "sklearn", "-m", "cnn"], "none of the chosen frameworks has any"),
    ],
)
def test_bad_bench_options_fail_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "reports"
    code = main(["bench", *argv, "--out", str(out), "--artifacts", str(tmp_path / "a")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "a").exists()


def test_a_process_runs_its_cases_from_the_least_work_per_call_to_the_most(tmp_path):
    """The worker's order (bench/suites/conftest.py): the reference model's batch sizes
    from small to large, the sizes smaller than it right after its batch-1 cases (before
    any large call), the larger sizes last; a large call slows MXNet's later small ones."""
    import subprocess
    import sys

    suites = Path(__file__).resolve().parents[1] / "bench" / "suites"
    cmd = [
        sys.executable, "-m", "pytest", str(suites / "bench_models.py"),
        "-c", str(suites / "pytest.ini"), "--collect-only", "-q", "-p", "no:cacheprovider",
        "--xf-group", "clock", "--xf-models", "mlp@x64,mlp,mlp@x0.0625",
        "--xf-batch-sizes", "256,1,32", "--xf-threads", "1", "--xf-phases", "inference",
        "--xf-timing", "5,0.1,0.01,0.001", "--xf-artifacts", str(tmp_path),
        "--xf-results", str(tmp_path / "r.jsonl"), "--xf-process", "2",
    ]  # fmt: skip
    env = {**os.environ, "XFBENCH_ADAPTERS": "clock=bench.adapters.clock_adapter:ClockAdapter"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=True)
    ids = [line.split("[", 1)[1] for line in out.stdout.splitlines() if "::" in line]
    order = [(i.split("-")[1], i.split("-")[-2]) for i in ids]  # (model, batch)
    firsts = list(dict.fromkeys(order))
    assert firsts == [
        ("mlp", "b1"), ("mlp@x0.0625", "b1"), ("mlp", "b32"), ("mlp", "b256"), ("mlp@x64", "b1"),
    ], ids  # fmt: skip


def test_thread_counts_for_other_machines_are_not_bounded_by_this_one():
    """A fleet's head node may have fewer CPUs than the machines it sends -t 64 to."""
    from bench.matrix import MatrixError, available_cpus, parse_threads

    many = str(4 * available_cpus() + 1)
    with pytest.raises(MatrixError, match="thread counts must be from 1 to"):
        parse_threads([many])
    assert parse_threads([many], here=False) == [int(many)]
    with pytest.raises(MatrixError):
        parse_threads(["0"], here=False)
