"""The JAX / Flax NNX adapter.

Models are Flax NNX modules built by :mod:`models.flax_models` (which also owns the
canonical <-> Flax weight layouts). An NNX module is split once into its static
``graphdef`` and its parameters, and from then on the adapter works functionally, the way
JAX is meant to be run for speed: the parameters (and the ResNet's batch normalisation
statistics) live in a plain dict of device arrays on a :class:`JaxModel`, inference (the
one mode, ``jit``) is a ``jax.jit`` of ``merge(graphdef, params)(x)`` compiled once per
model and input shape, and a training step is one jitted function from (parameters,
optimizer state, batch) to new ones, with optax's Adam. ONNX export goes through
``jax2onnx.to_onnx`` on the merged module.

JAX, Flax, optax, jax2onnx and onnx are imported only inside methods, so importing this
module imports no framework.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.adapters.base import Adapter, TrainStep
from models.spec import ModelSpec, TrainSpec

if TYPE_CHECKING:
    import jax

#: ONNX opset of the export: the same as the torch export's, read by every ONNX Runtime
#: in use; jax2onnx writes the same graphs for these models at 17 to 21.
ONNX_OPSET = 18
INPUT_NAME = "input"
BATCH_AXIS = "batch"
#: Our device names -> JAX's platform names.
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}
#: JAX's platform names -> ours (a CUDA device's platform is "gpu"; ROCm's is "rocm").
_DEVICE_NAMES = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}


def _import_jax() -> Any:
    """Import JAX, and Flax NNX with it, with GPU memory preallocation off unless the
    user chose otherwise.

    JAX reserves 75% of a GPU's memory when its GPU backend starts; the benchmark worker
    runs ONNX Runtime's CUDA sessions in the same process, which would then be left a
    quarter of the card. The variable is read when the backend starts, so it is set
    before any call that could start one. Flax is the model half of this framework, so
    it is loaded with JAX (by :meth:`JaxAdapter.devices` too): the benchmark's cold
    start is measured "where the framework is already imported".
    """
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import flax.nnx  # noqa: F401 - loaded with the framework, see above
    import jax

    return jax


def apply_gpu_settings() -> dict[str, Any]:
    """Strict float32 for JAX's matrix products and convolutions, process-wide; returns
    the setting as read back from JAX. Called when a model is placed on a GPU;
    idempotent.

    With JAX's default precision, XLA on a GPU computes float32 products and
    convolutions in TensorFloat-32 (Triton's generated kernels included, which the
    worker's ``NVIDIA_TF32_OVERRIDE=0`` does not reach). The models ask for
    ``Precision.HIGHEST`` in every layer (:mod:`models.flax_models`) and so does
    :meth:`JaxAdapter.gemm`; ``"highest"`` as the default covers every operation that
    names no precision of its own, so that a model or library change cannot bring TF32
    back unnoticed. The option takes part in JAX's trace cache key: functions jitted
    before it was set are recompiled, not reused. On the CPU float32 is computed in
    float32 either way.
    """
    jax = _import_jax()
    jax.config.update("jax_default_matmul_precision", "highest")
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


def _backend_started() -> bool:
    """Whether JAX has created its device clients (whose thread pools are then fixed).

    Looked up in ``sys.modules`` so that asking does not import JAX. ``backends_are_
    initialized`` is internal; if a JAX release drops it, the answer is "yes" whenever
    JAX is imported, which refuses a thread setting rather than silently ignoring it.
    """
    if "jax" not in sys.modules:
        return False
    bridge = sys.modules.get("jax._src.xla_bridge")
    probe = getattr(bridge, "backends_are_initialized", None)
    return True if probe is None else bool(probe())


def _adam(train: TrainSpec) -> Any:
    """optax's Adam with ``train``'s constants (see :meth:`JaxAdapter.make_train_step`)."""
    import optax

    return optax.adam(
        learning_rate=train.learning_rate, b1=train.beta1, b2=train.beta2, eps=train.epsilon
    )


@dataclass(eq=False)
class JaxModel:
    """What :meth:`JaxAdapter.build` returns: an NNX model split for functional use.

    ``params`` (a nested dict of device arrays, named like the canonical weights; see
    :func:`models.flax_models.flax_name`) is the single source of truth for the weights,
    the ``nnx.Param`` ones and the ``nnx.BatchStat`` running statistics alike;
    ``graphdef`` is the module's static structure, in inference mode, merged with
    ``params`` inside every compiled function but the training step's. ``forward`` is
    the jitted inference function, made on first use; ``discriminator`` the GAN's
    jitted discriminator (:meth:`JaxAdapter.discriminate`), likewise.
    """

    xfbench_spec: ModelSpec
    device: Any  # jax.Device
    graphdef: Any  # nnx.GraphDef
    params: dict[str, Any]
    forward: Callable[[Any, Any], Any] | None = None
    discriminator: Callable[[Any, Any], Any] | None = None


def _model(model: Any) -> JaxModel:
    if not isinstance(model, JaxModel):
        raise TypeError("not a model built by JaxAdapter.build()")
    return model


@contextlib.contextmanager
def _export_quiet() -> Iterator[None]:
    """Silence what jax2onnx emits that is not ours to fix.

    jax2onnx 0.17's ``nnx.Linear`` plugin reads ``Variable.value``, which Flax 0.12
    deprecates (a ``DeprecationWarning`` per dense layer, an error under the test
    suite's "warnings are errors"), and onnx_ir logs a warning for the untyped shape
    constants of a dynamic batch axis. Both concern the exporter's internals, not the
    graph, which the zoo checks on its own.
    """
    logger = logging.getLogger("onnx_ir")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _dims(value: Any) -> list[int | None] | None:
    """The dimensions of an ONNX ``ValueInfoProto`` (None where symbolic or unknown), or
    None when it carries no shape."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _repair_shapes(proto: Any) -> Any:
    """``proto`` without the shape annotations (``value_info``) of its main graph that
    contradict ONNX's own shape inference; every other annotation, node and weight kept.

    jax2onnx 0.17 writes an ``nnx.BatchNorm`` on an NHWC tensor as ``Transpose`` (to
    NCHW), ``BatchNormalization``, ``Transpose`` (back), and its optimiser then removes
    the transposes that cancel between the ResNet's convolutions (written the same way),
    so most of that graph runs in NCHW. But the ``BatchNormalization`` output carries no
    shape, so the ``Relu`` and ``Add`` nodes after it, moved to NCHW, keep their old NHWC
    annotations (``(batch, 28, 28, 16)`` for a ``(batch, 16, 28, 28)`` tensor), and the
    checker's full check rejects the model. ``value_info`` is optional (ONNX Runtime
    infers shapes of its own), so dropping a wrong entry loses nothing; re-deriving them
    all would lose jax2onnx's ``batch`` labels, which ONNX's inference names ``unk__0``.
    The CNN, LSTM and MLP exports have no contradicting entry and are left as written.

    The inference runs with data propagation (``data_prop``): the GAN's generator
    reshapes to ``(batch, 7, 7, 64)`` through a target computed at run time (``Shape``,
    ``Gather``, ``Concat`` of the symbolic batch), which plain inference cannot follow,
    leaving every shape after it unknown and its stale annotations unseen, while the
    checker, which starts from the annotations, rejects them. For the other models it
    infers nothing that contradicts an annotation (their exports are unchanged by it).
    """
    import onnx

    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.graph.value_info[:]
    inferred = {
        v.name: _dims(v)
        for v in onnx.shape_inference.infer_shapes(bare, data_prop=True).graph.value_info
    }

    def agrees(value: Any) -> bool:
        mine, theirs = _dims(value), inferred.get(value.name)
        if mine is None or theirs is None:
            return True
        if len(mine) != len(theirs):
            return False
        return all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True))

    keep = [v for v in proto.graph.value_info if agrees(v)]
    if len(keep) < len(proto.graph.value_info):
        del proto.graph.value_info[:]
        proto.graph.value_info.extend(keep)
    return proto


