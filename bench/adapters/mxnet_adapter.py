"""The MXNet (Gluon) adapter.

MXNet is imported inside methods only, so importing the harness imports no framework.

Modes (the benchmark's ``runtime`` names), for inference and training alike:

* ``hybrid``: the Gluon block hybridized with ``static_alloc=True, static_shape=True``,
  MXNet's fastest mode: one cached graph with its memory planned once. A static shape
  means the graph is re-bound when the batch size changes: one bind per new shape, not
  a wrong answer. :meth:`MXNetAdapter.infer`, the zoo and the export use it.
* ``imperative``: the same block run op by op, as Gluon runs a block that was never
  hybridized.

Hybridizing is a property of the block (and it sticks: once a block has run hybridized,
un-hybridizing it means dropping its cached graph), so one block cannot serve both modes.
:meth:`MXNetAdapter.build` returns the block un-hybridized: that is the model, and the
``imperative`` mode runs it. The ``hybrid`` mode runs a second block of the same model
made on first use and kept with it, built on the model's own ``Parameter`` objects and
hybridized once: both modes compute with the same weights, arrays and gradients (a weight
set, or a training step taken, in either mode is seen by the other), and neither ever
switches the other's execution mode.

ONNX export goes through ``mx.onnx.export_model`` with two repairs to its output, both
returned by :meth:`MXNetAdapter.export_onnx` as notes for the manifest:

* The exporter asks ``onnx.defs.onnx_opset_version()`` for its opset, but its
  translations stop at opset 13; with onnx 1.15 it would stamp opset 20 on an opset-13
  graph, which ONNX Runtime refuses for the LSTM. The opset is held at 13 during export.
* It lists every initializer among the graph inputs as well, which makes the weights
  overridable inputs and stops ONNX Runtime from constant-folding them; they are removed
  from ``graph.input``.

The ResNet's ``BatchNorm`` exports as ONNX ``BatchNormalization`` in inference form
(running statistics, the ``eps`` MXNet's symbol carries). mx.onnx ignores the operator's
``fix_gamma`` and always exports gamma (apache/mxnet#9624 on that attribute): right for
Gluon's ``scale=True`` (``fix_gamma=False``), which ``models/mxnet_models.py`` uses; the
zoo's ONNX parity check, on the trained gammas and statistics, covers it.

The GAN (``models/mxnet_models.py``, ``GAN``) is a plain ``Block`` over two
``HybridBlock`` networks: calling it, in either mode, runs the generator, and the export
is the hybridized generator's graph (``Deconvolution`` exports as ``ConvTranspose``).
Its training step runs a third block on the same parameters, a *training view* per
mode, whose last transposed convolution is computed with operators MXNet 1.9.1 can
differentiate (the oneDNN backward of a one-channel ``Deconvolution`` fails); see
:meth:`MXNetAdapter._gan_train_view`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.adapters.base import Adapter, TrainStep, UnsupportedError
from models.spec import ModelSpec, TrainSpec

#: The newest opset mx.onnx (MXNet 1.9.1) has translations for.
ONNX_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

#: MXNet 1.9.1's CUDA builds, by distribution: the newest GPU architecture (compute
#: capability) their CUDA toolkit can compile kernels for. mxnet-cu112 is MXNet's last
#: CUDA build; later architectures (the H100's 9.0, from CUDA 11.8) have no kernels in
#: any MXNet build, and MXNet is retired (in the Apache Attic): none will come.
CUDA_BUILDS = {
    "mxnet-cu112": (86, "11.2"),
    "mxnet-cu110": (80, "11.0"),
    "mxnet-cu102": (75, "10.2"),
}
#: Per GPU index, what :func:`check_gpu` found, once per process: why MXNet cannot run on
#: it (``None``: it can) and the card and build. A GPU that failed is not tried again (a
#: failed CUDA call can leave MXNet's device context unusable).
_gpu_checks: dict[int, tuple[str | None, dict[str, Any]]] = {}


@dataclass(eq=False)
class _Runtime:
    """Per-model adapter state, stored on the (un-hybridized) model as ``_xfbench``: a
    plain object, since a Gluon block registers any block assigned to it as a child."""

    hybrid: Any = None  # the hybridized block sharing the model's parameters
    #: The GAN's training views by mode (models/mxnet_models.py, GAN): blocks on the
    #: model's parameters whose generator the training step can differentiate.
    train_views: dict[str, Any] = field(default_factory=dict)


class MXNetAdapter(Adapter):
    name = "mxnet"
    package = "mxnet"
    exporter = f"mx.onnx (opset {ONNX_OPSET})"
    distributions: ClassVar[tuple[str, ...]] = ("mxnet", "numpy", "onnx", "onnxruntime")
    # MXNet's CUDA builds are distributions of their own; 1.9.1's newest is cu112.
    distribution_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "onnxruntime": ("onnxruntime-gpu",),
        "mxnet": ("mxnet-cu112", "mxnet-cu110", "mxnet-cu102"),
    }
    environments: ClassVar[Mapping[str, str]] = {"cpu": "mxnet", "cuda": "mxnet-gpu"}
    models: ClassVar[tuple[str, ...]] = ("cnn", "lstm", "mlp", "resnet", "gan")
    modes: ClassVar[tuple[str, ...]] = ("hybrid", "imperative")
    train_modes: ClassVar[tuple[str, ...]] = ("hybrid", "imperative")
    color: ClassVar[str | None] = "#009E73"
    mode_notes: ClassVar[Mapping[str, str]] = {
        "hybrid": (
            "Gluon block hybridized (static_alloc=True, static_shape=True): a cached "
            "graph, re-bound once per batch size; GAN training: see imperative"
        ),
        "imperative": (
            "the Gluon block run op by op (not hybridized); in both modes the GAN's "
            "training step computes its one-channel transposed convolution as a grouped "
            "one plus a sum, since MXNet 1.9.1's oneDNN backward of it fails"
        ),
    }

    # -- capabilities -------------------------------------------------------------------
    def devices(self) -> list[str]:
        import mxnet as mx

        try:
            gpus = mx.context.num_gpus()
        except mx.base.MXNetError:  # some CPU builds fail the query instead of answering 0
            gpus = 0
        return ["cpu", "cuda"] if gpus > 0 else ["cpu"]

    def set_threads(self, n: int) -> None:
        """Size MXNet's OpenMP pool; only possible before ``mxnet`` is first imported.

        MXNet reads its thread count once, when the library loads (``MXNET_OMP_MAX_THREADS``,
        else ``OMP_NUM_THREADS``), and its operators then run on engine worker threads
        with that cached count. The only runtime call, ``MXSetNumOMPThreads``, sets the
        OpenMP count of the calling (Python) thread alone, so it cannot change what the
        operators use: once mxnet is loaded the request is refused rather than ignored.
        """
        if n < 1:
            raise ValueError(f"thread count must be at least 1, got {n}")
        if "mxnet" in sys.modules:
            raise RuntimeError(
                "MXNet is already imported and fixes its OpenMP thread count at import; "
                "call set_threads() before anything imports mxnet"
            )
        for var in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n)
        # One engine worker runs one operator at a time, each on n OpenMP threads: n in all.
        os.environ["MXNET_CPU_WORKER_NTHREADS"] = "1"

    # -- models and weights -------------------------------------------------------------
    def build(self, spec: ModelSpec, device: str = "cpu") -> Any:
        """The Gluon block on ``device``. On a GPU MXNet's kernels are tried first
        (:func:`check_gpu`): a card this MXNet build has no kernels for raises
        :class:`UnsupportedError` with the reason, which the benchmark records as
        ``unsupported`` rather than as an error."""
        import mxnet as mx

        from models.mxnet_models import build_model

        valid = self.devices()
        if device not in valid:
            raise ValueError(
                f"device {device!r} is not available to MXNet here; valid devices: "
                f"{', '.join(valid)}"
            )
        if device == "cuda":
            check_gpu(0)
        model = build_model(spec, mx.gpu(0) if device == "cuda" else mx.cpu())
        # The spec travels with the model: weight conversion and export need its names.
        model.xfbench_spec = spec
        model._xfbench = _Runtime()
        return model

    def _block(self, model: Any, mode: str) -> Any:
        """The block running ``mode``: the model itself (imperative) or its hybridized
        twin on the same parameters, made and hybridized on first use."""
        if mode == "imperative":
            return model
        rt = model._xfbench
        if rt.hybrid is None:
            from models.mxnet_models import build_model

            twin = build_model(model.xfbench_spec, share=model)
            twin.hybridize(static_alloc=True, static_shape=True)
            twin.xfbench_spec = model.xfbench_spec
            rt.hybrid = twin
        return rt.hybrid

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        from models.mxnet_models import get_canonical_weights

        return get_canonical_weights(model, model.xfbench_spec)

    def set_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        from models.mxnet_models import set_canonical_weights

        set_canonical_weights(model, model.xfbench_spec, weights)

    def param_count(self, model: Any) -> int:
        return sum(p.data().size for p in model.collect_params().values() if p.grad_req != "null")

    # -- running ------------------------------------------------------------------------
    def to_device(self, model: Any, x: np.ndarray) -> Any:
        import mxnet as mx

        return mx.nd.array(x, ctx=_context(model), dtype=np.float32)

    def infer(self, model: Any, x: Any) -> Any:
        # Outside autograd.record() Gluon runs in predict mode; the cached graph is used.
        return self._block(model, self.modes[0])(x)

    def forward(self, model: Any, mode: str) -> Any:
        """The block running ``mode`` (see the module docstring), itself: calling it is
        the forward pass, nothing else added. MXNet returns as soon as the work is queued
        on its engine: :meth:`wait` waits for it."""
        return self._block(model, self.check_mode(mode))

    def wait(self, y: Any) -> None:
        """MXNet's engine is asynchronous on every device: wait for this result."""
        y.wait_to_read()

    def to_numpy(self, y: Any) -> np.ndarray:
        return y.asnumpy()

    def gpu_settings(self) -> dict[str, Any]:
        return check_gpu(0)

    def output_device(self, y: Any) -> str:
        kind = y.context.device_type  # "cpu", "gpu", "cpu_pinned", "cpu_shared"
        return {"cpu": "cpu", "gpu": "cuda"}.get(kind, kind)

    def gemm(self, n: int, device: str = "cpu") -> Any:
        import mxnet as mx

        if device not in self.devices():
            raise ValueError(f"device {device!r} is not available to MXNet here")
        if device == "cuda":
            check_gpu(0)
        ctx = mx.gpu(0) if device == "cuda" else mx.cpu()
        rng = np.random.RandomState(0)
        a = mx.nd.array(rng.rand(n, n), ctx=ctx, dtype=np.float32)
        b = mx.nd.array(rng.rand(n, n), ctx=ctx, dtype=np.float32)

        def run() -> Any:
            c = mx.nd.dot(a, b)
            c.wait_to_read()  # MXNet's engine is asynchronous
            return c

        return run

    def make_train_step(self, model: Any, train: TrainSpec, mode: str | None = None) -> TrainStep:
        """Mean softmax cross-entropy, backward, one Adam step, in ``mode``: through the
        hybridized block (``hybrid``, the cached graph's backward too) or op by op
        (``imperative``). Both update the model's parameters.

        The loss is averaged over the batch in the graph and ``trainer.step(1)`` leaves
        the gradient unscaled: the same mean-loss gradient as the other frameworks (and
        right for a short last batch, which ``step(batch_size)`` on a summed loss also
        gets right, but only if the caller passes the true size).
        """
        import mxnet as mx
        from mxnet import autograd, gluon

        mode = self.check_mode(mode or self.train_modes[0], training=True)
        if model.xfbench_spec.arch == "gan":
            return self._gan_train_step(model, self._gan_train_view(model, mode), train)
        block = self._block(model, mode)
        ctx = _context(model)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        trainer = _trainer(model, train)

        def step(x: np.ndarray, y: np.ndarray) -> float:
            data = self.to_device(model, x)
            # Class indices as float32 (exact for small integers): the dtype pick() expects.
            label = mx.nd.array(y, ctx=ctx, dtype=np.float32)
            with autograd.record():
                loss = loss_fn(block(data), label).mean()
            loss.backward()
            trainer.step(1)
            return float(loss.asscalar())

        return step

    def _gan_train_view(self, model: Any, mode: str) -> Any:
        """The GAN's training view for ``mode``, made on first use and kept: a block on
        the model's own parameters whose last transposed convolution MXNet can
        differentiate (``models/mxnet_models.py``, ``_OneChannelDeconv``), run op by op
        (``imperative``) or hybridized like the ``hybrid`` twin (each network a cached
        graph of its own)."""
        rt = model._xfbench
        if mode not in rt.train_views:
            from models.mxnet_models import build_model

            view = build_model(model.xfbench_spec, share=model, training_view=True)
            if mode == "hybrid":
                view.hybridize(static_alloc=True, static_shape=True)
            rt.train_views[mode] = view
        return rt.train_views[mode]

    def _gan_train_step(self, model: Any, block: Any, train: TrainSpec) -> TrainStep:
        """DCGAN's step (see :meth:`Adapter.make_train_step`) on the two children of
        ``block``, the training view of the mode (:meth:`_gan_train_view`).

        ``fake = G(z)`` is recorded once, in training mode: its batch normalisation uses
        the batch's statistics and moves the running ones, once. The discriminator's
        loss sees ``fake.detach()`` (no gradient into G). The generator's loss is then
        recorded in a second ``autograd.record()`` scope, running the *updated* D on the
        same ``fake``, whose recorded history still leads back into G, so G is not run
        again. Its backward also writes gradients into D's parameters, which nothing
        applies: D's trainer steps only after the next step's own backward has
        overwritten them (``grad_req='write'``). Each network has its own Adam
        (a ``Trainer`` over its own parameters).

        All three discriminator calls take batches of the same size, so the hybridized
        view's static-shape graph is bound once per batch size, not once per call.
        """
        import mxnet as mx
        from mxnet import autograd, gluon

        gen, disc = block.gen, block.disc
        ctx = _context(model)
        trainer_g, trainer_d = _trainer(model.gen, train), _trainer(model.disc, train)
        # Mean over the batch of log(1 + exp(-x)) (label 1) or log(1 + exp(x)) (label 0),
        # computed from the logits (from_sigmoid=False), stably.
        bce = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)

        def step(x: np.ndarray, z: np.ndarray) -> float:
            real, zb = self.to_device(model, x), self.to_device(model, z)
            ones = mx.nd.ones((len(x), 1), ctx=ctx)
            zeros = mx.nd.zeros((len(x), 1), ctx=ctx)
            with autograd.record():
                fake = gen(zb)
                d_loss = bce(disc(real), ones).mean() + bce(disc(fake.detach()), zeros).mean()
            d_loss.backward()
            trainer_d.step(1)
            with autograd.record():
                g_loss = bce(disc(fake), ones).mean()
            g_loss.backward()
            trainer_g.step(1)
            # Outside autograd.record() Gluon is in predict mode again: running statistics.
            return float(d_loss.asscalar())

        return step

    def discriminate(self, model: Any, images: np.ndarray) -> np.ndarray:
        """The discriminator's logits, its hybridized twin's (the mode :meth:`infer`
        uses), outside ``autograd.record()``."""
        disc = self._block(model, self.modes[0]).disc
        return self.to_numpy(disc(self.to_device(model, images))).astype(np.float32)

    # -- export -------------------------------------------------------------------------
    def export_onnx(self, model: Any, spec: ModelSpec, path: Path) -> dict[str, Any]:
        """Export, then repair (see the module docstring); returns what was repaired:
        ``opset_held_at``, ``initializers_stripped`` and ``renamed`` (old -> new)."""
        import mxnet as mx
        import mxnet.onnx as mx_onnx
        import onnx

        path = Path(path)
        sample = (1, *spec.input_shape)
        # HybridBlock.export needs a cached graph: one forward pass creates it. The GAN's
        # export is its generator's graph (models/mxnet_models.py, GAN).
        hybrid = self._block(model, "hybrid")
        if spec.arch == "gan":
            hybrid = hybrid.gen
        hybrid(mx.nd.zeros(sample, ctx=_context(model)))
        with tempfile.TemporaryDirectory(prefix="xfbench-mxnet-") as tmp:
            prefix = os.path.join(tmp, spec.slug)
            hybrid.export(prefix)
            raw = os.path.join(tmp, f"{spec.slug}.onnx")
            with _onnx_opset_held(ONNX_OPSET), _root_logging_quiet():
                mx_onnx.export_model(
                    f"{prefix}-symbol.json",
                    f"{prefix}-0000.params",
                    in_shapes=[sample],
                    in_types=[np.float32],
                    onnx_file_path=raw,
                    dynamic=True,
                    dynamic_input_shapes=[(None, *spec.input_shape)],
                )
            proto = onnx.load(raw)

        stripped = _strip_initializer_inputs(proto.graph)
        renamed = _rename_io(proto.graph, self.output_name(spec))
        _name_batch_axis(proto.graph)
        onnx.checker.check_model(proto)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
        return {"opset_held_at": ONNX_OPSET, "initializers_stripped": stripped, "renamed": renamed}


