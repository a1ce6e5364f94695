"""What each framework is set to on a GPU, checked against the real frameworks on a
machine without one.

The benchmark's workers get TensorFlow's memory growth through their environment
(``worker_env``, framework-free). Each adapter applies its GPU settings when it places a
model on a GPU; here those functions are called directly, and the frameworks' own flags
are read back (and restored, since the settings are process-wide). MXNet's check that
its kernels run on the card meets a real ``MXNetError``: this machine's CPU build
cannot run anything on ``gpu(0)``, which fails the same way a card too new for
mxnet-cu112 does. What needs a GPU to see (cuDNN really autotuning, TensorFlow really
growing its allocation) is for ``tox -e <framework>-gpu``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bench.adapters.base import UnsupportedError
from bench.fingerprint import PERF_ENV
from bench.runner import worker_env
from models.spec import get_spec


def _only(adapter, name: str) -> None:
    if adapter.name != name:
        pytest.skip(f"{name}'s GPU settings; run in the {name} environment")


# -- the worker's environment (no framework) -----------------------------------------------
def test_gpu_workers_let_tensorflow_grow_its_gpu_memory(monkeypatch):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    env = worker_env(2, ["cpu", "cuda"])
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert env["NVIDIA_TF32_OVERRIDE"] == "0" and env["MXNET_CUDA_ALLOW_TENSOR_CORE"] == "0"
    assert env["OMP_NUM_THREADS"] == "2"
    # Recorded with every worker and in the run's fingerprint.
    assert "TF_FORCE_GPU_ALLOW_GROWTH" in PERF_ENV


def test_gpu_workers_override_a_contrary_setting(monkeypatch):
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    assert worker_env(1, ["cuda"])["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_cpu_workers_get_no_gpu_settings(monkeypatch):
    for var in ("TF_FORCE_GPU_ALLOW_GROWTH", "NVIDIA_TF32_OVERRIDE"):
        monkeypatch.delenv(var, raising=False)
    env = worker_env(2, ["cpu"])
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in env and "NVIDIA_TF32_OVERRIDE" not in env


# -- torch -----------------------------------------------------------------------------------
@pytest.fixture
def torch_flags(adapter):
    """torch's process-wide backend flags, restored after the test: the legacy cuDNN
    flag first, since setting it resets the new per-operation ones."""
    _only(adapter, "torch")
    import torch

    b = torch.backends
    saved = (
        b.cudnn.benchmark,
        b.cudnn.allow_tf32,
        b.cudnn.conv.fp32_precision,
        b.cudnn.rnn.fp32_precision,
        b.cuda.matmul.fp32_precision,
    )
    yield b
    b.cudnn.allow_tf32 = saved[1]
    b.cudnn.benchmark = saved[0]
    b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision = saved[2], saved[3]
    b.cuda.matmul.fp32_precision = saved[4]
    assert (
        b.cudnn.benchmark,
        b.cudnn.allow_tf32,
        b.cudnn.conv.fp32_precision,
        b.cudnn.rnn.fp32_precision,
        b.cuda.matmul.fp32_precision,
    ) == saved


def test_torch_autotunes_convolutions_in_strict_float32(adapter, torch_flags):
    import torch

    from bench.adapters.torch_adapter import apply_gpu_settings

    b = torch_flags
    before = (b.cudnn.benchmark, b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision)
    adapter.build(get_spec("cnn"), "cpu")
    after = (b.cudnn.benchmark, b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision)
    assert after == before, "a CPU model must leave the GPU flags alone"

    settings = apply_gpu_settings()
    assert b.cudnn.benchmark is True
    precisions = (b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision)
    assert precisions == ("ieee", "ieee") and b.cuda.matmul.fp32_precision == "ieee"
    assert settings == {
        "torch.backends.cudnn.benchmark": True,
        "torch.backends.cudnn.conv.fp32_precision": "ieee",
        "torch.backends.cudnn.rnn.fp32_precision": "ieee",
        "torch.backends.cuda.matmul.fp32_precision": "ieee",
    }
    # The legacy flags agree with the new ones, so torch can still read them (it
    # refuses once they disagree) and says TF32 is off there too.
    assert b.cudnn.allow_tf32 is False and b.cuda.matmul.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    assert apply_gpu_settings() == settings  # idempotent


def test_torch_exports_after_the_gpu_settings(adapter, torch_flags, tmp_path):
    """torch.export (the ONNX exporter's first step) reads the legacy cuDNN flag; with
    only the new flags set, torch 2.13 raises there ("a mix of the legacy and new APIs")."""
    import onnx

    from bench.adapters.torch_adapter import apply_gpu_settings

    apply_gpu_settings()
    spec = get_spec("mlp")
    model = adapter.build(spec, "cpu")
    adapter.set_weights(model, spec.init_weights(0))
    adapter.export_onnx(model, spec, tmp_path / "model.onnx")
    onnx.checker.check_model(str(tmp_path / "model.onnx"))


# -- TensorFlow ------------------------------------------------------------------------------
_TF_BEFORE_RUNTIME = textwrap.dedent(
    """
    import json, sys
    from bench.adapters import get_adapter
    from bench.adapters.tensorflow_adapter import allow_memory_growth
    from models.spec import get_spec

    import numpy as np

    adapter = get_adapter("tensorflow")
    adapter.import_framework()
    devices = adapter.devices()  # lists the GPUs and turns their memory growth on
    adapter.set_threads(1)  # refused once the runtime has started: it has not
    spec = get_spec("mlp")
    model = adapter.build(spec)
    adapter.set_weights(model, spec.init_weights(0))
    adapter.predict(model, np.zeros((2, *spec.input_shape), np.float32))  # runtime started
    import tensorflow as tf
    # Asked again with the runtime running: what is in effect is accepted.
    again = allow_memory_growth(tf.config.list_physical_devices("GPU"))
    with open(sys.argv[1], "w") as f:
        json.dump({"devices": devices, "again": again}, f)
    """
)


def test_tensorflow_memory_growth_comes_before_its_runtime(adapter, tmp_path):
    """In a fresh worker-like process: the adapter's first look at the devices (where
    GPUs get memory growth) leaves the runtime unstarted, so the thread pools can
    still be sized, and the path runs cleanly with the workers' GPU environment."""
    _only(adapter, "tensorflow")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", _TF_BEFORE_RUNTIME, str(out)],
        env=worker_env(1, ["cpu", "cuda"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["devices"][0] == "cpu"
    assert all(result["again"].values())  # {} without a GPU


def test_tensorflow_runs_strict_float32_on_gpus(adapter):
    _only(adapter, "tensorflow")
    from bench.adapters.tensorflow_adapter import apply_gpu_settings
    from models import keras_models

    tf = keras_models.import_tensorflow()
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        adapter.build(get_spec("mlp"), "cpu")
        assert tf.config.experimental.tensor_float_32_execution_enabled() == before
        settings = apply_gpu_settings()
        assert tf.config.experimental.tensor_float_32_execution_enabled() is False
        assert settings["tf.config.experimental.tensor_float_32_execution_enabled"] is False
        gpus = tf.config.list_physical_devices("GPU")
        assert settings["memory_growth"] == {g.name: True for g in gpus}
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


# -- JAX -------------------------------------------------------------------------------------
def test_jax_default_precision_is_highest_for_gpu_models(adapter):
    _only(adapter, "jax")
    import jax
    import optax
    from flax import nnx

    from bench.adapters.jax_adapter import apply_gpu_settings

    before = jax.config.jax_default_matmul_precision
    try:
        spec = get_spec("cnn")
        model = adapter.build(spec, "cpu")
        assert jax.config.jax_default_matmul_precision == before, "CPU models leave it alone"
        assert apply_gpu_settings() == {"jax_default_matmul_precision": "highest"}
        assert jax.config.jax_default_matmul_precision == "highest"

        # Every product and convolution of the forward pass and its gradient is traced
        # at the highest precision (what a GPU then computes in full float32).
        adapter.set_weights(model, spec.init_weights(0))
        x = np.zeros((2, *spec.input_shape), np.float32)
        y = np.zeros(2, np.int32)

        def loss(params, x, y):
            logits = nnx.merge(model.graphdef, params)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        text = jax.jit(jax.value_and_grad(loss)).lower(model.params, x, y).as_text()
        ops = [line for line in text.splitlines() if "dot_general" in line or "convolution" in line]
        assert ops and all("HIGHEST" in line for line in ops), ops
        assert adapter.predict(model, x).shape == (2, 10)
    finally:
        jax.config.update("jax_default_matmul_precision", before)


# -- MXNet -----------------------------------------------------------------------------------
#: MXNet's error on a GPU its build has no kernels for, as MXNet 1.9 formats it (the
#: failure reported by mxnet 1.9.1 users, apache/mxnet#21166) ...
NO_KERNEL_1_9 = (
    "Traceback (most recent call last):\n"
    '  File "../include/mxnet/./../../src/operator/mxnet_op.h", line 1154\n'
    "MXNetError: Check failed: err == cudaSuccess (209 vs. 0) : mxnet_generic_kernel "
    "ErrStr:no kernel image is available for execution on the device"
)
#: ... and as earlier releases did (apache/mxnet#16527), timestamp and stack trace included.
NO_KERNEL_OLD = (
    "[11:41:41] src/operator/contrib/../mxnet_op.h:794: Check failed: err == cudaSuccess "
    "(48 vs. 0) : Name: mxnet_generic_kernel ErrStr:no kernel image is available for "
    "execution on the device\nStack trace:\n"
    "  [bt] (0) /site-packages/mxnet/libmxnet.so(+0x52f66b) [0x7f023876466b]\n"
    "  [bt] (1) /site-packages/mxnet/libmxnet.so(+0x32ca2fc) [0x7f023b4ff2fc]"
)


@pytest.mark.parametrize("message", [NO_KERNEL_1_9, NO_KERNEL_OLD], ids=["1.9", "older"])
def test_mxnet_names_the_card_the_build_and_the_other_frameworks(adapter, message):
    _only(adapter, "mxnet")
    import mxnet as mx

    from bench.adapters.mxnet_adapter import gpu_unsupported_reason

    reason = gpu_unsupported_reason(mx.base.MXNetError(message), 0, "9.0", "mxnet-cu112 1.9.1")
    assert reason.startswith("MXNet cannot run on GPU 0 (compute capability 9.0)")
    assert "mxnet-cu112 1.9.1 (CUDA 11.2)" in reason and "8.6 at most" in reason
    assert "no kernel image is available for execution on the device" in reason
    assert "other frameworks still run on this GPU" in reason
    # One readable line: the cold start keeps only an error's first line, summaries 500
    # characters; MXNet's traceback, stack trace and log prefix are left out.
    assert "\n" not in reason and len(reason) <= 500
    assert not any(s in reason for s in ("Traceback", "[bt]", "[11:41:41]", "MXNetError"))

    # A card the build compiles for: the failure is reported, not blamed on the card.
    older = gpu_unsupported_reason(mx.base.MXNetError(message), 0, "8.0", "mxnet-cu112 1.9.1")
    assert "older than this GPU" not in older and "compute capability 8.0" in older
    unknown = gpu_unsupported_reason(
        mx.base.MXNetError(message), 1, "unknown: no libcuda.so", "mxnet-cu112 1.9.1"
    )
    assert "GPU 1 (compute capability unknown: no libcuda.so)" in unknown
    assert "older than this GPU" not in unknown


def test_mxnet_gpu_that_cannot_run_kernels_is_unsupported(adapter, monkeypatch):
    """The real check against a real failure: this CPU build's ``gpu(0)`` refuses to
    run the probe's first op with an MXNetError, as a too-new card does."""
    _only(adapter, "mxnet")
    from bench.adapters import mxnet_adapter

    monkeypatch.setattr(mxnet_adapter, "_gpu_checks", {})  # a fresh process's state
    with pytest.raises(UnsupportedError) as first:
        mxnet_adapter.check_gpu(0)
    reason = str(first.value)
    assert reason.startswith("MXNet cannot run on GPU 0 (compute capability ")
    assert "is not implemented for GPU" in reason  # MXNet's own words
    assert "a build without CUDA" in reason and "tox -e mxnet-gpu" in reason
    assert "\n" not in reason and len(reason) <= 500
    # Once per process: later models get the same answer without another try.
    assert mxnet_adapter._gpu_checks[0][0] == reason
    with pytest.raises(UnsupportedError, match="MXNet cannot run on GPU 0"):
        mxnet_adapter.check_gpu(0)
    if "cuda" not in adapter.devices():  # the CPU build lists no GPU to build on
        with pytest.raises(ValueError, match="not available to MXNet"):
            adapter.build(get_spec("mlp"), "cuda")