def _fold_weight_nodes(proto: Any) -> int:
    """Replace, in place, every node of ``proto``'s main graph computed from initializers
    alone by initializers holding its results; returns how many nodes were folded.

    jax2onnx 0.17 has no constant folding. ``nnx.ConvTranspose(transpose_kernel=True)``
    flips its kernel with ``lax.rev``, which jax2onnx writes as run-time ``Shape``,
    ``Range``, ``Sub`` and ``Gather`` nodes on the weight, and its ``ConvTranspose``
    lowering flips the result back with a ``Slice`` and transposes it to IOHW: 17 nodes
    per layer on a weight (35 in the GAN's export, with the ``Reshape`` of the last
    bias), before any on the data. ONNX Runtime folds them when a session
    starts, but the graph others read (its op histogram, the FLOP count, shape
    inference, which cannot size the ``Range`` and so loses every shape after the first
    transposed convolution) is the one written. Folded, each ``ConvTranspose`` reads an
    IOHW initializer, as the PyTorch export's does. Each node is evaluated by ONNX's
    reference evaluator on the very initializers it reads, so the arithmetic of the graph
    is unchanged. Nodes with no input (``Constant``) or with subgraphs are left alone;
    the CNN, LSTM, MLP and ResNet exports have nothing to fold and come out unchanged.
    """
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    kept, folded, count = [], [], 0
    for node in graph.node:
        foldable = (
            len(node.input) > 0
            and all(name in values for name in node.input if name)
            and not any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute)
            and not outputs.intersection(node.output)
        )
        if not foldable:
            kept.append(node)
            continue
        feeds = {name: values[name] for name in node.input if name}
        results = ReferenceEvaluator(node).run(None, feeds)
        for name, value in zip(node.output, results, strict=True):
            values[name] = value
            folded.append(name)
        count += 1
    if not count:
        return 0
    used = {name for node in kept for name in node.input} | outputs
    old = {t.name: t for t in graph.initializer}
    initializers = [
        old[name] if name in old else numpy_helper.from_array(np.asarray(values[name]), name)
        for name in values
        if name in used
    ]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    gone = set(folded)  # now initializers, whose shapes they carry themselves
    annotated = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(annotated)
    return count


