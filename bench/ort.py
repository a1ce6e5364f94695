"""ONNX Runtime sessions as the benchmark uses them.

On the CPU a session runs with the same intra-op thread count as the native
frameworks. On CUDA it must really run on the GPU: ONNX Runtime quietly falls back to
the CPU provider when CUDA cannot be loaded (and onnxruntime-gpu lists CUDA even on a
host without a GPU), so the providers the session actually got are checked. Inputs
and outputs are bound on the device (IO binding), so, as for the native frameworks,
the timed call does not include host-device copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.adapters.base import UnsupportedError

#: ONNX Runtime's intra-op threads spin between runs (its default, kept: the lowest
#: latency). Safe only because ONNX Runtime has a process of its own: spinning beside a
#: native framework's pool in one process is a known source of large slowdowns
#: (onnxruntime issue 13808). Recorded with every run.
SESSION_CONFIG = {"session.intra_op.allow_spinning": "1"}


def ort_info() -> tuple[dict[str, str], str, dict[str, str]]:
    """What an ONNX Runtime worker records: versions, its "exporter" label, settings."""
    import importlib.metadata

    versions = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions, "(runs every framework's export)", dict(SESSION_CONFIG)


class ProviderFallbackError(RuntimeError):
    """A session asked for CUDA and silently got the CPU."""


def make_session(path: Path, device: str, threads: int) -> Any:
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no ONNX export; build it with `tox -e zoo`")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UnsupportedError(
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                "(the bench-gpu environments install onnxruntime-gpu)"
            )
        # TF32 off: every runtime is timed in strict float32.
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0})]
    elif device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ValueError(f"unknown device {device!r}; valid devices: cpu, cuda")
    session = ort.InferenceSession(str(path), options, providers=providers)
    expected = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if session.get_providers()[0] != expected:
        raise ProviderFallbackError(
            f"{path}: asked for {expected}, the session uses {session.get_providers()}; "
            "the case would not have run where it claims"
        )
    return session


class OrtRunner:
    """A zero-argument callable running ``session`` on ``x``, inputs pre-placed."""

    def __init__(self, session: Any, x: np.ndarray, device: str) -> None:
        import onnxruntime as ort

        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.device = device
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        if device == "cuda":
            self._x_dev = ort.OrtValue.ortvalue_from_numpy(self.x, "cuda", 0)
            self.binding = session.io_binding()
            self.binding.bind_ortvalue_input(self.input_name, self._x_dev)
            self.binding.bind_output(self.output_name, "cuda", 0)

    def __call__(self) -> Any:
        if self.device == "cuda":
            self.session.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
            return self.binding.get_outputs()[0]
        return self.session.run([self.output_name], {self.input_name: self.x})[0]

    def to_numpy(self, y: Any) -> np.ndarray:
        return y.numpy() if hasattr(y, "numpy") else np.asarray(y)
