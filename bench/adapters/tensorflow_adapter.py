"""The TensorFlow / Keras 3 adapter.

Models are Keras functional models built by :mod:`models.keras_models` (which also owns
the canonical <-> Keras weight layouts). ONNX export goes through
``tf2onnx.convert.from_function`` on a ``tf.function`` of the model.

Modes (the benchmark's ``runtime`` names):

* ``function``: the model called inside a ``tf.function`` graph, traced once for any
  batch size (the input signature leaves the batch axis free). :meth:`infer`, the zoo and
  the export use it.
* ``xla``: the same function with ``jit_compile=True``: XLA compiles the whole graph,
  once per input shape (XLA needs static shapes; the first call with a new batch size
  compiles).
* ``eager``: the Keras model called op by op, without ``tf.function``.

Training has the ``function`` and ``xla`` modes: one ``tf.function`` step (forward, loss,
gradient, Adam update), without or with ``jit_compile``; the GAN's step (both networks'
updates) is one such function too.

The GAN's model (:func:`models.keras_models.build_model`) runs its generator when called,
so every mode and the export generate images (the export's output is ``images``); its
discriminator is ``model.disc`` (:meth:`TensorFlowAdapter.discriminate`).

Keras models have no persistent train/eval switch: every forward function and the export
call the model with ``training=False`` (batch normalisation by its running statistics),
the training step with ``training=True`` (batch statistics, running statistics updated
inside the step, under ``jit_compile`` too).

Every mode reads the model's variables when it runs (graphs capture variables, not their
values), so weights set after a forward function was made are the ones it uses.

TensorFlow is imported only inside methods (via :func:`models.keras_models.import_tensorflow`,
which also keeps its C++ logging quiet), so importing this module imports no framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.adapters.base import Adapter, TrainStep
from models import keras_models
from models.spec import IMAGE_SIZE, ModelSpec, TrainSpec

if TYPE_CHECKING:
    import keras

#: Our device names -> TensorFlow's.
_TF_DEVICES = {"cpu": "/CPU:0", "cuda": "/GPU:0"}


def tf_device_kind(device: str) -> str:
    """Our name for the device of a TensorFlow device string
    (``/job:localhost/replica:0/task:0/device:GPU:0`` -> ``cuda``); another kind by its
    own name in lower case (``tpu``), never a guess."""
    kind = device.rsplit("device:", 1)[-1].split(":")[0] if "device:" in device else ""
    if not kind:
        raise ValueError(f"not a TensorFlow device string: {device!r}")
    return {"CPU": "cpu", "GPU": "cuda"}.get(kind, kind.lower())


def allow_memory_growth(gpus: list[Any]) -> dict[str, bool]:
    """Turn on memory growth for each of ``gpus`` (TensorFlow's ``PhysicalDevice``s);
    returns it per device name.

    By default TensorFlow reserves almost all of every GPU's memory when its runtime
    starts, starving any other GPU user in its process. With growth it allocates what
    it uses. The setting is read when the runtime starts, so it must come before any
    TensorFlow op: :meth:`TensorFlowAdapter.devices` makes it, since listing the
    physical devices is the adapter's first call on TensorFlow's devices (it does not
    start the runtime) and :meth:`~TensorFlowAdapter.build` goes through it. Asked
    again once the runtime runs, TensorFlow accepts the setting already in effect.
    Where the runtime was started without growth, ``TF_FORCE_GPU_ALLOW_GROWTH=true``
    (what the benchmark's workers set) turns it on anyway; otherwise the request is
    refused rather than silently ignored.
    """
    tf = keras_models.import_tensorflow()
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:
            if os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "").lower() == "true":
                continue  # TensorFlow's allocator takes the variable over the setting
            raise RuntimeError(
                f"cannot turn on memory growth for TensorFlow's {gpu.name}: its runtime "
                "is already initialised without it, so it has reserved most of the GPU's "
                "memory; list the adapter's devices (or build a model) before any "
                "TensorFlow op, or set TF_FORCE_GPU_ALLOW_GROWTH=true before TensorFlow "
                "starts"
            ) from exc
    return {gpu.name: bool(tf.config.experimental.get_memory_growth(gpu)) for gpu in gpus}


def apply_gpu_settings() -> dict[str, Any]:
    """Strict float32 on GPUs (TensorFloat-32 off), process-wide; returns what is in
    effect, memory growth included. Called when a model (or the GEMM) is placed on a
    GPU; idempotent.

    TensorFlow enables TF32 by default. The worker's ``NVIDIA_TF32_OVERRIDE=0`` stops
    NVIDIA's libraries from using it, but not the kernels XLA generates itself (the
    ``xla`` mode): TensorFlow compiles its matrix products and convolutions at XLA's
    highest precision only with TF32 execution disabled, which is what this does, as
    the other frameworks' strict float32 settings do.
    """
    tf = keras_models.import_tensorflow()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return {
        "tf.config.experimental.tensor_float_32_execution_enabled": (
            tf.config.experimental.tensor_float_32_execution_enabled()
        ),
        "memory_growth": allow_memory_growth(tf.config.list_physical_devices("GPU")),
        "TF_FORCE_GPU_ALLOW_GROWTH": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "unset"),
    }


#: ONNX opset of the export: supported by every ONNX Runtime in use and by tf2onnx 1.16+,
#: and new enough for an LSTM node and opset-13 style Reshape/Squeeze.
ONNX_OPSET = 17
INPUT_NAME = "input"


@dataclass
class _Runtime:
    """Per-model adapter state, stored on the Keras model as ``_xfbench``.

    A plain (non-trackable) object on purpose: Keras and TensorFlow's tracking would wrap
    a dict or adopt a bare ``tf.function`` as a dependency of the model.
    """

    spec: ModelSpec
    device: str  # TensorFlow device string, e.g. "/CPU:0"
    #: One traced forward function (a ``ConcreteFunction``) per graph mode, made on
    #: first use, and the ``tf.function`` it came from (kept alive with the model).
    graphs: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)


def _runtime(model: keras.Model) -> _Runtime:
    rt = getattr(model, "_xfbench", None)
    if not isinstance(rt, _Runtime):
        raise TypeError("not a model built by TensorFlowAdapter.build()")
    return rt


def _adam(rt: _Runtime, train: TrainSpec, variables: list[Any]) -> Any:
    """Keras's Adam with ``train``'s constants, its moment slots for ``variables``
    created now, eagerly and on the model's device: a ``tf.function`` may only create
    variables on its first trace, and they belong beside the weights."""
    tf = keras_models.import_tensorflow()
    import keras

    optimizer = keras.optimizers.Adam(
        learning_rate=train.learning_rate,
        beta_1=train.beta1,
        beta_2=train.beta2,
        epsilon=train.epsilon,
    )
    with tf.device(rt.device):
        optimizer.build(variables)
    return optimizer


class TensorFlowAdapter(Adapter):
    """Keras 3 models run as ``tf.function`` graphs, exported with tf2onnx."""

    name: ClassVar[str] = "tensorflow"
    package: ClassVar[str] = "tensorflow"
    exporter: ClassVar[str] = f"tf2onnx.convert.from_function (opset {ONNX_OPSET})"
    distributions: ClassVar[tuple[str, ...]] = (
        "tensorflow",
        "keras",
        "tf2onnx",
        "numpy",
        "onnx",
        "onnxruntime",
    )
    distribution_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "onnxruntime": ("onnxruntime-gpu",),
        "tensorflow": ("tensorflow-cpu",),
    }
    environments: ClassVar[Mapping[str, str]] = {"cpu": "tensorflow", "cuda": "tensorflow-gpu"}

    modes: ClassVar[tuple[str, ...]] = ("function", "xla", "eager")
    train_modes: ClassVar[tuple[str, ...]] = ("function", "xla")
    color: ClassVar[str | None] = "#0072B2"
    mode_notes: ClassVar[Mapping[str, str]] = {
        "function": "tf.function graph (TensorFlow's executor), traced once for every batch size",
        "xla": "tf.function(jit_compile=True): XLA-compiled, one compilation per batch size",
        "eager": "the Keras model called op by op, without tf.function",
    }

    def __init__(self) -> None:
        self._gpus: bool | None = None  # whether TensorFlow sees a GPU (asked once)

    # -- capabilities -------------------------------------------------------------------
    def import_framework(self) -> None:
        """TensorFlow and Keras 3 (a package of its own, imported with the models)."""
        keras_models.import_tensorflow()

    def devices(self) -> list[str]:
        """``cpu``, plus ``cuda`` when this TensorFlow build sees a GPU, whose memory
        growth it turns on (:func:`allow_memory_growth`).

        Listing physical devices and setting their memory growth do not initialise
        TensorFlow's runtime context, so :meth:`set_threads` may still be called
        afterwards.
        """
        tf = keras_models.import_tensorflow()
        gpus = tf.config.list_physical_devices("GPU")
        allow_memory_growth(gpus)
        return ["cpu", "cuda"] if gpus else ["cpu"]

    def set_threads(self, n: int) -> None:
        """``n`` intra-op threads and one inter-op thread.

        The benchmark models are chains of ops with no branches to run side by side, so a
        second inter-op pool would add threads without adding work, and would make "n
        threads" mean more than n for TensorFlow than for the other frameworks.
        TensorFlow fixes both pools when its runtime starts; changing them later raises
        (an equal value is accepted, since it is already in effect).
        """
        if n < 1:
            raise ValueError(f"thread count must be at least 1, got {n}")
        tf = keras_models.import_tensorflow()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot set TensorFlow to {n} threads: its runtime is already initialised "
                f"(intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
                f"inter-op {tf.config.threading.get_inter_op_parallelism_threads()}; 0 "
                "means TensorFlow's default); call set_threads before any TensorFlow op"
            ) from exc

    # -- models and weights -------------------------------------------------------------
    def build(self, spec: ModelSpec, device: str = "cpu") -> keras.Model:
        """The Keras model for ``spec`` with its variables created on ``device``; on a
        GPU in strict float32 (:func:`apply_gpu_settings`)."""
        tf = keras_models.import_tensorflow()
        valid = self.devices()
        if device not in valid:
            raise ValueError(
                f"unknown or unavailable device {device!r} for tensorflow; "
                f"valid devices: {', '.join(valid)}"
            )
        if device == "cuda":
            apply_gpu_settings()
        with tf.device(_TF_DEVICES[device]):
            model = keras_models.build_model(spec)
        model._xfbench = _Runtime(spec, _TF_DEVICES[device])
        return model

    def get_weights(self, model: keras.Model) -> dict[str, np.ndarray]:
        """Canonical weights; layouts are converted in :mod:`models.keras_models`."""
        return keras_models.from_keras(_runtime(model).spec, model)

    def set_weights(self, model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
        """Assign canonical weights in place, so compiled graphs keep using them."""
        keras_models.to_keras(_runtime(model).spec, model, weights)

    def param_count(self, model: keras.Model) -> int:
        """Sizes of Keras's own trainable variables, not of the spec, so a layer built
        with the wrong shape or an extra variable shows up as a mismatch."""
        return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))

    # -- running ------------------------------------------------------------------------
    def to_device(self, model: keras.Model, x: np.ndarray) -> Any:
        """``x`` as a float32 tensor on the model's device.

        Eager ``convert_to_tensor`` leaves the data in host memory; the ``identity`` under
        the device scope is what copies it to a GPU, so the copy is not timed in infer.
        """
        tf = keras_models.import_tensorflow()
        with tf.device(_runtime(model).device):
            return tf.identity(tf.convert_to_tensor(np.asarray(x, dtype=np.float32)))

    def infer(self, model: keras.Model, x: Any) -> Any:
        """Logits as a TensorFlow tensor, from the ``function`` mode's graph."""
        return self.forward(model, self.modes[0])(x)

    def forward(self, model: keras.Model, mode: str) -> Callable[[Any], Any]:
        """The mode's forward function (see the module docstring).

        The graph modes return the concrete function of a ``tf.function``, traced once per
        model and mode (here, when it is first asked for); its signature leaves the batch
        axis free, so ``function`` serves every batch size with one graph and ``xla``
        compiles once per batch size, on the first call with it. ``eager`` calls the Keras
        model, under the model's device scope only where that is not where TensorFlow
        would place the ops anyway (entering the scope costs a few microseconds a call).
        """
        self.check_mode(mode)
        rt = _runtime(model)
        if mode == "eager":
            if rt.device == _TF_DEVICES[self._default_device()]:
                return lambda x: model(x, training=False)
            tf = keras_models.import_tensorflow()

            def placed(x: Any) -> Any:
                with tf.device(rt.device):
                    return model(x, training=False)

            return placed
        fn = rt.graphs.get(mode)
        if fn is None:
            graph = self._graph(
                model, rt, lambda x: model(x, training=False), jit_compile=mode == "xla"
            )
            # Called through its concrete function (the traced graph for the signature,
            # what a SavedModel's serving signatures are): the same graph and, for xla,
            # the same XLA executable, without tf.function's per-call argument binding
            # and trace-cache lookup. Measured at batch 1: 60 us less per call in
            # "function" mode, 100 us (half the call) in "xla" mode.
            fn = graph.get_concrete_function()
            rt.graphs[mode], rt.functions[mode] = fn, graph
        return fn

    def _default_device(self) -> str:
        """Where TensorFlow places an op without a device scope: the GPU if it sees one."""
        if self._gpus is None:
            self._gpus = "cuda" in self.devices()
        return "cuda" if self._gpus else "cpu"

    def wait(self, y: Any) -> None:
        """Wait for GPU kernels, which return as soon as they are enqueued; a no-op for
        results on the CPU, where TensorFlow executes synchronously (a device sync there
        would cost every call tens of microseconds for nothing)."""
        if self._default_device() == "cuda" and "GPU" in y.device:
            tf = keras_models.import_tensorflow()
            tf.test.experimental.sync_devices()

    def to_numpy(self, y: Any) -> np.ndarray:
        """Host copy of a tensor; ``.numpy()`` waits for the kernels producing it."""
        return y.numpy() if hasattr(y, "numpy") else np.asarray(y)

    def gpu_settings(self) -> dict[str, Any]:
        return apply_gpu_settings()

    def output_device(self, y: Any) -> str:
        return tf_device_kind(y.device)

    def gemm(self, n: int, device: str = "cpu") -> Any:
        tf = keras_models.import_tensorflow()
        if device not in self.devices():
            raise ValueError(f"device {device!r} is not available to TensorFlow here")
        if device == "cuda":
            apply_gpu_settings()  # strict float32, like the models
        rng = np.random.RandomState(0)
        with tf.device(_TF_DEVICES[device]):
            a = tf.identity(tf.constant(rng.rand(n, n), tf.float32))
            b = tf.identity(tf.constant(rng.rand(n, n), tf.float32))
        matmul = tf.function(lambda: tf.linalg.matmul(a, b))

        def run() -> Any:
            c = matmul()
            tf.test.experimental.sync_devices()  # GPU kernels return before they finish
            return c

        return run

    def make_train_step(
        self, model: keras.Model, train: TrainSpec, mode: str | None = None
    ) -> TrainStep:
        """One Adam step on the mean sparse softmax cross-entropy of the logits, as a
        ``tf.function`` (``function``) or an XLA-compiled one (``xla``, compiled once per
        batch size, the optimizer's update included, as Keras's own
        ``compile(jit_compile=True)`` does). The model runs with ``training=True``: batch
        normalisation by batch statistics, its running statistics (non-trainable
        variables, not handed to the optimizer) updated by the step.

        Keras's Adam, like MXNet's, adds ``epsilon`` to the un-bias-corrected ``sqrt(v)``
        (PyTorch adds it after the correction); with epsilon 1e-8 the difference is far
        below what training accuracy can show.

        The GAN's step is DCGAN's instead (:meth:`_gan_train_step`).
        """
        mode = self.check_mode(mode or self.train_modes[0], training=True)
        tf = keras_models.import_tensorflow()

        rt = _runtime(model)
        if rt.spec.arch == "gan":
            return self._gan_train_step(model, train, mode)
        variables = model.trainable_variables
        optimizer = _adam(rt, train, variables)

        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                )
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        # Called through its concrete function, as the forward functions are.
        function = self._graph(
            model, rt, step, tf.TensorSpec((None,), tf.int64), jit_compile=mode == "xla"
        )
        compiled = function.get_concrete_function()
        to_tensor = tf.convert_to_tensor

        def train_step(x: np.ndarray, y: np.ndarray) -> float:
            loss = compiled(to_tensor(x, tf.float32), to_tensor(y, tf.int64))
            return float(loss)

        train_step.tf_function = function  # kept alive as long as the step

        return train_step

    def _gan_train_step(self, model: keras.Model, train: TrainSpec, mode: str) -> TrainStep:
        """DCGAN's step (see :meth:`Adapter.make_train_step`) as one ``tf.function``.

        The generator runs once, with ``training=True``, under an outer tape that stays
        open for the whole step: Keras's batch normalisation assigns its running
        statistics inside the call, so a second forward pass for the generator's loss
        would move them twice. The discriminator's loss sees ``stop_gradient(fake)``
        and its gradient comes from an inner tape; its update and that gradient run with
        the outer tape paused, so the outer tape records only the generator's forward
        pass and its loss through the discriminator. That loss reads the discriminator's
        variables after their update (``tf.function`` runs stateful ops in program order,
        under ``jit_compile`` too), and only the generator's variables get its gradient.
        Each network has its own Adam; mean binary cross-entropy of the logits. Keras's
        batch normalisation moves its running variance towards the biased batch
        variance, as the spec's does.

        Tracing the ``function`` mode's step logs ``remapper failed: ... fanout
        '...LeakyReluGrad' exist for missing node '...BiasAdd'`` (TF 2.21): Grappler's
        remapper fuses one of the discriminator's convolution + bias + leaky ReLU
        chains although the ReLU's gradient still reads the bias's output, fails, and
        Grappler goes on without that pass's rewrites. A log line and lost fusions, not
        wrong results (the kit checks them); ``xla`` does not use the remapper.
        """
        tf = keras_models.import_tensorflow()

        rt = _runtime(model)
        gen, disc = model.gen, model.disc
        g_vars, d_vars = gen.trainable_variables, disc.trainable_variables
        opt_g, opt_d = _adam(rt, train, g_vars), _adam(rt, train, d_vars)

        def bce(logits: Any, label: float) -> Any:
            labels = tf.fill(tf.shape(logits), label)
            return tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            )

        def step(real: Any, z: Any) -> Any:
            with tf.GradientTape() as g_tape:
                fake = gen(z, training=True)
                with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                    d_loss = bce(disc(real, training=True), 1.0) + bce(
                        disc(tf.stop_gradient(fake), training=True), 0.0
                    )
                with g_tape.stop_recording():
                    d_grads = d_tape.gradient(d_loss, d_vars)
                    opt_d.apply_gradients(zip(d_grads, d_vars, strict=True))
                g_loss = bce(disc(fake, training=True), 1.0)
            g_grads = g_tape.gradient(g_loss, g_vars)
            opt_g.apply_gradients(zip(g_grads, g_vars, strict=True))
            return d_loss

        images = tf.TensorSpec((None, 1, IMAGE_SIZE, IMAGE_SIZE), tf.float32)
        latent = tf.TensorSpec((None, *rt.spec.input_shape), tf.float32)
        function = self._graph(model, rt, step, latent, jit_compile=mode == "xla", first=images)
        compiled = function.get_concrete_function()
        to_tensor = tf.convert_to_tensor

        def train_step(x: np.ndarray, z: np.ndarray) -> float:
            return float(compiled(to_tensor(x, tf.float32), to_tensor(z, tf.float32)))

        train_step.tf_function = function  # kept alive as long as the step
        return train_step

    def discriminate(self, model: keras.Model, images: np.ndarray) -> np.ndarray:
        """The discriminator's logits, from the Keras model called eagerly on the
        model's device (a check, not a timed path)."""
        tf = keras_models.import_tensorflow()
        rt = _runtime(model)
        if rt.spec.arch != "gan":
            raise ValueError(f"{rt.spec.name} has no discriminator")
        x = self.to_device(model, images)
        with tf.device(rt.device):
            return self.to_numpy(model.disc(x, training=False)).astype(np.float32)

    @staticmethod
    def _graph(
        model: keras.Model,
        rt: _Runtime,
        fn: Callable,
        *extra_specs: Any,
        jit_compile: bool = False,
        first: Any = None,
    ) -> Any:
        """``fn`` as a ``tf.function`` taking a float32 batch (any size) of the model's
        input, or ``first`` (a ``TensorSpec``) where given, plus ``extra_specs``, with
        its ops placed on the model's device; XLA-compiled (per input shape) with
        ``jit_compile``."""
        tf = keras_models.import_tensorflow()
        if first is None:
            first = tf.TensorSpec((None, *rt.spec.input_shape), tf.float32)
        signature = [first, *extra_specs]

        def placed(*args: Any) -> Any:
            with tf.device(rt.device):
                return fn(*args)

        return tf.function(placed, input_signature=signature, jit_compile=jit_compile)

    # -- export -------------------------------------------------------------------------
    def export_onnx(self, model: keras.Model, spec: ModelSpec, path: Path) -> None:
        """ONNX with input ``input`` and output ``logits`` (``images`` for the GAN's
        generator, :meth:`output_name`), both with a ``batch`` axis.

        ``tf2onnx.convert.from_keras`` does not work with Keras 3, and
        ``model.export(format="onnx")`` wraps the same ``from_function`` without a way to
        name the output; converting our own function names both ends (the input after its
        ``TensorSpec``, the output after the returned dict's key) and writes no files but
        ``path``. tf2onnx calls a free axis ``unk__N``; it is renamed ``batch`` so the
        exports of every framework read alike.
        """
        tf = keras_models.import_tensorflow()
        import onnx
        import tf2onnx

        signature = [tf.TensorSpec((None, *spec.input_shape), tf.float32, name=INPUT_NAME)]
        forward = tf.function(
            lambda x: {self.output_name(spec): model(x, training=False)},
            input_signature=signature,
        )
        proto, _ = tf2onnx.convert.from_function(
            forward, input_signature=signature, opset=ONNX_OPSET
        )
        graph = proto.graph
        ends = (graph.input[0], graph.output[0])
        free = {v.type.tensor_type.shape.dim[0].dim_param for v in ends} - {""}
        for value in (*graph.input, *graph.output, *graph.value_info):
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in free:
                    dim.dim_param = "batch"
        onnx.save(proto, str(path))