def check_gpu(device_id: int = 0) -> dict[str, Any]:
    """Make sure MXNet's kernels run on GPU ``device_id``, and return its GPU settings.

    MXNet's last CUDA build (mxnet-cu112 1.9.1, CUDA 11.2) predates recent GPUs such as
    the H100 (compute capability 9.0): it lists the card, but its kernels may fail there
    ("no kernel image is available for execution on the device"), at whatever op runs
    first, as an error in the middle of a case. So a tiny computation is run and waited
    for (a fill, an element-wise product and a matrix product: MXNet's own kernels and
    cuBLAS's) once per process, and an ``mx.base.MXNetError`` from it becomes an
    :class:`UnsupportedError` saying why (:func:`gpu_unsupported_reason`), raised on
    every later call too.

    Returns what MXNet runs with on that GPU: the card's compute capability, the build,
    and the variables MXNet reads at start (the worker sets
    ``MXNET_CUDA_ALLOW_TENSOR_CORE=0``).
    """
    import mxnet as mx

    if device_id not in _gpu_checks:
        found = {"gpu": device_id, "compute_capability": _compute_capability(device_id)}
        found["build"] = _build()
        reason = None
        try:
            a = mx.nd.ones((2, 2), ctx=mx.gpu(device_id))
            mx.nd.dot(a, a * 2).wait_to_read()
        except mx.base.MXNetError as exc:
            reason = gpu_unsupported_reason(
                exc, device_id, found["compute_capability"], found["build"]
            )
        _gpu_checks[device_id] = (reason, found)
    reason, found = _gpu_checks[device_id]
    if reason is not None:
        raise UnsupportedError(reason)
    return {
        **found,
        "MXNET_CUDA_ALLOW_TENSOR_CORE": os.environ.get("MXNET_CUDA_ALLOW_TENSOR_CORE", "unset"),
        "MXNET_CUDNN_AUTOTUNE_DEFAULT": os.environ.get(
            "MXNET_CUDNN_AUTOTUNE_DEFAULT", "unset (MXNet's default, 1: autotuned)"
        ),
    }


