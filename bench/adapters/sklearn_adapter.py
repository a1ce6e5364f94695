"""scikit-learn adapter: ``MLPClassifier`` in float32, exported by skl2onnx.

scikit-learn has one neural network, ``MLPClassifier``, so this adapter declares only
the ``mlp`` model (the conformance kit and the benchmark skip the others with a reason).
It differs from the deep-learning adapters in three ways, all declared rather than
papered over:

* **Probabilities, not logits.** ``MLPClassifier`` has no public logits API; ``infer``
  returns ``predict_proba``, the softmax of the logits, and the adapter says so with
  ``output = "probabilities"`` (the kit compares it with the reference's softmax).
* **Training is ``partial_fit``.** One call on one batch is one Adam update (see
  :func:`models.sklearn_models.one_update`). scikit-learn's Adam applies epsilon after
  the bias correction of the learning rate (Kingma & Ba's "epsilon hat", as Keras
  does) where PyTorch adds it to the bias-corrected ``sqrt(v)``; at epsilon 1e-8 the
  difference is far below float32 resolution of the updates.
* **The CPU only.** scikit-learn computes with numpy, whose matrix products run in its
  BLAS (OpenBLAS in the wheels); that is also where :meth:`SklearnAdapter.set_threads`
  applies its limit.

ONNX export uses skl2onnx with ``zipmap`` off, so the probabilities come out as one
tensor. skl2onnx also emits the predicted label as a second output; the harness
requires exactly one output, so the label output and the nodes and initializers only
it used (ArgMax, ArrayFeatureExtractor, Reshape, Cast) are removed, and
:meth:`SklearnAdapter.export_onnx` returns what it removed as manifest notes.

The probe ``package`` is ``skl2onnx``, not ``sklearn``: scikit-learn is a core
dependency (the digits data come from it), so it is importable in every environment,
while skl2onnx is only in this adapter's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.adapters.base import Adapter, TrainStep, UnsupportedError, array_device
from models.spec import ModelSpec, TrainSpec

#: Held fixed (not skl2onnx's newest) so a skl2onnx upgrade cannot silently change the
#: graph that is timed; 18 is within the range skl2onnx >= 1.17 is tested with.
ONNX_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
BATCH_AXIS = "batch"


class SklearnAdapter(Adapter):
    name = "sklearn"
    # scikit-learn itself is importable everywhere (the data loader needs it): probing it
    # would claim this adapter works in every environment. skl2onnx is only in ours.
    package = "skl2onnx"
    exporter = f"skl2onnx (opset {ONNX_OPSET})"
    distributions: ClassVar[tuple[str, ...]] = (
        "scikit-learn",
        "skl2onnx",
        "numpy",
        "onnx",
        "onnxruntime",
    )
    models: ClassVar[tuple[str, ...]] = ("mlp",)
    output: ClassVar[str] = "probabilities"
    # One mode: numpy computes eagerly and is synchronous (``wait`` stays a no-op).
    modes: ClassVar[tuple[str, ...]] = ("native",)
    train_modes: ClassVar[tuple[str, ...]] = ("native",)
    color: ClassVar[str | None] = "#E69F00"
    mode_notes: ClassVar[Mapping[str, str]] = {
        "native": "MLPClassifier.predict_proba (the softmax of the logits, input "
        "validation included); training: partial_fit, one Adam update",
    }

    def __init__(self) -> None:
        # threadpoolctl's limits last as long as their controller is referenced: it is
        # kept here for the life of the adapter (the worker process).
        self._thread_limits: Any = None

    # -- capabilities -------------------------------------------------------------------
    def devices(self) -> list[str]:
        """scikit-learn computes with numpy, on the CPU only."""
        return ["cpu"]

    def set_threads(self, n: int) -> None:
        """Limit numpy's BLAS (where the MLP's matrix products run) and scikit-learn's
        OpenMP runtime to ``n`` threads.

        scikit-learn's extension modules are imported first so that their OpenMP
        runtime is loaded and limited too. Raises ``RuntimeError`` if a pool did not take
        the limit, rather than record a thread count that is not the one used.
        """
        import sklearn.neural_network  # noqa: F401 - loads the OpenMP runtime it ships
        from threadpoolctl import threadpool_info, threadpool_limits

        self._thread_limits = threadpool_limits(limits=n)
        ignored = [
            f"{pool['internal_api']} ({pool['filepath']}): {pool['num_threads']}"
            for pool in threadpool_info()
            if pool["num_threads"] != n
        ]
        if ignored:
            raise RuntimeError(f"thread pools did not take the limit of {n}: {ignored}")

    def gemm(self, n: int, device: str = "cpu") -> Callable[[], np.ndarray]:
        """numpy's float32 matrix product, the kernel every MLPClassifier layer uses."""
        self._check_device(device)
        rng = np.random.RandomState(0)  # the same operands in every adapter
        a = rng.rand(n, n).astype(np.float32)
        b = rng.rand(n, n).astype(np.float32)

        def run() -> np.ndarray:
            return a @ b  # synchronous: the product is complete when it returns

        return run

    def _check_device(self, device: str) -> None:
        if device not in self.devices():
            raise ValueError(f"sklearn cannot use device {device!r}; available: {self.devices()}")

    # -- models and weights -------------------------------------------------------------
    def build(self, spec: ModelSpec, device: str = "cpu") -> Any:
        """A float32 ``MLPClassifier`` for ``spec`` (see ``models/sklearn_models.py``)."""
        from models.sklearn_models import build_model

        self._check_device(device)
        if spec.arch not in self.models:
            raise UnsupportedError(
                f"scikit-learn has no {spec.name!r} model (MLPClassifier is its only "
                f"network); sklearn implements: {', '.join(self.models)}"
            )
        return build_model(spec)

    def param_count(self, model: Any) -> int:
        """Every entry of ``coefs_`` and ``intercepts_``: all of them are trained."""
        return sum(int(w.size) for w in (*model.coefs_, *model.intercepts_))

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        from models.sklearn_models import from_estimator

        return from_estimator(model.xfbench_spec, model)

    def set_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        from models.sklearn_models import to_estimator

        to_estimator(model.xfbench_spec, model, weights)

    # -- running ------------------------------------------------------------------------
    def infer(self, model: Any, x: Any) -> np.ndarray:
        """``predict_proba``: the softmax probabilities (MLPClassifier exposes no logits),
        float32 for float32 input. The public API, input validation included, is what a
        scikit-learn user calls, so that is what is timed."""
        return model.predict_proba(x)

    def output_device(self, y: Any) -> str:
        return array_device(y)  # scikit-learn computes in numpy, on the CPU

    def make_train_step(self, model: Any, train: TrainSpec, mode: str | None = None) -> TrainStep:
        """One Adam update per call through ``partial_fit``, from a fresh Adam state.

        scikit-learn keeps Adam's moments in the private ``_optimizer`` across
        ``partial_fit`` calls and creates it only when absent, so it is dropped here:
        the update made while building, or an earlier training run, must not leak into
        this one. The optimizer settings (learning rate, betas, epsilon) come from
        ``train``. Returns the batch's mean cross-entropy before the update, as PyTorch's
        step does (alpha is 0, so there is no L2 term in it).
        """
        from models.sklearn_models import drop_optimizer, one_update

        self.check_mode(mode or self.train_modes[0], training=True)
        drop_optimizer(model)
        model.set_params(
            learning_rate_init=train.learning_rate,
            beta_1=train.beta1,
            beta_2=train.beta2,
            epsilon=train.epsilon,
            alpha=0.0,
        )

        def step(x: np.ndarray, y: np.ndarray) -> float:
            return one_update(model, x, y)

        return step

    # -- export -------------------------------------------------------------------------
    def export_onnx(self, model: Any, spec: ModelSpec, path: Path) -> dict[str, Any]:
        """skl2onnx export of the probabilities alone, with a named dynamic batch axis.

        Returns notes for the manifest: the outputs, nodes and initializers removed (the
        label branch skl2onnx adds beside the probabilities) and the opset."""
        import onnx
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        proto = to_onnx(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, *spec.input_shape]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 1},
        )
        graph = proto.graph
        removed_outputs = [o.name for o in graph.output if o.name != OUTPUT_NAME]
        if len(removed_outputs) == len(graph.output):
            raise RuntimeError(
                f"skl2onnx produced no {OUTPUT_NAME!r} output: {[o.name for o in graph.output]}"
            )
        for index in reversed(range(len(graph.output))):
            if graph.output[index].name != OUTPUT_NAME:
                del graph.output[index]
        pruned_nodes, pruned_initializers = _prune_dead_ends(graph)
        used_domains = {n.domain for n in graph.node} | {""}
        dropped_domains = [o.domain for o in proto.opset_import if o.domain not in used_domains]
        for index in reversed(range(len(proto.opset_import))):
            if proto.opset_import[index].domain not in used_domains:
                del proto.opset_import[index]
        for value in (graph.input[0], graph.output[0]):
            value.type.tensor_type.shape.dim[0].dim_param = BATCH_AXIS
        onnx.checker.check_model(proto, full_check=True)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
        return {
            "opset": ONNX_OPSET,
            "removed_outputs": removed_outputs,
            "pruned_nodes": pruned_nodes,
            "pruned_initializers": pruned_initializers,
            "dropped_opset_domains": dropped_domains,
        }


def _prune_dead_ends(graph: Any) -> tuple[list[str], list[str]]:
    """Remove the nodes and initializers no graph output depends on; returns the op
    types of the nodes and the names of the initializers removed.

    Deletes by index, in place: protobuf sub-messages are not re-parented safely."""
    needed = {o.name for o in graph.output}
    live = set()
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if any(out in needed for out in node.output):
            live.add(index)
            needed.update(i for i in node.input if i)
    dead = [graph.node[i].op_type for i in range(len(graph.node)) if i not in live]
    for index in reversed(range(len(graph.node))):
        if index not in live:
            del graph.node[index]
    unused = [init.name for init in graph.initializer if init.name not in needed]
    for index in reversed(range(len(graph.initializer))):
        if graph.initializer[index].name not in needed:
            del graph.initializer[index]
    return dead, unused
