"""ONNX Runtime sessions as the benchmark uses them.

On the CPU a session runs with the same intra-op thread count as the native
frameworks. On CUDA it must really run on the GPU, all of it, and ONNX Runtime hides
three ways of not doing so:

* onnxruntime-gpu finds the CUDA and cuDNN libraries its ``[cuda,cudnn]`` extras install
  (nvidia-* wheels) only after ``onnxruntime.preload_dlls()``; without them it quietly
  creates a CPU session, and it lists CUDA even on a host that cannot run it. The
  libraries are loaded once per process (:func:`load_cuda_libraries`), and the providers
  the session actually got are checked.
* Nodes the CUDA provider has no kernel for go to the CPU provider without a word, with
  copies both ways: a mixed run timed as a GPU one. CUDA sessions disable that fallback
  (:data:`DISABLE_CPU_FALLBACK`), so such an export is refused, with the nodes named.
  One exception, by ONNX Runtime's design: the CUDA provider itself leaves small shape
  computations (``Shape`` -> ``Gather`` -> ``Concat`` chains feeding a ``Reshape``) to
  the CPU, where they are cheaper than a kernel launch. Where every node left to the CPU
  is such an operator (:data:`SHAPE_OPS`), the session is used, and the nodes are
  recorded with the case (``cpu_nodes``).
* The Python wrapper retries a failed CUDA session, or a run the provider failed, on the
  CPU alone; CUDA sessions are created with that retry off.

Inputs and outputs are bound on the device (IO binding), so, as for the native
frameworks, the timed call does not include host-device copies.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.adapters.base import UnsupportedError

#: ONNX Runtime's intra-op threads spin between runs (its default, kept: the lowest
#: latency). Safe only because ONNX Runtime has a process of its own: spinning beside a
#: native framework's pool in one process is a known source of large slowdowns
#: (onnxruntime issue 13808). Recorded with every run.
SESSION_CONFIG = {"session.intra_op.allow_spinning": "1"}
#: The session config key (``kOrtSessionOptionsDisableCPUEPFallback`` in ONNX Runtime's
#: onnxruntime_session_options_config_keys.h) that, set to "1", makes creating a session
#: fail where the providers given cannot run every node, instead of handing those nodes
#: to the CPU provider. Set on every CUDA session.
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
#: The key (ONNX Runtime >= 1.31) that makes a session record which provider got each
#: node (``InferenceSession.get_provider_graph_assignment_info``): used only to name the
#: nodes a refused export would have run on the CPU.
RECORD_PLACEMENT = "session.record_ep_graph_assignment_info"

#: Operators that compute shapes (int64 tensors of a few elements): the CUDA provider
#: prefers the CPU for them when they only feed shapes. A CUDA session whose CPU nodes
#: are all of these is still a GPU run.
SHAPE_OPS = frozenset(
    {
        "Shape",
        "Size",
        "Gather",
        "Concat",
        "Unsqueeze",
        "Squeeze",
        "Slice",
        "Cast",
        "Range",
        "ConstantOfShape",
        "Reshape",
        "Expand",
    }
)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: How a CUDA environment is repaired: its extras bring CUDA 13 and cuDNN 9 as wheels,
#: which need an NVIDIA driver for CUDA 13 (``bench/envs.py``: ``DRIVER_FLOOR``).
CUDA_FIX = (
    "recreate the environment with `tox -e onnxruntime-gpu -r --notest` (onnxruntime-gpu's "
    "[cuda,cudnn] extras install CUDA 13 and cuDNN 9 as wheels); the host needs an NVIDIA "
    "driver for CUDA 13 (580.65.06 or newer)"
)


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


def _build() -> str:
    """The ONNX Runtime distribution(s) installed, ``onnxruntime-gpu 1.31.0``."""
    versions, _, _ = ort_info()
    return " and ".join(f"{d} {v}" for d, v in versions.items() if d != "numpy") or "onnxruntime"


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (results keep one line of a reason)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class ProviderFallbackError(RuntimeError):
    """A session asked for CUDA and silently got the CPU."""


def session_options(device: str, threads: int, cpu_fallback: bool = False) -> Any:
    """The options of every benchmark session on ``device``: ``threads`` intra-op
    threads, one inter-op thread, sequential execution, every graph optimization and
    :data:`SESSION_CONFIG`; on CUDA also :data:`DISABLE_CPU_FALLBACK`, unless
    ``cpu_fallback`` (only :func:`make_session`'s diagnosis of a refused export asks for
    it, to find out which nodes the CUDA provider left to the CPU)."""
    import onnxruntime as ort

    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; valid devices: cpu, cuda")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    if device == "cuda" and not cpu_fallback:
        options.add_session_config_entry(DISABLE_CPU_FALLBACK, "1")
    return options


#: What ``onnxruntime.preload_dlls()`` reported in this process (``None``: not called yet).
_PRELOADED: list[str] | None = None


def load_cuda_libraries() -> list[str]:
    """Call ``onnxruntime.preload_dlls()`` (ONNX Runtime >= 1.21) once in this process,
    and return the problems it reported: an empty list where it loaded everything, or
    where this ONNX Runtime has no such function (an older one finds CUDA on the library
    path) or is a CPU build (it then loads nothing).

    The function does not raise where a library is missing: it prints ``Failed to load
    ...`` and returns, and the first CUDA session then quietly runs on the CPU. So what
    it prints (and warns) is captured and read here.
    """
    global _PRELOADED
    if _PRELOADED is not None:
        return _PRELOADED
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        _PRELOADED = []
        return _PRELOADED
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as warned, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        try:
            preload()  # CUDA and cuDNN, from the nvidia-* wheels first, then the system
        except Exception as exc:  # a bad directory argument is its one documented raise
            printed.write(f"Failed to load the CUDA libraries: {_one_line(exc)}\n")
    said = [" ".join(line.split()) for line in printed.getvalue().splitlines()]
    _PRELOADED = [line for line in said if "Failed to load" in line]
    _PRELOADED += [f"warning: {w.message}" for w in warned]
    return _PRELOADED


def require_cuda() -> None:
    """Make this process ready for CUDA sessions, or raise :class:`UnsupportedError`
    saying what is missing and how to get it: the CUDA provider in this build, then its
    libraries (:func:`load_cuda_libraries`). Cheap after the first call."""
    import importlib.metadata

    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        try:
            importlib.metadata.version("onnxruntime-gpu")
            both = importlib.metadata.version("onnxruntime")
        except importlib.metadata.PackageNotFoundError:
            both = None
        clash = (
            f" (onnxruntime {both} is installed beside it and the last one installed "
            "wins the shared `onnxruntime` package)"
            if both
            else ""
        )
        raise UnsupportedError(
            f"{_build()} has no {CUDA}{clash}: CUDA runs need onnxruntime-gpu alone, as the "
            "onnxruntime-gpu environment installs it; recreate that environment with "
            "`tox -e onnxruntime-gpu -r --notest`"
        )
    problems = load_cuda_libraries()
    if problems:
        raise UnsupportedError(
            f"{_build()} cannot load the CUDA libraries its {CUDA} needs: {CUDA_FIX}. "
            f"onnxruntime.preload_dlls() said: {'; '.join(problems)}"
        )


def cpu_op_counts(session: Any) -> Counter[str] | None:
    """How many nodes of each operator ``session`` placed on the CPU provider, where it
    recorded its placement (:data:`RECORD_PLACEMENT`); None where it did not, or where
    this ONNX Runtime cannot tell."""
    try:
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception:  # an older ONNX Runtime, or the placement was not recorded
        return None
    return Counter(n.op_type for s in subgraphs if s.ep_name == CPU for n in s.get_nodes())


def only_shape_ops(ops: Counter[str] | None) -> bool:
    """Whether nodes left to the CPU (:func:`cpu_op_counts`) are all shape computations,
    so the session is still a GPU run; False where there are none or they are unknown."""
    return bool(ops) and set(ops) <= SHAPE_OPS


def cpu_nodes(session: Any) -> str:
    """The nodes ``session`` placed on the CPU provider, by operator (``Gather x2,
    Concat x1``); ``""`` where there are none or the placement is unknown."""
    ops = cpu_op_counts(session) or Counter()
    return ", ".join(f"{op} x{n}" for op, n in ops.most_common())


def _explain_cuda_failure(path: Path, threads: int, providers: list[Any], exc: Exception) -> Any:
    """After ONNX Runtime refused a CUDA session of ``path``: a session whose only CPU
    nodes are shape computations (:data:`SHAPE_OPS`; the CUDA provider's own choice),
    with them recorded as ``xfbench_cpu_nodes``; else raise :class:`UnsupportedError`
    saying why, where the cause is one a benchmark reports as ``unsupported``; else
    return None (the caller re-raises ``exc``).

    ONNX Runtime refuses with the same error ("graph nodes that are assigned to the
    default CPU EP") whether the CUDA provider lacks kernels for some nodes or could not
    be created at all (every node then falls to the CPU), so a second session, CPU
    fallback allowed and placement recorded, tells the two apart. It is created only
    here, after a refusal: a working session costs nothing more.
    """
    import onnxruntime as ort

    options = session_options("cuda", threads, cpu_fallback=True)
    options.add_session_config_entry(RECORD_PLACEMENT, "1")
    try:
        probe = ort.InferenceSession(str(path), options, providers=providers, enable_fallback=0)
    except Exception as probe_exc:
        said = _one_line(probe_exc)
        if any(w in said.lower() for w in ("cuda", "cudnn", "cublas", "driver", "device")):
            raise UnsupportedError(
                f"{path}: {_build()} could not create its {CUDA}: {CUDA_FIX}. "
                f"ONNX Runtime said: {said}"
            ) from exc
        return  # not about CUDA (a damaged export...): the original error stands
    if probe.get_providers()[0] != CUDA:
        raise UnsupportedError(
            f"{path}: {_build()} could not create its {CUDA} (ONNX Runtime's log on stderr "
            f"names the library or device it lacked): {CUDA_FIX}"
        ) from exc
    on_cpu = cpu_nodes(probe)
    if only_shape_ops(cpu_op_counts(probe)):
        probe.xfbench_cpu_nodes = on_cpu
        return probe
    if not on_cpu and "CPU EP" not in _one_line(exc):
        return None  # CUDA works and nothing was left to the CPU: not explained here
    raise UnsupportedError(
        f"{path}: ONNX Runtime's CUDA provider cannot run every node of this export"
        + (f" (it leaves {on_cpu} to the CPU)" if on_cpu else "")
        + f", and CPU fallback is disabled ({DISABLE_CPU_FALLBACK}) so that no mixed "
        f"CPU/GPU run is timed as a GPU one. ONNX Runtime said: {_one_line(exc)}"
    ) from exc


def make_session(path: Path, device: str, threads: int) -> Any:
    """An ONNX Runtime session of the export at ``path`` on ``device``, with
    :func:`session_options`; on CUDA one that runs every node on the GPU, or
    :class:`UnsupportedError` saying why there is none."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no ONNX export; build it with `tox -e zoo`")
    options = session_options(device, threads)
    if device == "cuda":
        require_cuda()
        # TF32 off: every runtime is timed in strict float32.
        providers: list[Any] = [(CUDA, {"device_id": 0, "use_tf32": 0})]
        try:
            # enable_fallback=0: no retry on the CPU alone, at creation or at run time.
            session = ort.InferenceSession(
                str(path), options, providers=providers, enable_fallback=0
            )
        except Exception as exc:
            session = _explain_cuda_failure(path, threads, providers, exc)
            if session is None:
                raise
    else:
        session = ort.InferenceSession(str(path), options, providers=[CPU])
    expected = CUDA if device == "cuda" else CPU
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
