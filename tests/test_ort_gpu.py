"""GPU readiness of ONNX Runtime without a GPU, with the real onnxruntime: the CUDA
options carry a key ONNX Runtime really honours, a CPU build says how to get the CUDA one,
loading the CUDA libraries is harmless where there are none. And the guard of GPU
numbers: a result on another device must match the same computation on the CPU
(``bench/suites/bench_models.py``), a reference computed apart from the cases' own
models and sessions (``bench/suites/conftest.py``: ``Context``).

The ONNX Runtime tests are marked ``framework``: every framework environment (and
``onnxruntime``, ``onnxruntime-gpu``) has onnxruntime, the framework-free ``core``
environment does not, and runs the rest. The models are the tiny ones ONNX Runtime ships
(``onnxruntime.datasets``), so no environment needs onnx for them. The ``gpu`` tests run
where a CUDA build meets a GPU (``tox -e onnxruntime-gpu`` on a GPU host).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench import ort as bench_ort
from bench.adapters.base import UnsupportedError
from bench.matrix import ORT, Case
from bench.ort import (
    CUDA,
    DISABLE_CPU_FALLBACK,
    RECORD_PLACEMENT,
    OrtRunner,
    cpu_nodes,
    cpu_op_counts,
    load_cuda_libraries,
    make_session,
    only_shape_ops,
    session_options,
)

GPU_CASE = Case("torch", "cnn", "eager", "inference", "cuda", 32, 2)


@pytest.fixture(scope="module")
def suite(pytestconfig: pytest.Config):
    """``bench/suites/bench_models.py``, imported here: its cases carry the suite's own
    ``phase`` marker, which its pytest.ini registers and this run (strict markers) must
    know before the import."""
    import importlib

    pytestconfig.addinivalue_line("markers", "phase(name): the benchmark suite's phases")
    return importlib.import_module("bench.suites.bench_models")


# -- the check of a result on another device against the CPU (numpy only) ---------------
def test_equal_results_pass_the_cpu_check(suite):
    want = np.random.RandomState(0).randn(32, 10).astype(np.float32)
    assert suite.check_against_cpu(GPU_CASE, want.copy(), want) == 0.0
    near = want + np.float32(suite.DEVICE_TOL / 2)  # GPU kernels: close, not exact
    diff = suite.check_against_cpu(GPU_CASE, near, want)
    assert diff == pytest.approx(suite.DEVICE_TOL / 2, rel=1e-3)


def test_a_perturbed_result_fails_the_cpu_check_with_the_difference(suite):
    want = np.random.RandomState(0).randn(32, 10).astype(np.float32)
    got = want.copy()
    got[7, 3] += 0.0125
    with pytest.raises(AssertionError) as info:
        suite.check_against_cpu(GPU_CASE, got, want)
    message = str(info.value)
    assert "0.0125" in message and f"{suite.DEVICE_TOL:g}" in message
    assert GPU_CASE.id in message and "cuda" in message
    assert "\n" not in message  # a results record keeps one line of a reason


def test_nan_and_misshapen_results_fail_the_cpu_check(suite):
    want = np.zeros((4, 10), np.float32)
    with pytest.raises(AssertionError, match="nan"):
        suite.check_against_cpu(GPU_CASE, np.full((4, 10), np.nan, np.float32), want)
    with pytest.raises(AssertionError, match=r"shape \(4, 9\)"):
        suite.check_against_cpu(GPU_CASE, np.zeros((4, 9), np.float32), want)


# -- the real onnxruntime ----------------------------------------------------------------
@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime")


def _example(name: str) -> str:
    from onnxruntime.datasets import get_example

    return get_example(name)


def _entry(options, key: str) -> str | None:
    """A session config entry, ``None`` where it was never set (ORT raises then)."""
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:
        return None


def _has_cuda(ort) -> bool:
    return CUDA in ort.get_available_providers()


@pytest.mark.framework
def test_cuda_options_disable_cpu_fallback_and_cpu_options_do_not(ort):
    cuda, cpu = session_options("cuda", 3), session_options("cpu", 3)
    assert _entry(cuda, DISABLE_CPU_FALLBACK) == "1"
    assert _entry(cpu, DISABLE_CPU_FALLBACK) is None
    for options in (cuda, cpu):  # everything else is the same on both devices
        assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
        assert _entry(options, "session.intra_op.allow_spinning") == "1"
    assert _entry(session_options("cuda", 3, cpu_fallback=True), DISABLE_CPU_FALLBACK) is None
    with pytest.raises(ValueError, match="cpu, cuda"):
        session_options("tpu", 1)


@pytest.mark.framework
def test_onnxruntime_honours_the_fallback_key(ort):
    """With the key set, ONNX Runtime refuses the CPU provider itself (its documented
    conflict: the CPU provider asked for while the fallback to it is disabled), so the
    key as spelled in bench/ort.py is one ONNX Runtime reads; a misspelled key is
    ignored without a word, which is why this is checked with a real session."""
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    path = _example("sigmoid.onnx")
    with pytest.raises(InvalidArgument, match="disabled fallback to the CPU EP"):
        ort.InferenceSession(path, session_options("cuda", 1), providers=["CPUExecutionProvider"])
    misspelled = session_options("cpu", 1)
    misspelled.add_session_config_entry(DISABLE_CPU_FALLBACK + "s", "1")
    for options in (session_options("cpu", 1), misspelled):
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.framework
def test_cuda_on_a_cpu_build_is_unsupported_and_says_how_to_get_it(ort, tmp_path):
    if _has_cuda(ort):
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(UnsupportedError) as info:
        make_session(Path(_example("sigmoid.onnx")), "cuda", 1)
    message = str(info.value)
    assert "onnxruntime-gpu" in message and CUDA in message
    assert "`tox -e onnxruntime-gpu -r --notest`" in message
    with pytest.raises(FileNotFoundError, match="tox -e zoo"):  # the export is checked first
        make_session(tmp_path / "model.onnx", "cuda", 1)


@pytest.mark.framework
def test_loading_cuda_libraries_on_a_cpu_build_loads_nothing(ort, monkeypatch, capsys):
    if _has_cuda(ort):
        pytest.skip("this onnxruntime has the CUDA provider")
    assert hasattr(ort, "preload_dlls"), "onnxruntime >= 1.21 has preload_dlls"
    monkeypatch.setattr(bench_ort, "_PRELOADED", None)  # as in a fresh process
    first = load_cuda_libraries()
    assert first == []  # a CPU build has no CUDA to load: no problem reported
    assert load_cuda_libraries() is first  # once per process
    assert capsys.readouterr().out == ""  # what it prints is captured, not shown


@pytest.mark.framework
def test_make_session_on_the_cpu(ort):
    session = make_session(Path(_example("sigmoid.onnx")), "cpu", 1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    x = np.linspace(-3, 3, 60, dtype=np.float32).reshape(3, 4, 5)
    runner = OrtRunner(session, x, "cpu")
    np.testing.assert_allclose(runner.to_numpy(runner()), 1 / (1 + np.exp(-x)), atol=1e-6)


@pytest.mark.framework
def test_cpu_nodes_names_the_operators_left_to_the_cpu(ort):
    path = _example("logreg_iris.onnx")  # ai.onnx.ml operators: CPU kernels only
    options = session_options("cpu", 1)
    options.add_session_config_entry(RECORD_PLACEMENT, "1")
    recorded = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    if not hasattr(recorded, "get_provider_graph_assignment_info"):
        pytest.skip(f"onnxruntime {ort.__version__} records no node placement")
    names = cpu_nodes(recorded).split(", ")
    assert sorted(names) == ["LinearClassifier x1", "Normalizer x1", "ZipMap x1"]
    unrecorded = ort.InferenceSession(
        path, session_options("cpu", 1), providers=["CPUExecutionProvider"]
    )
    assert cpu_nodes(unrecorded) == ""
    # Those are compute operators, not shape computations: a CUDA session leaving them
    # to the CPU is refused; one leaving only a Shape -> Gather -> Concat chain is not.
    assert not only_shape_ops(cpu_op_counts(recorded))
    assert only_shape_ops(Counter({"Shape": 1, "Gather": 2, "Concat": 1, "Unsqueeze": 2}))
    assert not only_shape_ops(Counter({"Shape": 1, "Conv": 1}))
    assert not only_shape_ops(Counter()) and not only_shape_ops(None)


class _Config:
    """The options a benchmark worker's pytest has (bench/suites/conftest.py)."""

    def __init__(self, artifacts: Path) -> None:
        self.options = {
            "--xf-group": ORT,
            "--xf-threads": 1,
            "--xf-artifacts": artifacts,
            "--xf-timing": "1,0.1,0,0.001",
        }

    def getoption(self, name: str):
        return self.options[name]


