"""Option parsing and case generation of the benchmark matrix."""

from __future__ import annotations

import os

import pytest

from bench.adapters import framework_names
from bench.cli import main
from bench.matrix import (
    DEFAULT_BATCH_SIZES,
    QUICK_BATCH_SIZES,
    Case,
    MatrixError,
    generate_cases,
    parse_batch_sizes,
    parse_choices,
    parse_threads,
    split_list,
)


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


def test_threads_default_to_every_core():
    assert parse_threads(None) == [os.cpu_count()]
    assert parse_threads(["1,2"]) == [1, 2]
    with pytest.raises(MatrixError, match="thread counts"):
        parse_threads(["-1"])


def test_unknown_device_lists_valid_ones():
    with pytest.raises(MatrixError, match="unknown device 'tpu'; valid devices: cpu, cuda"):
        parse_choices(["tpu"], ("cpu", "cuda"), "device")


def test_case_generation_covers_the_matrix():
    cases = generate_cases(
        ["torch", "tensorflow"], ["cnn", "mlp"], ["cpu"], [1, 32], [2], eager={"tensorflow": True}
    )
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    # cold start: 2 frameworks x 2 models x (native, onnxruntime), batch 1 only
    cold = [c for c in cases if c.phase == "cold_start"]
    assert len(cold) == 8 and {c.batch_size for c in cold} == {1}
    # inference: torch 2 runtimes, tensorflow 3 (eager differs), x 2 models x 2 batches
    assert len([c for c in cases if c.phase == "inference"]) == (2 + 3) * 2 * 2
    # training: native only
    train = [c for c in cases if c.phase == "train_step"]
    assert {c.runtime for c in train} == {"native"} and len(train) == 2 * 2 * 2
    # cold starts come first: they must be the first load of each model in the worker
    assert [c.phase for c in cases[: len(cold)]] == ["cold_start"] * len(cold)
    assert "tensorflow-mlp-native-eager-inference-cpu-b32-t2" in ids
    # one GEMM per framework, device and thread count measures the peak
    peak = [c for c in cases if c.phase == "peak"]
    assert [c.id for c in peak] == [
        "torch-gemm-native-peak-cpu-b1024-t2",
        "tensorflow-gemm-native-peak-cpu-b1024-t2",
    ]


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
        (["--case-timeout", "0"], "--case-timeout must be positive"),
    ],
)
def test_bad_bench_options_fail_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "reports"
    code = main(["bench", *argv, "--out", str(out), "--artifacts", str(tmp_path / "a")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "a").exists()
