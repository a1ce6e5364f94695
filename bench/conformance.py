"""The adapter conformance kit: the tests every adapter must pass.

Parametrized over adapters and over the models each one declares; test ids read
``test_x[torch-cnn]``, so ``-k`` selects a framework or a model. A model an adapter does
not declare, a missing GPU or a missing optional hook is a skip that says why.

Running it on a new adapter (registered under the ``xfbench.adapters`` entry point and
installed) takes one line in any test module::

    from bench.conformance import *  # noqa: F403

and ``pytest --framework <name>`` (or ``XFBENCH_FRAMEWORKS=<name> pytest``). Without
either, every registered adapter whose framework is importable is tested.

What it proves, per adapter and model: the spec's trainable-parameter count; neutral
weights round-trip exactly; outputs match the float64 numpy reference within 5e-5
(hence any two conforming adapters agree within 1e-4) on ordinary and large weights;
varying batch sizes; a training step lowers the loss and keeps the weights mappable;
the ONNX export passes the checker, keeps a dynamic batch axis, does the spec's FLOPs
and matches under ONNX Runtime; devices are declared honestly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench.adapters import framework_names, get_adapter, install_hint, is_installed
from bench.data import as_model_input, load_digits
from bench.zoo import ONNX_PARITY_TOL, PARITY_BATCHES, REFERENCE_TOL, onnx_diagnostics
from models import reference
from models.spec import MODEL_NAMES, get_spec

__all__ = [  # what `from bench.conformance import *` brings into a test module
    "adapter", "digits", "model", "pytest_generate_tests", "spec",
    "test_devices_are_declared_honestly", "test_gemm_computes_the_product",
    "test_matches_numpy_reference", "test_neutral_weights_round_trip",
    "test_onnx_export", "test_parameter_count_matches_spec",
    "test_registry_attributes", "test_runs_on_cuda_when_available",
    "test_train_step_lowers_the_loss", "test_varying_batch_sizes",
]  # fmt: skip


def selected_frameworks(config: pytest.Config) -> list[str]:
    """``--framework`` (if the project registered it), else ``$XFBENCH_FRAMEWORKS``, else
    every registered adapter whose framework is importable here."""
    chosen = config.getoption("--framework", default=None) or []
    names = [f for v in chosen for f in v.split(",") if f]
    names = names or [f for f in os.environ.get("XFBENCH_FRAMEWORKS", "").split(",") if f]
    return names or [f for f in framework_names() if is_installed(f)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "framework" in metafunc.fixturenames:
        fws = selected_frameworks(metafunc.config) or ["(none installed)"]
        metafunc.parametrize("framework", fws, scope="session")
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", MODEL_NAMES, scope="session")


@pytest.fixture(scope="session")
def adapter(framework: str):
    if framework not in framework_names() or not is_installed(framework):
        pytest.skip(f"framework {framework!r} is not installed here; {install_hint(framework)}")
    return get_adapter(framework)


@pytest.fixture(scope="session")
def spec(adapter, model_name: str):
    if model_name not in adapter.models:
        pytest.skip(f"{adapter.name} declares no {model_name!r} model")
    return get_spec(model_name)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def model(adapter, spec):
    m = adapter.build(spec)
    adapter.set_weights(m, spec.init_weights(0))
    return m


def test_registry_attributes(adapter):
    # What the registry, the CLI and the reports read without building anything.
    assert adapter.name in framework_names()
    assert adapter.package and adapter.exporter
    assert adapter.models and set(adapter.models) <= set(MODEL_NAMES)
    assert adapter.output in ("logits", "probabilities")


def test_parameter_count_matches_spec(adapter, spec, model):
    assert adapter.param_count(model) == spec.param_count


def test_neutral_weights_round_trip(adapter, spec, model):
    weights = spec.init_weights(7)
    adapter.set_weights(model, weights)
    back = adapter.get_weights(model)
    assert sorted(back) == sorted(weights)
    for name, value in weights.items():
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], value, err_msg=name)


@pytest.mark.parametrize("scale", [1.0, 4.0], ids=["init", "large"])
def test_matches_numpy_reference(adapter, spec, model, digits, scale):
    # Large weights push activations out of the linear regime, so a transposed or
    # permuted layout cannot hide behind small outputs.
    weights = {k: v * scale for k, v in spec.init_weights(3).items()}
    adapter.set_weights(model, weights)
    x = as_model_input(spec, digits.x_test[:32])
    got = adapter.predict(model, x)
    want = reference.outputs(spec, weights, x, adapter.output)
    assert got.shape == (32, 10) and got.dtype == np.float32
    assert np.abs(want).max() > 0.1  # the comparison is not between two near-zero arrays
    # At scale 4 the CNN's logits reach ~500, where float32 itself rounds at ~3e-5:
    # the bound scales with the logits beyond 1 (still ~1e-7 relative).
    bound = REFERENCE_TOL * max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= bound


def test_varying_batch_sizes(adapter, spec, model, digits):
    x = as_model_input(spec, digits.x_test[:7])
    full = adapter.predict(model, x)
    for b in (1, 7, 1):
        np.testing.assert_allclose(adapter.predict(model, x[:b]), full[:b], atol=1e-5)


def test_train_step_lowers_the_loss(adapter, spec, model, digits):
    x = as_model_input(spec, digits.x_train[:64])
    y = digits.y_train[:64]
    step = adapter.make_train_step(model, spec.train)
    losses = [step(x, y) for _ in range(15)]
    assert all(np.isfinite(losses))
    # Fifteen Adam steps at lr 1e-3 on one batch take every model at least 10% down
    # (the LSTM, the slowest, goes from 2.31 to 1.99 in PyTorch).
    assert losses[-1] < 0.9 * losses[0], losses
    # The recurrent bias that PyTorch and MXNet carry must stay frozen: the neutral
    # weights still round-trip to what the model computes.
    back = adapter.get_weights(model)
    np.testing.assert_allclose(
        adapter.predict(model, x),
        reference.outputs(spec, back, x, adapter.output),
        atol=REFERENCE_TOL,
    )


def test_onnx_export(adapter, spec, model, digits, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "model.onnx"
    adapter.export_onnx(model, spec, path)
    diag = onnx_diagnostics(path)  # checker, one input/output, dynamic batch axis
    assert diag["node_count"] > 0 and diag["opset"] >= 13
    # The graph does the spec's arithmetic: no layer lost or duplicated by the exporter.
    assert diag["flops_per_sample"] == spec.flops_per_sample
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for b in PARITY_BATCHES:
        x = as_model_input(spec, digits.x_test[:b])
        (onnx_out,) = session.run(None, {name: x})
        assert onnx_out.shape == (b, 10)
        assert np.abs(onnx_out - adapter.predict(model, x)).max() <= ONNX_PARITY_TOL


def test_devices_are_declared_honestly(adapter, spec):
    devices = adapter.devices()
    assert devices[0] == "cpu"
    assert set(devices) <= {"cpu", "cuda"}
    if "cuda" not in devices:
        with pytest.raises(ValueError, match="cuda"):
            adapter.build(spec, "cuda")
    with pytest.raises(ValueError, match="cpu"):
        adapter.build(spec, "tpu:7")


def test_gemm_computes_the_product(adapter):
    run = adapter.gemm(64, "cpu")
    if run is None:
        pytest.skip(f"{adapter.name} offers no gemm; its runs report no machine peak")
    rng = np.random.RandomState(0)
    a, b = rng.rand(64, 64).astype(np.float32), rng.rand(64, 64).astype(np.float32)
    got = adapter.to_numpy(run())
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5)


@pytest.mark.gpu
def test_runs_on_cuda_when_available(adapter, spec, digits):
    if "cuda" not in adapter.devices():
        pytest.skip(f"{adapter.name} sees no CUDA GPU on this machine")
    model = adapter.build(spec, "cuda")
    weights = spec.init_weights(3)
    adapter.set_weights(model, weights)
    x = as_model_input(spec, digits.x_test[:8])
    got = adapter.predict(model, x)
    adapter.synchronize(model)
    # GPU kernels (cuDNN, TF32 off by default for float32 convs) stay close, not exact.
    assert np.abs(got - reference.outputs(spec, weights, x, adapter.output)).max() <= 1e-3
