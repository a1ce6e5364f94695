"""What every adapter says about devices and versions, checked against its real
framework on this (CPU) machine: where a result lives is read off the result itself,
never assumed (the conformance kit checks a CPU result; this checks that another
device is not called the CPU), and a GPU build reads the same versions as the CPU build, so the two
share their trained models instead of rebuilding them back and forth."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from bench.adapters.base import array_device
from bench.adapters.tensorflow_adapter import tf_device_kind


def _other_device_result(framework: str):
    """A real result that lives on a device other than the CPU's main memory, made with
    the framework itself; None where the framework has no such device without a GPU."""
    if framework == "torch":
        import torch

        return torch.empty(2, 10, device="meta")  # shapes only, on no device at all
    if framework == "mxnet":
        import mxnet as mx

        return mx.nd.zeros((2, 10), ctx=mx.cpu_pinned())  # page-locked host memory
    if framework in ("sklearn", "clock"):
        return [[0.0] * 10]  # not an array at all
    return None


def test_output_device_never_says_cpu_for_another_device(adapter):
    y = _other_device_result(adapter.name)
    if y is None:
        pytest.skip(f"{adapter.name} has no non-CPU device without a GPU")
    try:
        where = adapter.output_device(y)
    except (TypeError, ValueError):  # an honest "cannot tell" is not a lie either
        return
    assert where != "cpu", f"{adapter.name} says a {type(y).__name__} on {where!r} is on the CPU"


def test_versions_are_canonical_and_builds_are_exact(adapter):
    versions, builds = adapter.versions(), adapter.builds()
    assert set(versions) == set(builds) == set(adapter.distributions)
    for dist in adapter.distributions:
        assert "+" not in versions[dist], (dist, versions[dist])
        assert builds[dist].split()[-1].split("+")[0] == versions[dist]
    main = adapter.distributions[0]
    installed = importlib.metadata.version(main)
    assert builds[main] == installed and versions[main] == installed.split("+")[0]


def test_tensorflow_device_strings():
    assert tf_device_kind("/job:localhost/replica:0/task:0/device:GPU:0") == "cuda"
    assert tf_device_kind("/job:localhost/replica:0/task:0/device:CPU:0") == "cpu"
    assert tf_device_kind("/job:worker/replica:0/task:1/device:TPU:3") == "tpu"
    with pytest.raises(ValueError, match="not a TensorFlow device"):
        tf_device_kind("")


def test_array_device_refuses_to_guess():
    assert array_device(np.zeros(3, np.float32)) == "cpu"
    assert array_device(np.float32(1.0)) == "cpu"
    with pytest.raises(TypeError, match="cannot tell"):
        array_device([1.0, 2.0])


def test_cold_start_on_a_device_the_build_cannot_use_is_unsupported(adapter, tmp_path):
    """A GPU run's cold starts include frameworks without a GPU build (sklearn) and
    builds that see no GPU: their rows say so, they are not errors."""
    import json
    import subprocess
    import sys

    if "cuda" in adapter.devices():
        pytest.skip(f"{adapter.name} sees a GPU here")
    result = tmp_path / "cold.json"
    args = [f"--framework={adapter.name}", f"--model={adapter.models[0]}"]
    args += [f"--runtime={adapter.modes[0]}", "--device=cuda", "--threads=1"]
    args += [f"--artifacts={tmp_path}", f"--result-file={result}"]
    # A fresh process, as the benchmark starts it (thread pools are sized before import).
    done = subprocess.run([sys.executable, "-m", "bench.coldstart", *args], capture_output=True)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    got = json.loads(result.read_text())
    assert got["status"] == "unsupported", got
    assert "cannot use 'cuda'" in got["reason"]
    # Expected, so its reason is enough: no traceback on the console (seen on a GPU
    # machine, once per unsupported cold start).
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
