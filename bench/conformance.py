"""The adapter conformance kit: the tests every adapter must pass.

Parametrized over adapters and over the models each one declares, and where a test is
about execution modes, over the modes (or training modes) each adapter declares: test
ids read ``test_x[torch-cnn]`` or ``test_x[torch-cnn-compile]``, so ``-k`` selects a
framework, a model or a mode. A model an adapter does not declare, a missing GPU or a
missing optional hook is a skip that says why.

Running it on a new adapter (registered under the ``xfbench.adapters`` entry point and
installed) takes one line in any test module::

    from bench.conformance import *  # noqa: F403

and ``pytest --framework <name>`` (or ``XFBENCH_FRAMEWORKS=<name> pytest``). Without
either, every registered adapter whose framework is importable is tested.

What it proves, per adapter and model: the spec's trainable-parameter count; neutral
weights round-trip exactly; outputs match the float64 numpy reference within 5e-5
(hence any two conforming adapters agree within 1e-4) on ordinary and large weights;
varying batch sizes; the ONNX export passes the checker, keeps a dynamic batch axis, does
the spec's FLOPs and matches under ONNX Runtime; devices are declared honestly; the
report's colour is declared as ``#rrggbb`` and is the adapter's own. Per mode:
every mode is declared with a note, ``infer`` is the first mode, each mode's forward
function matches the reference at batch sizes 1 and 7 and follows weights set after it
ran, unknown modes are refused, ``wait`` returns for a real result; per training mode, a
training step lowers the loss and keeps the weights mappable (the frozen recurrent bias
still frozen). The export's input is named ``input`` and its output after the adapter's
``output`` (``logits`` or ``probabilities``).

Two rules about processes, each checked in a fresh interpreter (``python -c``): importing
the harness (``bench``, ``bench.cli``, the registry ``bench.adapters`` with every
registered adapter class, ``bench.report`` and the other core modules) imports no
framework (:func:`harness_imports`); and building each declared model, loading weights
and predicting makes no network connection (:func:`network_attempts`: Python's sockets
are blocked there, so a download by native code that bypasses them is not seen).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from bench.adapters import (
    adapter_class,
    framework_names,
    framework_of_environment,
    get_adapter,
    install_hint,
    is_installed,
)
from bench.adapters.base import COLOR_PATTERN, ONNXRUNTIME_COLOR, UnsupportedError
from bench.data import as_model_input, load_digits, train_batch
from bench.zoo import ONNX_PARITY_TOL, PARITY_BATCHES, REFERENCE_TOL, onnx_diagnostics
from models import reference
from models.spec import BN_EPSILON, BN_MOMENTUM, IMAGE_SIZE, MODEL_NAMES, NUM_CLASSES, get_spec

__all__ = [  # what `from bench.conformance import *` brings into a test module
    "adapter", "digits", "gan", "model", "pytest_generate_tests", "spec",
    "test_build_and_predict_use_no_network", "test_color_is_declared",
    "test_devices_are_declared_honestly",
    "test_gan_discriminator_matches_numpy_reference", "test_gan_train_step_is_dcgan_s",
    "test_gemm_computes_the_product", "test_harness_imports_no_framework",
    "test_infer_runs_the_first_mode", "test_matches_numpy_reference",
    "test_mode_matches_numpy_reference", "test_modes_are_declared",
    "test_neutral_weights_round_trip", "test_onnx_export",
    "test_parameter_count_matches_spec", "test_registry_attributes",
    "test_runs_on_cuda_when_available", "test_train_step_lowers_the_loss",
    "test_unknown_modes_are_refused", "test_varying_batch_sizes",
    "test_wait_returns_for_a_real_result",
]  # fmt: skip

#: Frameworks whose batch normalisation moves the running variance towards the
#: *unbiased* batch variance (documented in PyTorch's ``nn.BatchNorm2d``); the others
#: use the biased one (models/spec.py, BN_MOMENTUM).
UNBIASED_RUNNING_VARIANCE = ("torch",)

#: The runtime name the benchmark gives ONNX Runtime: no adapter mode may take it.
RESERVED_MODES = ("onnxruntime",)

#: What importing the harness must leave unimported, beyond every registered adapter's
#: ``package``: the frameworks, their exporters and ONNX Runtime.
HEAVY_MODULES = (
    "torch", "tensorflow", "keras", "mxnet", "jax", "jaxlib", "flax", "optax", "sklearn",
    "skl2onnx", "tf2onnx", "jax2onnx", "onnxscript", "onnx", "onnxruntime",
)  # fmt: skip
#: The harness's own eager dependencies: never counted as a framework, even where an
#: adapter names one as its ``package`` (the known-clock test adapter: ``numpy``).
CORE_MODULES = ("numpy", "tqdm")
#: The harness modules whose import must import no framework, in import order.
HARNESS_MODULES = (
    "bench", "bench.cli", "bench.adapters", "bench.report", "bench.zoo", "bench.worker",
    "bench.envs", "bench.data", "bench.weights", "bench.conformance", "models",
    "models.spec", "models.reference",
)  # fmt: skip
#: The name of the ONNX export's input; its output is named after ``Adapter.output``.
ONNX_INPUT_NAME = "input"


def forbidden_modules() -> tuple[str, ...]:
    """Top-level modules the harness must not import: every registered adapter's
    ``package`` (read off its class) and :data:`HEAVY_MODULES`, less :data:`CORE_MODULES`."""
    packages = {adapter_class(f).package.partition(".")[0] for f in framework_names()}
    return tuple(sorted((packages | set(HEAVY_MODULES)) - set(CORE_MODULES)))


def _run_python(code: str, *args: str, timeout: float = 600) -> dict:
    """Run ``code`` in a fresh interpreter of this environment; it writes JSON to the path
    in ``sys.argv[1]``, which comes back parsed. Its output is shown if it fails."""
    with tempfile.TemporaryDirectory(prefix="xfbench-kit-") as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [sys.executable, "-c", code, out, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise AssertionError(
                f"the check's subprocess failed (exit status {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        with open(out) as f:
            return json.load(f)


_IMPORTS_CODE = textwrap.dedent(
    """
    import importlib, json, sys
    out, modules, forbidden = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
    def loaded():
        return {m for m in forbidden if m in sys.modules}
    found = {}
    for name in modules:
        before = loaded()
        importlib.import_module(name)
        if loaded() - before:
            found["import " + name] = sorted(loaded() - before)
    from bench.adapters import _entry_points, framework_names
    for fw in framework_names():  # what the registry, the CLI and `xfbench list` load
        before = loaded()
        ep = _entry_points()[fw]
        ep.load()
        if loaded() - before:
            found[f"loading adapter {fw!r} ({ep.value})"] = sorted(loaded() - before)
    with open(out, "w") as f:
        json.dump(found, f)
    """
)


def harness_imports(forbidden: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """In a fresh interpreter, import :data:`HARNESS_MODULES` and load every registered
    adapter class (as the registry and the CLI do); return what each step imported of
    ``forbidden`` (default :func:`forbidden_modules`): empty when the rule holds."""
    forbidden = forbidden_modules() if forbidden is None else forbidden
    return _run_python(_IMPORTS_CODE, ",".join(HARNESS_MODULES), ",".join(forbidden))


_NETWORK_CODE = textwrap.dedent(
    """
    import json, socket, sys
    out, framework = sys.argv[1], sys.argv[2]
    attempts = []
    class NetworkBlocked(OSError):
        pass
    def refuse(what):
        attempts.append(what)
        raise NetworkBlocked(f"the conformance kit blocks the network: {what}")
    INET = (socket.AF_INET, socket.AF_INET6)
    LOCAL = (None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0")  # this machine only
    connect, connect_ex, sendto, getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
        socket.getaddrinfo)
    def remote(address):
        return not (isinstance(address, tuple) and address and address[0] in LOCAL)
    def _connect(self, address):
        if self.family in INET and remote(address):
            refuse(f"connect {address!r}")
        return connect(self, address)
    def _connect_ex(self, address):
        if self.family in INET and remote(address):
            refuse(f"connect {address!r}")
        return connect_ex(self, address)
    def _sendto(self, data, *args):
        if self.family in INET and remote(args[-1]):
            refuse(f"sendto {args[-1]!r}")
        return sendto(self, data, *args)
    def _getaddrinfo(host, *args, **kwargs):
        if host in LOCAL:
            return getaddrinfo(host, *args, **kwargs)
        refuse(f"resolve {host!r}")
    socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex
    socket.socket.sendto, socket.getaddrinfo = _sendto, _getaddrinfo
    def local_only(lookup):
        def wrapped(host, *args, **kwargs):
            if host in LOCAL:
                return lookup(host, *args, **kwargs)
            refuse(f"resolve {host!r}")
        return wrapped
    socket.gethostbyname = local_only(socket.gethostbyname)
    socket.gethostbyname_ex = local_only(socket.gethostbyname_ex)

    from bench.adapters import get_adapter
    from bench.data import as_model_input, load_digits
    from models.spec import get_spec
    adapter = get_adapter(framework)
    adapter.import_framework()
    x = load_digits().x_test[:2]
    for name in adapter.models:
        spec = get_spec(name)
        model = adapter.build(spec)
        adapter.set_weights(model, spec.init_weights(0))
        y = adapter.predict(model, as_model_input(spec, x))
        assert len(y) == 2, y.shape  # class scores, or a generator's images
    with open(out, "w") as f:
        json.dump({"attempts": attempts}, f)
    """
)


def network_attempts(framework: str) -> list[str]:
    """In a fresh interpreter whose Python sockets refuse every internet connection and
    name lookup, import ``framework``, build each model its adapter declares, load
    weights and predict; return the attempts made (empty when the rule holds). Attempts
    are recorded even where the adapter or its framework catches the refusal. Native code
    that opens sockets without Python's ``socket`` module is not seen."""
    return _run_python(_NETWORK_CODE, framework)["attempts"]