class JaxAdapter(Adapter):
    """Flax NNX models run as ``jax.jit`` functions, exported with jax2onnx."""

    name: ClassVar[str] = "jax"
    # The distinguishing package: JAX alone may be present elsewhere (pulled in by
    # other tools), Flax only where this adapter's extra was installed.
    package: ClassVar[str] = "flax"
    exporter: ClassVar[str] = f"jax2onnx (opset {ONNX_OPSET})"
    distributions: ClassVar[tuple[str, ...]] = (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "jax2onnx",
        "numpy",
        "onnx",
        "onnxruntime",
    )
    environments: ClassVar[Mapping[str, str]] = {"cpu": "jax", "cuda": "jax-gpu"}
    models: ClassVar[tuple[str, ...]] = ("cnn", "lstm", "mlp", "resnet", "gan")
    modes: ClassVar[tuple[str, ...]] = ("jit",)
    train_modes: ClassVar[tuple[str, ...]] = ("jit",)
    color: ClassVar[str | None] = "#CC79A7"
    mode_notes: ClassVar[Mapping[str, str]] = {
        "jit": "jax.jit of the Flax NNX module merged from its parameters (one XLA "
        "executable per input shape); training: value_and_grad and optax Adam in one "
        "jitted update",
    }

    # -- capabilities -------------------------------------------------------------------
    def import_framework(self) -> None:
        """JAX with Flax NNX, its model half (see :func:`_import_jax`)."""
        _import_jax()

    def devices(self) -> list[str]:
        """``cpu``, plus ``cuda`` when this jaxlib has a GPU backend that sees a GPU.

        Asking starts JAX's backends, after which :meth:`set_threads` refuses.
        """
        jax = _import_jax()
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # no GPU backend in this jaxlib, or no GPU for it
            gpus = []
        return ["cpu", "cuda"] if gpus else ["cpu"]

    def set_threads(self, n: int) -> None:
        """``n`` threads for XLA's CPU intra-op work, via ``PJRT_NPROC``.

        XLA's CPU client sizes both its pools from ``PJRT_NPROC`` (else ``NPROC``, else
        the CPUs in the affinity mask) when it is created: the Eigen pool that runs the
        compiled kernels (threads named ``XLAEigen``; measured here: a 1024^2 matmul
        uses 1.0 CPUs with n=1 and 1.9 with n=2) and the pool that runs
        dispatch work. Not bounded by it: XLA's compiler threads (``llvm-worker``, busy
        while a function compiles: in cold starts and first calls, not in timed
        steady-state calls) and the Python thread dispatching calls. There is no
        separate inter-op pool to fix: a jitted model is one XLA executable.

        The usual advice, ``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS``, only
        makes Eigen's kernels single-threaded (n=1, nothing else), and
        ``intra_op_parallelism_threads=n`` there left the pool at the core count in
        this jaxlib, so neither is used. Once the client exists its pools are fixed: the
        request is then refused rather than ignored.
        """
        if n < 1:
            raise ValueError(f"thread count must be at least 1, got {n}")
        if _backend_started():
            raise RuntimeError(
                f"cannot set JAX to {n} threads: its backends are already initialised "
                f"(PJRT_NPROC={os.environ.get('PJRT_NPROC', 'unset')}); call set_threads "
                "before anything runs a JAX computation or lists devices"
            )
        os.environ["PJRT_NPROC"] = str(n)

    def _device(self, device: str) -> jax.Device:
        jax = _import_jax()
        valid = self.devices()
        if device not in valid:
            raise ValueError(
                f"unknown or unavailable device {device!r} for jax; "
                f"valid devices: {', '.join(valid)}"
            )
        return jax.devices(_PLATFORMS[device])[0]

    # -- models and weights -------------------------------------------------------------
    def build(self, spec: ModelSpec, device: str = "cpu") -> JaxModel:
        """The NNX model for ``spec`` split into ``graphdef`` and parameters (zeros), the
        latter placed on ``device``.

        The module is built abstractly (``nnx.eval_shape``): no initialiser runs. Run
        eagerly, JAX compiles each initialiser op on its first use in a process, which
        made 1 to 2.5 s of every cold start on a 2-core CPU before a weight was loaded,
        only to produce values that ``set_weights`` replaces.

        On a GPU JAX is put in strict float32 first (:func:`apply_gpu_settings`).
        """
        jax = _import_jax()
        from flax import nnx

        from models.flax_models import build_model

        dev = self._device(device)
        if device == "cuda":
            apply_gpu_settings()
        graphdef, shapes = nnx.split(nnx.eval_shape(lambda: build_model(spec)))
        zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), nnx.to_pure_dict(shapes))
        return JaxModel(spec, dev, graphdef, jax.device_put(zeros, dev))

    def get_weights(self, model: JaxModel) -> dict[str, np.ndarray]:
        """Canonical weights; layouts are converted in :mod:`models.flax_models`."""
        jax = _import_jax()
        from models.flax_models import from_flax

        m = _model(model)
        return from_flax(m.xfbench_spec, jax.device_get(m.params))

    def set_weights(self, model: JaxModel, weights: Mapping[str, np.ndarray]) -> None:
        """Replace the parameters; compiled functions take them as arguments, so they
        keep working without a retrace."""
        jax = _import_jax()
        from models.flax_models import flat_names, to_flax

        m = _model(model)
        pure = to_flax(m.xfbench_spec, weights)
        have, new = flat_names(m.params), flat_names(pure)
        wrong = {k: (v.shape, have[k].shape) for k, v in new.items() if v.shape != have[k].shape}
        if wrong:  # a layout conversion gone wrong, not bad input (validated upstream)
            raise ValueError(f"converted weights do not fit the Flax model: {wrong}")
        m.params = jax.device_put(pure, m.device)

    def param_count(self, model: JaxModel) -> int:
        """Sizes of the module's own ``nnx.Param`` variables, so a layer built with the
        wrong shape or an extra parameter shows up as a mismatch. The running statistics
        are ``nnx.BatchStat``, not counted (the spec counts trainable tensors only)."""
        jax = _import_jax()
        from flax import nnx

        m = _model(model)
        module = nnx.merge(m.graphdef, m.params)
        return int(sum(np.prod(v.shape) for v in jax.tree.leaves(nnx.state(module, nnx.Param))))

    # -- running ------------------------------------------------------------------------
    def to_device(self, model: JaxModel, x: np.ndarray) -> Any:
        """``x`` as a float32 array committed to the model's device (copied there now,
        so the copy is not part of a timed call)."""
        jax = _import_jax()
        return jax.device_put(np.asarray(x, dtype=np.float32), _model(model).device)

    def infer(self, model: JaxModel, x: Any) -> Any:
        """Logits as a JAX array, from the ``jit`` mode's function.

        JAX dispatches asynchronously: the returned array may still be being computed
        (:meth:`wait` or :meth:`to_numpy` waits for it).
        """
        return self.forward(model, self.modes[0])(x)

    def forward(self, model: JaxModel, mode: str) -> Callable[[Any], Any]:
        """The jitted function applied to the model's current parameters.

        The parameters are read from the model at each call (``set_weights`` and the
        training step replace them), and passed as an argument: the compiled function
        does not capture them as constants, so new weights never need a recompilation.
        """
        self.check_mode(mode)
        m = _model(model)
        if m.forward is None:
            m.forward = self._compile_forward(m)
        jitted = m.forward
        return lambda x: jitted(m.params, x)

    @staticmethod
    def _compile_forward(m: JaxModel) -> Callable[[Any, Any], Any]:
        jax = _import_jax()
        from flax import nnx

        graphdef = m.graphdef

        def forward(params: Any, x: Any) -> Any:
            return nnx.merge(graphdef, params)(x)

        return jax.jit(forward)

    def to_numpy(self, y: Any) -> np.ndarray:
        """Host copy of a result; ``np.asarray`` waits for the computation."""
        return np.asarray(y)

    def gpu_settings(self) -> dict[str, Any]:
        return apply_gpu_settings()

    def output_device(self, y: Any) -> str:
        platforms = {_DEVICE_NAMES.get(d.platform, d.platform) for d in y.devices()}
        if len(platforms) != 1:
            raise ValueError(f"a result spread over several platforms: {sorted(platforms)}")
        return platforms.pop()

    def wait(self, y: Any) -> None:
        """Wait for ``y``: JAX returns from a call as soon as the computation is
        enqueued, on the CPU too, and ``block_until_ready`` is the documented way to
        wait for a result. (``jax.effects_barrier()`` would not do: it waits for ordered
        side effects, not for computations.)"""
        y.block_until_ready()

    def gemm(self, n: int, device: str = "cpu") -> Callable[[], Any]:
        jax = _import_jax()
        import jax.numpy as jnp

        dev = self._device(device)
        rng = np.random.RandomState(0)  # the same operands in every adapter
        a = jax.device_put(rng.rand(n, n).astype(np.float32), dev)
        b = jax.device_put(rng.rand(n, n).astype(np.float32), dev)
        # HIGHEST: strict float32 on a GPU too, where JAX's default would be TF32.
        matmul = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))

        def run() -> Any:
            return matmul(a, b).block_until_ready()

        return run

    def make_train_step(
        self, model: JaxModel, train: TrainSpec, mode: str | None = None
    ) -> TrainStep:
        """One compiled Adam step on the mean softmax cross-entropy of the logits.

        The step merges the weights into a training view of the module
        (:func:`models.flax_models.training_view`): batch normalisation then normalises by
        the batch's statistics and moves the running ones, which the step returns with
        the new parameters. Only the ``nnx.Param`` variables get gradients and Adam
        state; the running statistics (``nnx.BatchStat``) are carried past them. Every
        other function keeps the inference-mode graphdef, so after a step the model
        predicts from its running statistics again.

        optax's Adam, like PyTorch's, adds ``epsilon`` to the bias-corrected ``sqrt(v)``
        (Keras and MXNet add it before the correction); with epsilon 1e-8 the difference
        is far below what training accuracy can show. The optimizer state lives with the
        returned function, like a PyTorch optimizer: each call starts a fresh Adam.
        """
        jax = _import_jax()
        import optax
        from flax import nnx

        from models.flax_models import training_view

        self.check_mode(mode or self.train_modes[0], training=True)
        m = _model(model)
        if m.xfbench_spec.arch == "gan":
            return self._gan_train_step(m, train)
        # Static (the graphdef holds no arrays): made once, outside the compiled step.
        graphdef = nnx.graphdef(training_view(nnx.merge(m.graphdef, m.params)))
        tx = _adam(train)

        def partition(state: Any) -> tuple[Any, Any]:
            """The model's pure state -> (its ``nnx.Param`` variables, the rest)."""
            _, params, rest = nnx.split(nnx.merge(graphdef, state), nnx.Param, ...)
            return nnx.to_pure_dict(params), nnx.to_pure_dict(rest)

        def loss_fn(params: Any, rest: Any, x: Any, y: Any) -> tuple[Any, Any]:
            module = nnx.merge(graphdef, params, rest)
            logits = module(x)  # updates the running statistics in ``module``
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param)))

        @jax.jit
        def update(state: Any, opt_state: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
            params, rest = partition(state)
            (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            # Back to one pure dict, nested as ``state`` was, so ``forward`` does not retrace.
            return nnx.to_pure_dict(nnx.state(nnx.merge(graphdef, params, rest))), opt_state, loss

        # Compiled, like the step: eagerly, every zeros_like would be compiled on its own.
        # Committed to the device like the step's outputs, or the second step, seeing
        # differently placed arguments, would compile the step again.
        init = jax.jit(lambda state: tx.init(partition(state)[0]))
        opt_state = [jax.device_put(init(m.params), m.device)]

        def step(x: np.ndarray, y: np.ndarray) -> float:
            xb = jax.device_put(np.asarray(x, dtype=np.float32), m.device)
            # Labels as int32: JAX runs without 64-bit types unless told otherwise.
            yb = jax.device_put(np.asarray(y, dtype=np.int32), m.device)
            m.params, opt_state[0], loss = update(m.params, opt_state[0], xb, yb)
            return float(loss)

        return step

    def _gan_train_step(self, m: JaxModel, train: TrainSpec) -> TrainStep:
        """DCGAN's step (see :meth:`Adapter.make_train_step`) as one jitted function.

        The generator runs once, on a training view (batch statistics), through
        ``jax.vjp``: that gives ``fake``, the moved running statistics (its auxiliary
        output, kept once per step) and the function that pulls a gradient on ``fake``
        back to the generator's parameters. The discriminator's loss sees ``fake`` as a
        constant (``jax.lax.stop_gradient``); its Adam update gives the new
        discriminator, whose non-saturating loss ``BCE(D'(fake), 1)`` is differentiated
        with respect to ``fake`` only and pulled back through the saved vjp, which is
        PyTorch's ``backward`` through the one ``fake`` graph: no second generator
        forward, so the running statistics cannot move twice, and D' is left unchanged.

        Each network has an optax Adam of its own over its ``nnx.Param`` variables
        (the discriminator has no other kind); the loss is optax's mean sigmoid binary
        cross-entropy of the logits, computed from log-sigmoids as PyTorch's
        ``BCEWithLogitsLoss`` is. The returned loss is the discriminator's, before
        either update.
        """
        jax = _import_jax()
        import jax.numpy as jnp
        import optax
        from flax import nnx

        from models.flax_models import training_view

        view = training_view(nnx.merge(m.graphdef, m.params))
        gen_def, disc_def = nnx.graphdef(view.gen), nnx.graphdef(view.disc)
        tx = _adam(train)

        def bce(logits: Any, label: float) -> Any:
            return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()

        def generate(params: Any, rest: Any, z: Any) -> tuple[Any, Any]:
            module = nnx.merge(gen_def, params, rest)
            fake = module(z)  # updates the running statistics in ``module``
            return fake, nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param)))

        def discriminate(params: Any, images: Any) -> Any:
            return nnx.merge(disc_def, params)(images)

        def split_gen(state: Any) -> tuple[Any, Any]:
            _, params, rest = nnx.split(nnx.merge(gen_def, state), nnx.Param, ...)
            return nnx.to_pure_dict(params), nnx.to_pure_dict(rest)

        @jax.jit
        def update(state: Any, opt_g: Any, opt_d: Any, real: Any, z: Any) -> tuple[Any, ...]:
            g_params, g_rest = split_gen(state["gen"])
            d_params = state["disc"]
            fake, pull_back, g_rest = jax.vjp(
                lambda p: generate(p, g_rest, z), g_params, has_aux=True
            )
            detached = jax.lax.stop_gradient(fake)

            def d_loss_fn(p: Any) -> Any:
                return bce(discriminate(p, real), 1.0) + bce(discriminate(p, detached), 0.0)

            d_loss, d_grads = jax.value_and_grad(d_loss_fn)(d_params)
            d_updates, opt_d = tx.update(d_grads, opt_d, d_params)
            d_params = optax.apply_updates(d_params, d_updates)

            d_fake = jax.grad(lambda f: bce(discriminate(d_params, f), 1.0))(fake)
            (g_grads,) = pull_back(d_fake)
            g_updates, opt_g = tx.update(g_grads, opt_g, g_params)
            g_params = optax.apply_updates(g_params, g_updates)
            # Nested as ``state`` was, so that ``forward`` does not retrace.
            gen = nnx.to_pure_dict(nnx.state(nnx.merge(gen_def, g_params, g_rest)))
            return {"gen": gen, "disc": d_params}, opt_g, opt_d, d_loss

        # Compiled and committed to the device, as in make_train_step.
        init_g = jax.jit(lambda state: tx.init(split_gen(state["gen"])[0]))
        init_d = jax.jit(lambda state: tx.init(state["disc"]))
        opt = [
            jax.device_put(init_g(m.params), m.device),
            jax.device_put(init_d(m.params), m.device),
        ]

        def step(x: np.ndarray, z: np.ndarray) -> float:
            real = jax.device_put(np.asarray(x, dtype=np.float32), m.device)
            zb = jax.device_put(np.asarray(z, dtype=np.float32), m.device)
            m.params, opt[0], opt[1], loss = update(m.params, opt[0], opt[1], real, zb)
            return float(loss)

        return step

    def discriminate(self, model: JaxModel, images: np.ndarray) -> np.ndarray:
        """The GAN's discriminator logits, from a jitted function over the current
        parameters (made on first use, like :meth:`forward`)."""
        jax = _import_jax()
        from flax import nnx

        m = _model(model)
        if m.discriminator is None:
            graphdef = m.graphdef

            def disc(params: Any, x: Any) -> Any:
                return nnx.merge(graphdef, params).disc(x)

            m.discriminator = jax.jit(disc)
        return np.asarray(m.discriminator(m.params, self.to_device(m, images)), dtype=np.float32)

    # -- export -------------------------------------------------------------------------
    def export_onnx(self, model: JaxModel, spec: ModelSpec, path: Path) -> dict[str, Any] | None:
        """ONNX with input ``input`` and output ``logits`` (``images`` for the GAN, whose
        export holds the generator: what calling the module runs), both with a ``batch``
        axis.

        jax2onnx traces the merged module with a symbolic batch dimension and writes the
        parameters as initializers. The LSTM's ``lax.scan`` becomes an ONNX ``Loop``
        whose body holds the recurrent matrix product. The module is the inference-mode
        one, and jax2onnx writes each ``nnx.BatchNorm`` as an inference-form ONNX
        ``BatchNormalization`` on the running statistics (see :func:`_repair_shapes` for
        the shape annotations of the result). Nodes computing on weights alone (the GAN's
        kernel flips) are folded into initializers (:func:`_fold_weight_nodes`), which
        the returned notes count.
        """
        _import_jax()
        import onnx
        from flax import nnx
        from jax2onnx import to_onnx

        m = _model(model)
        module = nnx.merge(m.graphdef, m.params)
        with _export_quiet():
            proto = to_onnx(
                module,
                inputs=[(BATCH_AXIS, *spec.input_shape)],
                opset=ONNX_OPSET,
                input_names=[INPUT_NAME],
                output_names=[self.output_name(spec)],
                model_name=f"xfbench_{spec.slug}",
            )
        folded = _fold_weight_nodes(proto)
        onnx.save(_repair_shapes(proto), str(path))
        return {"folded_weight_nodes": folded} if folded else None