def gpu_unsupported_reason(
    error: BaseException, device_id: int, capability: str, build: str
) -> str:
    """One line saying why MXNet cannot use GPU ``device_id``: the card's compute
    capability (``"9.0"``, or why it is unknown), the build (``"mxnet-cu112 1.9.1"``) and,
    where the card is newer than anything the build's CUDA compiles for, that this is
    why; what failed (the gist of MXNet's ``error``); and that the other frameworks are
    not affected. One line, because the cold start records only an error's first line."""
    dist = build.partition(" ")[0]
    if not dist.startswith("mxnet-cu"):
        what = f"this is {build}, a build without CUDA (tox -e mxnet-gpu installs mxnet-cu112)"
    elif dist not in CUDA_BUILDS:
        what = f"the build is {build}"
    else:
        newest, cuda = CUDA_BUILDS[dist]
        what = f"the build is {build} (CUDA {cuda})"
        match = re.fullmatch(r"(\d+)\.(\d)", capability)
        if match and int(match[1]) * 10 + int(match[2]) > newest:
            what += (
                f", older than this GPU: CUDA {cuda} compiles for compute capability "
                f"{newest // 10}.{newest % 10} at most, and MXNet (retired) has no newer "
                "CUDA build"
            )
    return (
        f"MXNet cannot run on GPU {device_id} (compute capability {capability}): {what}; "
        f"a test operation failed: {_mxnet_error_gist(error)}. The other frameworks still "
        "run on this GPU."
    )


