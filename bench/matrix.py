"""The benchmark matrix: which cases a run times, and the validation of its options.

A case is one framework x model x runtime x phase x device x batch size x thread count.
Its id encodes every dimension, so ``-k`` selects any slice::

    torch-cnn-native-inference-cpu-b32-t2
    mxnet-lstm-onnxruntime-inference-cpu-b1-t1
    tensorflow-mlp-native-train_step-cpu-b256-t2

Runtimes: ``native`` (the framework in its best inference mode), ``native-eager``
(op-by-op, only for frameworks where that differs: TensorFlow without ``tf.function``,
MXNet without ``hybridize``), and ``onnxruntime`` (that framework's own ONNX export).
Phases: ``inference``, ``train_step`` (native only: forward, loss, backward, update),
``cold_start`` (model load and the first call, once per process; batch 1) and ``peak``
(model ``gemm``: an n x n float32 matrix product in the framework's own kernel, the run's
measure of the machine's peak; ``batch_size`` holds n).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from models.spec import MODEL_NAMES

DEVICES = ("cpu", "cuda")
RUNTIMES = ("native", "native-eager", "onnxruntime")
PHASES = ("cold_start", "inference", "train_step", "peak")
#: Matrix size of the float32 GEMM that measures each device's peak (the ``peak`` phase):
#: large enough to saturate the device, short enough to time in a second.
GEMM_SIZE = {"cpu": 1024, "cuda": 8192}
DEFAULT_BATCH_SIZES = (1, 32, 256)
QUICK_BATCH_SIZES = (1, 32)
#: The largest batch the digits training split (1,438 images) can fill.
MAX_BATCH_SIZE = 1024


def thread_env(threads: int) -> dict[str, str]:
    """The variables OpenMP, MKL and OpenBLAS read when a framework loads: a worker
    process gets them before any framework is imported."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


class MatrixError(ValueError):
    """An option value outside what the matrix accepts; the message lists the valid ones."""


@dataclass(frozen=True, order=True)
class Case:
    framework: str
    model: str
    runtime: str
    phase: str
    device: str
    batch_size: int
    threads: int

    @property
    def id(self) -> str:
        return (
            f"{self.framework}-{self.model}-{self.runtime}-{self.phase}-{self.device}"
            f"-b{self.batch_size}-t{self.threads}"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "case_id": self.id}


@dataclass(frozen=True)
class Timing:
    """How long each case is timed (pytest-benchmark options)."""

    min_rounds: int
    max_time: float  # seconds the round count is derived from: the time per case
    warmup_iterations: int

    def pytest_args(self) -> list[str]:
        return [
            f"--benchmark-min-rounds={self.min_rounds}",
            # A round lasts at least 100 us (several calls of the fastest cases, averaged):
            # keeps timer resolution out of the numbers and the raw files small.
            f"--benchmark-min-time={MIN_ROUND_S}",
            f"--benchmark-max-time={self.max_time}",
            "--benchmark-warmup=on",
            f"--benchmark-warmup-iterations={self.warmup_iterations}",
        ]


MIN_ROUND_S = 1e-4
FULL_TIMING = Timing(min_rounds=20, max_time=1.0, warmup_iterations=10)
QUICK_TIMING = Timing(min_rounds=5, max_time=0.1, warmup_iterations=3)


def split_list(values: list[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` or ``"a,b,c"`` -> ``["a", "b", "c"]``."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_choices(values: list[str] | str | None, valid: tuple[str, ...], what: str) -> list[str]:
    chosen = split_list(values) or list(valid)
    for v in chosen:
        if v not in valid:
            raise MatrixError(f"unknown {what} {v!r}; valid {what}s: {', '.join(valid)}")
    return list(dict.fromkeys(chosen))


def parse_ints(values: list[str] | str | None, what: str, low: int, high: int) -> list[int]:
    out = []
    for v in split_list(values):
        try:
            n = int(v)
        except ValueError:
            raise MatrixError(
                f"{what} must be whole numbers from {low} to {high}, got {v!r}"
            ) from None
        if not low <= n <= high:
            raise MatrixError(f"{what} must be from {low} to {high}, got {n}")
        out.append(n)
    return list(dict.fromkeys(out))


def parse_batch_sizes(values: list[str] | str | None, quick: bool = False) -> list[int]:
    chosen = parse_ints(values, "batch sizes", 1, MAX_BATCH_SIZE)
    return chosen or list(QUICK_BATCH_SIZES if quick else DEFAULT_BATCH_SIZES)


def parse_threads(values: list[str] | str | None) -> list[int]:
    """Thread counts to sweep; default: every core of this machine."""
    cores = os.cpu_count() or 1
    return parse_ints(values, "thread counts", 1, 4 * cores) or [cores]


def generate_cases(
    frameworks: list[str],
    models: list[str],
    devices: list[str],
    batch_sizes: list[int],
    threads: list[int],
    eager: dict[str, bool] | None = None,
    phases: tuple[str, ...] = PHASES,
) -> list[Case]:
    """Every case of the matrix, in the order a worker runs them.

    ``eager[fw]`` says whether ``fw`` has an op-by-op mode distinct from its best one.
    Cold starts come first, so they are the first load of each model in the process.
    """
    eager = eager or {}
    cases = []
    for phase in PHASES:
        if phase not in phases:
            continue
        for fw in frameworks:
            if phase == "peak":
                cases += [
                    Case(fw, "gemm", "native", "peak", d, GEMM_SIZE[d], t)
                    for d in devices
                    for t in threads
                ]
                continue
            runtimes = ["native", *(["native-eager"] if eager.get(fw) else []), "onnxruntime"]
            for model in models:
                for runtime in runtimes:
                    if phase == "train_step" and runtime != "native":
                        continue
                    if phase == "cold_start" and runtime == "native-eager":
                        continue
                    for device in devices:
                        for t in threads:
                            sizes = [1] if phase == "cold_start" else batch_sizes
                            for b in sizes:
                                cases.append(Case(fw, model, runtime, phase, device, b, t))
    return cases


def validate_models(models: list[str] | str | None) -> list[str]:
    return parse_choices(models, MODEL_NAMES, "model")
