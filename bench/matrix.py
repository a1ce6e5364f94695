"""The benchmark matrix: which cases a run times, in which worker process, and the
validation of its options.

A case is one framework x model x runtime x phase x device x batch size x thread count.
Its id encodes every dimension, so ``-k`` selects any slice::

    torch-cnn-compile-inference-cpu-b32-t2
    mxnet-lstm-onnxruntime-inference-cpu-b1-t1
    tensorflow-mlp-xla-train_step-cpu-b256-t2

Runtimes are the execution modes each adapter declares (torch ``eager``, ``compile``,
``script``; TensorFlow ``function``, ``xla``, ``eager``; ...) and ``onnxruntime``, that
framework's own ONNX export run by ONNX Runtime. Phases:

* ``compile``: the first call of a mode at a batch size in a timing process,
  compilation or tracing included (one sample per process);
* ``inference``, ``train_step`` (forward, loss, backward, update; training modes only);
* ``peak``: model ``gemm``, an n x n float32 matrix product in the framework's own
  kernel, the run's measure of the machine's peak (``batch_size`` holds n);
* ``cold_start``: a fresh process importing the framework, loading one model and
  calling it once (``bench/coldstart.py``), for each framework's default mode and
  ONNX Runtime.

Cases are grouped by the process that runs them: a framework's native modes run in
that framework's environment; every ``onnxruntime`` case runs in ONNX Runtime's own
environment (``ORT``), never beside a native framework's thread pools.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.threads import available_cpus
from models.spec import MODEL_NAMES, arch_of, is_size

DEVICES = ("cpu", "cuda")
#: The runtime name of ONNX Runtime cases, and the worker group that runs them all.
ORT = "onnxruntime"
PHASES = ("compile", "inference", "train_step", "peak", "cold_start")
#: Matrix size of the float32 GEMM that measures each device's peak (the ``peak`` phase):
#: large enough to saturate the device, short enough to time in a second.
GEMM_SIZE = {"cpu": 1024, "cuda": 8192}
DEFAULT_BATCH_SIZES = (1, 32, 256)
QUICK_BATCH_SIZES = (1, 32)
#: The largest batch the digits training split (1,438 images) can fill.
MAX_BATCH_SIZE = 1024


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

    @property
    def group(self) -> str:
        """The worker group (and environment) that runs this case."""
        return ORT if self.runtime == ORT else self.framework

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "case_id": self.id}


@dataclass(frozen=True)
class Framework:
    """What the matrix needs of an adapter, read from its class (no framework import)."""

    name: str
    models: tuple[str, ...]
    modes: tuple[str, ...]
    train_modes: tuple[str, ...]

    @classmethod
    def of(cls, name: str) -> Framework:
        from bench.adapters import adapter_class

        a = adapter_class(name)
        return cls(name, tuple(a.models), tuple(a.modes), tuple(a.train_modes))


@dataclass(frozen=True)
class Timing:
    """How long each case is timed in each process.

    A round is one call wherever a call takes at least ``min_round_s``, so that p99 is
    a per-call statistic; faster calls are grouped so a round lasts that long (timer
    resolution and the loop's own overhead stay below 1% of a round), and the round's
    time is divided by the calls in it.
    """

    min_rounds: int
    max_time: float  # seconds each case is timed for in each process, about
    warmup_s: float  # untimed calls for about this long, after the first call
    min_round_s: float = 2e-5
    max_rounds: int = 5000

    def __post_init__(self) -> None:
        import math

        for name in ("max_time", "warmup_s", "min_round_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise MatrixError(f"{name} must be a finite, non-negative number, got {value}")
        if self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise MatrixError(f"need 1 <= min_rounds <= max_rounds, got {self}")

    def plan(self, call_s: float) -> tuple[int, int]:
        """(rounds, calls per round) for a call that takes ``call_s`` seconds."""
        import math

        calls = 1 if call_s >= self.min_round_s else math.ceil(self.min_round_s / max(call_s, 1e-9))
        rounds = int(self.max_time / max(call_s * calls, 1e-9))
        return max(self.min_rounds, min(self.max_rounds, rounds)), calls


#: The full matrix measures every case in 3 processes of 0.2 s each (15 rounds at
#: least): 0.6 s in all where one process of 1 s used to be, traded for the spread
#: between processes, which is what a re-run shows, and kept within the time budget
#: (bench-cpu within 10 minutes warm on a 2-core machine).
FULL_TIMING = Timing(min_rounds=15, max_time=0.2, warmup_s=0.05)
QUICK_TIMING = Timing(min_rounds=5, max_time=0.1, warmup_s=0.02)
DEFAULT_REPEAT = {"full": 3, "quick": 1}
DEFAULT_COLD_STARTS = {"full": 5, "quick": 2}


def split_list(values: list[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` or ``"a,b,c"`` -> ``["a", "b", "c"]``; blanks are dropped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_choices(values: list[str] | str | None, valid: tuple[str, ...], what: str) -> list[str]:
    """Validated names; none given means all. A value that names nothing (``-f ''``,
    ``-m ,``) is an error, not "all"."""
    if values is not None and not split_list(values):
        raise MatrixError(f"empty {what} list; valid {what}s: {', '.join(valid)}")
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


#: The most threads asked of machines this process cannot see (a fleet's workers).
MAX_REMOTE_THREADS = 1024


def parse_threads(values: list[str] | str | None, here: bool = True) -> list[int]:
    """Thread counts to sweep; default: the CPUs this process may use. ``here``: the
    counts are for this machine, so at most 4x its CPUs; a fleet's remote workers are
    checked on their own machines."""
    cpus = available_cpus()
    high = 4 * cpus if here else MAX_REMOTE_THREADS
    return parse_ints(values, "thread counts", 1, high) or [cpus]


#: The batch size at which the sizes of a model other than its reference size are
#: timed: the scaling report's work axis is the model's size (its FLOPs per sample),
#: and batch 1 keeps the largest sizes within the time budget.
SIZE_BATCH_SIZES = (1,)


def declares(fw: Framework, model: str) -> bool:
    """Whether ``fw`` implements the architecture of model id ``model``."""
    return arch_of(model) in fw.models


def native_cases(
    fw: Framework,
    models: list[str],
    devices: list[str],
    batch_sizes: list[int],
    threads: int,
    sweep: bool = False,
) -> list[Case]:
    """What ``fw``'s own worker times: every mode's compile and inference, every
    training mode's step, and the GEMM, for the reference sizes; for the other sizes
    inference alone at :data:`SIZE_BATCH_SIZES`, in the default mode (every mode with
    ``sweep``)."""
    sized = [m for m in models if declares(fw, m) and is_size(m)]
    models = [m for m in models if declares(fw, m) and not is_size(m)]
    cases = []
    for phase, modes in (
        ("compile", fw.modes),
        ("inference", fw.modes),
        ("train_step", fw.train_modes),
    ):
        cases += [
            Case(fw.name, model, mode, phase, device, b, threads)
            for model in models
            for mode in modes
            for device in devices
            for b in batch_sizes
        ]
    cases += [
        Case(fw.name, model, mode, "inference", device, b, threads)
        for model in sized
        for mode in (fw.modes if sweep else fw.modes[:1])
        for device in devices
        for b in SIZE_BATCH_SIZES
    ]
    cases += [Case(fw.name, "gemm", fw.modes[0], "peak", d, GEMM_SIZE[d], threads) for d in devices]
    return cases


def onnxruntime_cases(
    fws: list[Framework],
    models: list[str],
    devices: list[str],
    batch_sizes: list[int],
    threads: int,
) -> list[Case]:
    """What the ONNX Runtime worker times: every framework's export of every model (the
    sizes other than the reference one at :data:`SIZE_BATCH_SIZES`)."""
    return [
        Case(fw.name, model, ORT, "inference", device, b, threads)
        for fw in fws
        for model in models
        if declares(fw, model)
        for device in devices
        for b in (SIZE_BATCH_SIZES if is_size(model) else batch_sizes)
    ]


def cold_start_cases(
    fws: list[Framework], models: list[str], devices: list[str], threads: int
) -> list[Case]:
    """One cold start per framework's default mode and per export, of every model at its
    reference size."""
    return [
        Case(fw.name, model, runtime, "cold_start", device, 1, threads)
        for fw in fws
        for model in models
        if declares(fw, model) and not is_size(model)
        for runtime in (fw.modes[0], ORT)
        for device in devices
    ]


def validate_models(models: list[str] | str | None) -> list[str]:
    """Model ids: an architecture (``mlp``), or one of its sizes (``mlp@x16``); none given
    means every architecture. A size that does not exist names those that do."""
    from models.spec import get_spec

    if models is not None and not split_list(models):
        raise MatrixError(f"empty model list; valid models: {', '.join(MODEL_NAMES)}")
    chosen = split_list(models) or list(MODEL_NAMES)
    out = []
    for m in chosen:
        try:
            out.append(get_spec(m).name)  # mlp@x1 is mlp
        except ValueError as exc:
            raise MatrixError(str(exc)) from None
    return list(dict.fromkeys(out))


def with_sizes(models: list[str], sweep: bool) -> list[str]:
    """``models`` followed by the sizes a run adds to each architecture chosen at its
    reference size (``--sweep``: every size; else its smallest and largest). Sizes named
    explicitly are kept; none are added where only sizes were named."""
    from models.spec import sizes_of

    extra = [s for m in models if not is_size(m) for s in sizes_of(m, sweep)]
    return list(dict.fromkeys([*models, *extra]))