def _mxnet_error_gist(error: BaseException) -> str:
    """The message of an MXNetError without its traceback, stack trace, timestamps and
    source positions (``[00:35:13] ../src/x.cc:93: ``), which would bury it."""
    text = str(error).split("Stack trace:")[0]
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Traceback", "File "))]
    gist = lines[-1] if lines else type(error).__name__
    gist = gist.removeprefix("MXNetError: ")
    gist = re.sub(r"\s*\[\d\d:\d\d:\d\d\] \S+:\d+: ", " ", gist).strip().rstrip(".")
    return gist if len(gist) <= 240 else gist[:239] + "…"


def _compute_capability(device_id: int) -> str:
    """GPU ``device_id``'s compute capability as MXNet reads it (``"9.0"``), or
    ``"unknown: why"`` (MXNet asks the driver's ``libcuda.so``, which some hosts lack)."""
    import mxnet as mx

    try:
        cc = mx.util.get_cuda_compute_capability(mx.gpu(device_id))
    except (OSError, RuntimeError, ValueError) as exc:
        return f"unknown: {exc}"
    return f"{cc // 10}.{cc % 10}"


def _build() -> str:
    """The MXNet distribution installed, ``mxnet-cu112 1.9.1`` (``mxnet 1.9.1`` for the
    CPU build)."""
    for dist in ("mxnet", *MXNetAdapter.distribution_aliases["mxnet"]):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "mxnet (version unknown)"