def selected_frameworks(config: pytest.Config) -> list[str]:
    """``--framework`` (if the project registered it), else ``$XFBENCH_FRAMEWORKS``, else
    every registered adapter whose framework is importable here. A tox environment's
    name stands for its adapter (``torch-gpu`` for ``torch``), so every environment can
    pass ``--framework {env_name}``."""
    chosen = config.getoption("--framework", default=None) or []
    names = [f for v in chosen for f in v.split(",") if f]
    names = names or [f for f in os.environ.get("XFBENCH_FRAMEWORKS", "").split(",") if f]
    names = [framework_of_environment(n) for n in names]
    return names or [f for f in framework_names() if is_installed(f)]


def declared_modes(framework: str, training: bool = False) -> tuple[str, ...]:
    """The modes (or training modes) ``framework``'s adapter declares, read off its class
    without importing the framework; ``()`` for a framework not registered here."""
    try:
        cls = adapter_class(framework)
    except Exception:  # unknown name: the adapter fixture skips it with the reason
        return ()
    return tuple(cls.train_modes if training else cls.modes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    fws = selected_frameworks(metafunc.config) or ["(none installed)"]
    mode_arg = next((a for a in ("mode", "train_mode") if a in names), None)
    if mode_arg is not None:
        # Modes differ between adapters: framework, model and mode are parametrized
        # together, so every id names a mode its framework declares.
        declared = {fw: declared_modes(fw, mode_arg == "train_mode") or ("(none)",) for fw in fws}
        models = MODEL_NAMES if "model_name" in names else (None,)
        combos = [(fw, m, mode) for fw in fws for m in models for mode in declared[fw]]
        argnames = ["framework", "model_name", mode_arg] if "model_name" in names else None
        if argnames is None:
            argnames = ["framework", mode_arg]
            combos = [(fw, mode) for fw, _, mode in combos]
        metafunc.parametrize(argnames, combos, ids=["-".join(c) for c in combos], scope="session")
        return
    if "framework" in names:
        metafunc.parametrize("framework", fws, scope="session")
    if "model_name" in names:
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


def output_shape(spec, batch: int) -> tuple[int, ...]:
    """What a model's forward pass returns for ``batch`` samples: one row of class
    scores each, or the generator's images."""
    return (batch, 1, IMAGE_SIZE, IMAGE_SIZE) if spec.arch == "gan" else (batch, NUM_CLASSES)


def test_registry_attributes(adapter):
    # What the registry, the CLI and the reports read without building anything.
    assert adapter.name in framework_names()
    assert adapter.package and adapter.exporter
    assert adapter.models and set(adapter.models) <= set(MODEL_NAMES)
    assert adapter.output in ("logits", "probabilities")


def test_color_is_declared(adapter):
    """The report's colour for the framework: ``#rrggbb``, its own among the registered
    adapters' and not ONNX Runtime's."""
    color = adapter.color
    assert isinstance(color, str) and COLOR_PATTERN.fullmatch(color), (
        f"{adapter.name}: color = {color!r}; declare one as '#rrggbb'"
    )
    assert color.lower() != ONNXRUNTIME_COLOR.lower(), f"{color} is ONNX Runtime's colour"
    others = {name: adapter_class(name).color for name in framework_names() if name != adapter.name}
    taken = [n for n, c in others.items() if isinstance(c, str) and c.lower() == color.lower()]
    assert not taken, f"{adapter.name}'s colour {color} is also {taken}'s"


def test_harness_imports_no_framework(adapter):
    # The orchestrating environments have no framework, and a worker imports its own only
    # when chosen: importing the harness, or reading the registry's adapter classes, must
    # import no framework (adapters import theirs inside methods).
    found = harness_imports()
    assert not found, f"importing the harness imported a framework: {found}"


def test_build_and_predict_use_no_network(adapter):
    # Models are built from the spec and the bundled data: nothing is downloaded.
    attempts = network_attempts(adapter.name)
    assert not attempts, f"{adapter.name} reached for the network: {attempts}"


def test_modes_are_declared(adapter):
    # The modes become the report's runtime columns and its legend: each is named once,
    # none takes ONNX Runtime's name, every one has its line, training modes are modes.
    modes, train_modes = tuple(adapter.modes), tuple(adapter.train_modes)
    assert modes and all(isinstance(m, str) and m for m in modes), modes
    assert len(set(modes)) == len(modes), f"a mode is declared twice: {modes}"
    reserved = set(modes) & set(RESERVED_MODES)
    assert not reserved, f"{sorted(reserved)} is the benchmark's name for ONNX Runtime"
    assert train_modes, "make_train_step is required, so at least one training mode is"
    assert len(set(train_modes)) == len(train_modes), train_modes
    assert set(train_modes) <= set(modes), f"training modes {train_modes} not in {modes}"
    notes = dict(adapter.mode_notes)
    assert set(notes) == set(modes), f"mode_notes {sorted(notes)} != modes {sorted(modes)}"
    for mode, note in notes.items():
        assert isinstance(note, str) and note.strip(), f"no note for mode {mode!r}"
        assert "\n" not in note, f"the note for {mode!r} must be one line"


def test_unknown_modes_are_refused(adapter, spec, model):
    for mode in adapter.modes:
        assert adapter.check_mode(mode) == mode
    for mode in adapter.train_modes:
        assert adapter.check_mode(mode, training=True) == mode
    for training, valid in ((False, adapter.modes), (True, adapter.train_modes)):
        with pytest.raises(ValueError) as err:
            adapter.check_mode("no-such-mode", training=training)
        assert all(m in str(err.value) for m in valid), str(err.value)
    for mode in set(adapter.modes) - set(adapter.train_modes):  # inference only
        with pytest.raises(ValueError, match=adapter.train_modes[0]):
            adapter.check_mode(mode, training=True)
    # The adapter's own entry points ask before they build anything.
    with pytest.raises(ValueError, match=adapter.modes[0]):
        adapter.forward(model, "no-such-mode")
    with pytest.raises(ValueError, match=adapter.train_modes[0]):
        adapter.make_train_step(model, spec.train, "no-such-mode")


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
    assert got.shape == output_shape(spec, 32) and got.dtype == np.float32
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


def _forward_numpy(adapter, model, mode_fn, x):
    """``mode_fn`` (a forward function) on numpy ``x``, waited for, as float32 numpy."""
    y = mode_fn(adapter.to_device(model, x))
    assert adapter.wait(y) is None
    assert adapter.output_device(y) == "cpu"  # the kit's models are built on the CPU
    return adapter.to_numpy(y).astype(np.float32)


def test_infer_runs_the_first_mode(adapter, spec, model, digits):
    # The zoo checks and exports through infer: what it computes must be the first mode.
    x = as_model_input(spec, digits.x_test[:7])
    first = adapter.forward(model, adapter.modes[0])
    np.testing.assert_array_equal(
        adapter.predict(model, x), _forward_numpy(adapter, model, first, x)
    )


def test_mode_matches_numpy_reference(adapter, spec, digits, mode):
    # Every mode computes the same function, at batch 1 and 7 (a compiling mode compiles
    # each), and follows weights set after it ran (a mode that freezes or captures them
    # must notice): the large weights also catch a layout hidden by small outputs.
    model = adapter.build(spec)
    weights = spec.init_weights(3)
    adapter.set_weights(model, weights)
    fwd = adapter.forward(model, mode)
    x = as_model_input(spec, digits.x_test[:7])
    for b in (1, 7):
        got = _forward_numpy(adapter, model, fwd, x[:b])
        want = reference.outputs(spec, weights, x[:b], adapter.output)
        assert got.shape == output_shape(spec, b)
        assert np.abs(got - want).max() <= REFERENCE_TOL, (mode, b)
    large = {k: v * 4.0 for k, v in weights.items()}
    adapter.set_weights(model, large)
    got = _forward_numpy(adapter, model, fwd, x)
    want = reference.outputs(spec, large, x, adapter.output)
    bound = REFERENCE_TOL * max(1.0, float(np.abs(want).max()))  # see the scale-4 test
    assert np.abs(got - want).max() <= bound, f"{mode}: stale or wrong after set_weights"


def test_wait_returns_for_a_real_result(adapter, spec, model, digits):
    # (Every mode's results are waited for in test_mode_matches_numpy_reference.)
    x = adapter.to_device(model, as_model_input(spec, digits.x_test[:3]))
    y = adapter.forward(model, adapter.modes[0])(x)
    assert adapter.wait(y) is None
    assert adapter.wait(y) is None  # again, on a result already complete
    np.testing.assert_array_equal(adapter.to_numpy(y), adapter.to_numpy(adapter.infer(model, x)))


def test_train_step_lowers_the_loss(adapter, spec, model, digits, train_mode):
    # The GAN's step returns its discriminator's loss: on one batch of real images and
    # one of noise, the discriminator learns to tell them apart faster than the generator
    # learns to fool it, so that loss falls too.
    x, y = train_batch(spec, digits.x_train[:64], digits.y_train[:64])
    if train_mode == adapter.train_modes[0]:
        step = adapter.make_train_step(model, spec.train)  # the default is the first
    else:
        step = adapter.make_train_step(model, spec.train, train_mode)
    losses = [step(x, y) for _ in range(15)]
    assert all(np.isfinite(losses))
    # Fifteen Adam steps at lr 1e-3 on one batch take every model at least 10% down
    # (the LSTM, the slowest, goes from 2.31 to 1.99 in PyTorch).
    assert losses[-1] < 0.9 * losses[0], losses
    # The recurrent bias that PyTorch and MXNet carry must stay frozen: the neutral
    # weights still round-trip to what the model computes.
    back = adapter.get_weights(model)
    x = as_model_input(spec, digits.x_train[:64])
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
    # Every export is fed and read the same way: input `input`, output named after
    # what it holds (`logits`, or `probabilities` for an adapter whose output says so).
    assert (diag["input_name"], diag["output_name"]) == (ONNX_INPUT_NAME, adapter.output_name(spec))
    # The graph does the spec's arithmetic: no layer lost or duplicated by the exporter.
    assert diag["flops_per_sample"] == spec.flops_per_sample
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for b in PARITY_BATCHES:
        x = as_model_input(spec, digits.x_test[:b])
        (onnx_out,) = session.run(None, {name: x})
        assert onnx_out.shape == output_shape(spec, b)
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
    try:
        model = adapter.build(spec, "cuda")
    except UnsupportedError as exc:  # a build too old for this card (MXNet's cu112)
        pytest.skip(f"unsupported: {exc}")
    weights = spec.init_weights(3)
    adapter.set_weights(model, weights)
    x = as_model_input(spec, digits.x_test[:8])
    want = reference.outputs(spec, weights, x, adapter.output)
    for mode in adapter.modes:
        y = adapter.forward(model, mode)(adapter.to_device(model, x))
        adapter.wait(y)
        assert adapter.output_device(y) == "cuda", f"{mode} computed on the CPU"
        got = adapter.to_numpy(y).astype(np.float32)
        # GPU kernels (cuDNN, TF32 off by default for float32 convs) stay close, not exact.
        assert np.abs(got - want).max() <= 1e-3, mode


# -- the GAN's second network and its training step -----------------------------------------
@pytest.fixture
def gan(adapter, spec):
    if spec.arch != "gan":
        pytest.skip("the GAN's own checks")
    return spec


def test_gan_discriminator_matches_numpy_reference(adapter, gan, model, digits):
    # Inference and the export run only the generator; the discriminator is proven equal
    # here, on real digits and on images the reference generator made.
    for scale in (1.0, 4.0):
        weights = {k: v * scale for k, v in gan.init_weights(3).items()}
        adapter.set_weights(model, weights)
        fakes = reference.generate(gan, weights, as_model_input(gan, digits.x_test[:16]))
        images = np.concatenate([digits.x_test[:16], fakes.astype(np.float32)])
        got = adapter.discriminate(model, images)
        want = reference.discriminate(gan, weights, images)
        assert got.shape == (32, 1) and got.dtype == np.float32
        assert np.abs(want).max() > 0.1
        bound = REFERENCE_TOL * max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= bound, (scale, np.abs(got - want).max())


def _batch_statistics(record):
    """Batch normalisation by the batch's own statistics (training mode), recording each
    layer's batch mean and biased variance."""

    def batch_norm(x, w, name):
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        record[name] = (mean, var, x.shape[0] * x.shape[2] * x.shape[3])
        normalised = (x - mean[:, None, None]) / np.sqrt(var + BN_EPSILON)[:, None, None]
        return w[f"{name}.gamma"][:, None, None] * normalised + w[f"{name}.beta"][:, None, None]

    return batch_norm


def assert_running_statistics_moved_once(adapter, stats, after) -> None:
    """Each running statistic recorded by :func:`_batch_statistics` moved BN_MOMENTUM of
    the way from its initial value (mean 0, variance 1) to the batch's: the biased
    variance, or the unbiased one for :data:`UNBIASED_RUNNING_VARIANCE`."""
    for name, (mean, var, n) in stats.items():
        if adapter.name in UNBIASED_RUNNING_VARIANCE:
            var = var * n / (n - 1)
        np.testing.assert_allclose(
            after[f"{name}.moving_mean"], BN_MOMENTUM * mean, rtol=1e-4, atol=1e-6, err_msg=name
        )
        np.testing.assert_allclose(
            after[f"{name}.moving_variance"],
            (1 - BN_MOMENTUM) + BN_MOMENTUM * var,
            rtol=1e-5,
            atol=2e-6,
            err_msg=name,
        )


def test_gan_train_step_is_dcgan_s(adapter, gan, model, digits, train_mode):
    """The step's returned loss is the discriminator's before the update, from a fake
    batch the generator made with batch statistics; each network's every trainable
    tensor moves; the generator's running statistics move once, by BN_MOMENTUM."""
    weights = gan.init_weights(gan.train.seed)
    adapter.set_weights(model, weights)
    x, z = train_batch(gan, digits.x_train[:32], digits.y_train[:32], seed=5)
    stats: dict[str, tuple] = {}
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    fake = reference.generate(gan, w64, z, _batch_statistics(stats))
    softplus = reference.softplus
    want = (
        softplus(-reference.discriminate(gan, w64, x)).mean()
        + softplus(reference.discriminate(gan, w64, fake)).mean()
    )
    step = adapter.make_train_step(model, gan.train, train_mode)
    loss = step(x, z)
    assert loss == pytest.approx(want, rel=1e-4), (loss, want)
    after = adapter.get_weights(model)
    for p in gan.params:
        moved = not np.array_equal(after[p.name], weights[p.name])
        if p.trainable:
            assert moved, f"{p.name} was not updated: both networks take a step"
    assert sorted(stats) == ["gen.bn0", "gen.bn1"]
    assert_running_statistics_moved_once(adapter, stats, after)
    # And inference is back on the running statistics.
    np.testing.assert_allclose(
        adapter.predict(model, z[:3]),
        reference.outputs(gan, after, z[:3], adapter.output),
        atol=REFERENCE_TOL,
    )