@pytest.mark.framework
def test_onnx_cpu_reference_leaves_the_cases_sessions_alone(ort, suite, tmp_path):
    """The CPU reference of an ONNX Runtime case is a session of its own: a CPU case of
    the same export in the same process still creates (and first calls) its own."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from bench.suites.conftest import Context, sample_batch
    from models.spec import get_spec

    w = np.random.RandomState(1).randn(784, 10).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["logits"])],
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # read by every supported onnxruntime
    (tmp_path / "torch" / "mlp").mkdir(parents=True)
    onnx.save(model, tmp_path / "torch" / "mlp" / "model.onnx")

    ctx = Context(_Config(tmp_path))
    want = ctx.onnx_cpu_reference("torch", "mlp", 5)
    x, _ = sample_batch(get_spec("mlp"), 5)
    np.testing.assert_allclose(want, x.astype(np.float64) @ w, atol=1e-4)
    assert ctx.onnx_cpu_reference("torch", "mlp", 5) is want  # computed once
    assert ctx._sessions == {}  # the cases' sessions: untouched
    session = ctx.onnx_session("torch", "mlp", "cpu")
    got = OrtRunner(session, x, "cpu")
    assert suite.check_against_cpu(GPU_CASE, got.to_numpy(got()), want) <= 1e-6


def test_native_cpu_reference_leaves_the_cases_models_alone(tmp_path):
    """The CPU reference of a native case is a model of its own (the zoo's weights, the
    adapter's first mode): a CPU case of the same process still builds, compiles and
    first calls its own. Shown with the known-clock adapter (numpy only)."""
    from bench.adapters.clock_adapter import ClockAdapter
    from bench.suites.conftest import Context
    from bench.weights import save_weights
    from models.spec import get_spec

    spec = get_spec("mlp")
    (tmp_path / "clock" / "mlp").mkdir(parents=True)
    save_weights(tmp_path / "clock" / "mlp" / "weights.npz", spec, spec.init_weights(0))
    ctx = Context(_Config(tmp_path))
    ctx.group, ctx.adapter = "clock", ClockAdapter()  # not registered: set by hand
    want = ctx.native_cpu_reference("mlp", 5)
    assert ctx.native_cpu_reference("mlp", 5) is want  # computed once
    ctx.native_cpu_reference("mlp", 7)
    assert list(ctx._reference_models) == ["mlp"]  # one CPU model for every batch size
    assert ctx._models == {} and ctx._forwards == {}  # the cases' own: untouched


# -- on a GPU ----------------------------------------------------------------------------
@pytest.fixture
def cuda_ort(ort):
    from bench.fingerprint import detect_gpus

    if not _has_cuda(ort) or not detect_gpus():
        pytest.skip("needs onnxruntime-gpu and a CUDA GPU (tox -e onnxruntime-gpu)")
    return ort


@pytest.mark.gpu
@pytest.mark.framework
def test_a_cuda_session_runs_on_the_gpu_and_matches_the_cpu(cuda_ort, suite):
    path = Path(_example("sigmoid.onnx"))
    session = make_session(path, "cuda", 1)
    assert session.get_providers()[0] == CUDA
    assert _entry(session.get_session_options(), DISABLE_CPU_FALLBACK) == "1"
    x = np.linspace(-3, 3, 60, dtype=np.float32).reshape(3, 4, 5)
    runner = OrtRunner(session, x, "cuda")
    cpu = OrtRunner(make_session(path, "cpu", 1), x, "cpu")
    suite.check_against_cpu(GPU_CASE, runner.to_numpy(runner()), cpu.to_numpy(cpu()))


@pytest.mark.gpu
@pytest.mark.framework
def test_an_export_with_cpu_only_nodes_is_unsupported_on_cuda(cuda_ort):
    with pytest.raises(UnsupportedError, match="cannot run every node of this export") as info:
        make_session(Path(_example("logreg_iris.onnx")), "cuda", 1)
    assert "LinearClassifier" in str(info.value)  # the nodes it would leave to the CPU