def _trainer(block: Any, train: TrainSpec) -> Any:
    """A ``gluon.Trainer`` running ``train``'s optimizer (Adam) with its constants over
    ``block``'s parameters (those with ``grad_req='null'``, running statistics and held
    biases, are skipped by the trainer)."""
    from mxnet import gluon

    return gluon.Trainer(
        block.collect_params(),
        train.optimizer,
        {
            "learning_rate": train.learning_rate,
            "beta1": train.beta1,
            "beta2": train.beta2,
            "epsilon": train.epsilon,
        },
        kvstore=None,  # one device: update in place, no key-value store round trip
    )


def _context(model: Any) -> Any:
    """The context the model's weights live on (all of them share one)."""
    return next(iter(model.collect_params().values())).list_ctx()[0]


@contextlib.contextmanager
def _onnx_opset_held(opset: int) -> Iterator[None]:
    """Make ``onnx.defs.onnx_opset_version()`` answer ``opset`` for the duration.

    ``mx.onnx.export_model`` imports the function inside its body and
    ``onnx.helper.make_model`` calls it through ``onnx.defs``, so replacing the module
    attribute reaches both; it is restored whatever happens.
    """
    import onnx.defs

    original = onnx.defs.onnx_opset_version
    onnx.defs.onnx_opset_version = lambda: opset
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = original


