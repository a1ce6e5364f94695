"""A framework whose calls cost a known time: the harness's own timing is tested with it.

Not registered as an entry point (it is no framework): tests add it through
``XFBENCH_ADAPTERS=clock=bench.adapters.clock_adapter:ClockAdapter``. A call at batch
size ``b`` costs ``b * SECONDS_PER_SAMPLE`` of busy work (batch 5: 50 us, 100: 1 ms,
1000: 10 ms), so the benchmark must report that time, per call, within a small error:

* mode ``sync`` works inside the call, like a CPU framework;
* mode ``async`` returns at once and does the work in :meth:`ClockAdapter.wait`, like a
  GPU kernel launch or JAX's asynchronous dispatch: a harness that forgot to wait would
  report almost nothing.

Busy waiting on ``time.perf_counter`` (not sleeping) keeps the cost exact to well below
a microsecond and occupies the CPU as real work does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.adapters.base import Adapter, TrainStep, array_device
from models.spec import ModelSpec, TrainSpec

SECONDS_PER_SAMPLE = 1e-5


def spin(seconds: float, start: float | None = None) -> None:
    """Busy-wait until ``seconds`` after ``start`` (default: now)."""
    end = (time.perf_counter() if start is None else start) + seconds
    while time.perf_counter() < end:
        pass


class _Pending:
    """An "asynchronous" result: done once the clock passes ``deadline``."""

    def __init__(self, deadline: float, value: np.ndarray) -> None:
        self.deadline = deadline
        self.value = value


class ClockAdapter(Adapter):
    name = "clock"
    package = "numpy"
    exporter = "none (the known-clock test adapter exports nothing)"
    distributions: ClassVar[tuple[str, ...]] = ("numpy",)
    models: ClassVar[tuple[str, ...]] = ("mlp",)
    modes: ClassVar[tuple[str, ...]] = ("sync", "async")
    train_modes: ClassVar[tuple[str, ...]] = ("sync",)
    color: ClassVar[str | None] = "#000000"
    mode_notes: ClassVar[Mapping[str, str]] = {
        "sync": "busy work of batch x 10 us inside the call",
        "async": "returns at once; the batch x 10 us of work happen in wait()",
    }

    def build(self, spec: ModelSpec, device: str = "cpu") -> dict[str, Any]:
        if device != "cpu":
            raise ValueError(f"the clock adapter runs on the cpu only, not {device!r}")
        return {"spec": spec, "weights": {}}

    def get_weights(self, model: dict[str, Any]) -> dict[str, np.ndarray]:
        return dict(model["weights"])

    def set_weights(self, model: dict[str, Any], weights: Mapping[str, np.ndarray]) -> None:
        model["weights"] = dict(weights)

    def param_count(self, model: dict[str, Any]) -> int:
        return int(sum(v.size for v in model["weights"].values()))

    def infer(self, model: dict[str, Any], x: Any) -> np.ndarray:
        spin(len(x) * SECONDS_PER_SAMPLE)
        return np.zeros((len(x), 10), np.float32)

    def forward(self, model: dict[str, Any], mode: str) -> Callable[[Any], Any]:
        self.check_mode(mode)
        out = np.zeros((0, 10), np.float32)  # allocated once: the call is the work, only
        if mode == "sync":

            def run(x: Any) -> np.ndarray:
                spin(len(x) * SECONDS_PER_SAMPLE)
                return out

            return run
        return lambda x: _Pending(time.perf_counter() + len(x) * SECONDS_PER_SAMPLE, out)

    def wait(self, y: Any) -> None:
        if isinstance(y, _Pending):
            spin(y.deadline - time.perf_counter())

    def output_device(self, y: Any) -> str:
        return array_device(y.value if isinstance(y, _Pending) else y)

    def to_numpy(self, y: Any) -> np.ndarray:
        self.wait(y)
        return y.value if isinstance(y, _Pending) else np.asarray(y)

    def make_train_step(self, model: Any, train: TrainSpec, mode: str | None = None) -> TrainStep:
        self.check_mode(mode or self.train_modes[0], training=True)

        def step(x: np.ndarray, y: np.ndarray) -> float:
            spin(len(x) * SECONDS_PER_SAMPLE)
            return 0.0

        return step

    def export_onnx(self, model: Any, spec: ModelSpec, path: Path) -> None:
        raise NotImplementedError("the known-clock test adapter exports nothing")