@contextlib.contextmanager
def _root_logging_quiet() -> Iterator[None]:
    """Hush mx.onnx, which logs each converted node through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _strip_initializer_inputs(graph: Any) -> int:
    """Remove initializers from ``graph.input``; returns how many were removed."""
    weights = {init.name for init in graph.initializer}
    keep = [inp for inp in graph.input if inp.name not in weights]
    stripped = len(graph.input) - len(keep)
    del graph.input[:]
    graph.input.extend(keep)
    return stripped


def _name_batch_axis(graph: Any) -> None:
    """Call axis 0 of the inputs and outputs ``batch``; mx.onnx leaves it anonymous.

    The axis is dynamic either way; a shared name also tells tools that the input's and
    the output's batch sizes are the same.
    """
    for value in (*graph.input, *graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"


def _rename_io(graph: Any, output: str = OUTPUT_NAME) -> dict[str, str]:
    """Name the single input ``input`` and the single output ``output`` (``logits``, or
    the generator's ``images``), everywhere.

    Skipped (an empty mapping) if the graph has several inputs or outputs or already
    uses a target name, where a rename could merge two tensors.
    """
    if len(graph.input) != 1 or len(graph.output) != 1:
        return {}
    mapping = {graph.input[0].name: INPUT_NAME, graph.output[0].name: output}
    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    taken |= {v.name for v in graph.value_info} | {i.name for i in graph.input}
    if any(new in taken - set(mapping) for new in mapping.values()):
        return {}
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = mapping.get(value.name, value.name)
    return {old: new for old, new in mapping.items() if old != new}
