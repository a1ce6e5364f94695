"""scikit-learn definition of the ``mlp`` spec, and its canonical weight mapping.

``MLPClassifier`` is the only network scikit-learn has, so only the MLP is defined here
(784 -> 128 relu -> 10, softmax output). Its ``coefs_[i]`` already use the canonical
dense layout ``(in, out)`` (``y = x @ coefs_[i] + intercepts_[i]``), so the mapping is a
renaming: the spec's dense layers, in order, are ``coefs_``/``intercepts_`` 0, 1, ...

The estimator keeps the dtype of the data it was first fitted on, so it is initialised
on a float32 batch: weights, gradients, Adam's moments and predictions then all stay in
float32 like every other framework's (float64 would also be off the benchmark's terms).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.neural_network import MLPClassifier

from models.spec import NUM_CLASSES, ModelSpec

#: The one spec MLPClassifier can express.
SUPPORTED = ("mlp",)


def dense_layers(spec: ModelSpec) -> list[str]:
    """The spec's dense layers in forward order (``fc1``, ``fc2``): ``coefs_`` order."""
    return [p.name[: -len(".kernel")] for p in spec.params if p.name.endswith(".kernel")]


def one_update(model: MLPClassifier, x: np.ndarray, y: np.ndarray, **kwargs: object) -> float:
    """Exactly one optimizer update on ``(x, y)``; returns the batch's pre-update loss.

    ``partial_fit`` splits its input into minibatches of ``batch_size`` (one update each)
    and warns when the input is shorter, so ``batch_size`` is set to this batch's length
    first: one call is then one update whatever the batch (the last short batch of an
    epoch included). ``loss_`` is the mean over the samples of the minibatch losses of
    that call, each computed in the forward pass before its update: with one minibatch,
    the batch's mean cross-entropy before the step (plus the L2 term, zero at alpha=0).
    """
    model.batch_size = len(x)
    model.partial_fit(np.asarray(x, dtype=np.float32), np.asarray(y), **kwargs)
    return float(model.loss_)


def drop_optimizer(model: MLPClassifier) -> None:
    """Forget Adam's state (moments and step count), so the next update starts afresh.

    scikit-learn keeps it in the private ``_optimizer`` across ``partial_fit`` calls and
    creates a new one only when that attribute is absent (``build_model`` checks that
    this scikit-learn still does).
    """
    vars(model).pop("_optimizer", None)


def build_model(spec: ModelSpec) -> MLPClassifier:
    """A float32 ``MLPClassifier`` implementing ``spec``, initialised for 10 classes.

    ``alpha=0`` (no L2 term: the spec has none), ``shuffle=False`` (the harness orders
    the batches), Adam with the spec's constants. One update on a small zero batch makes
    scikit-learn allocate ``coefs_``/``intercepts_`` (float32) and fix ``classes_``; the
    weights are arbitrary until :func:`to_estimator` loads canonical ones, and the Adam
    state that update created is dropped.
    """
    if spec.arch not in SUPPORTED:
        raise ValueError(
            f"scikit-learn has no {spec.name!r} model; valid models: {', '.join(SUPPORTED)}"
        )
    layers = dense_layers(spec)
    hidden = tuple(spec.param_shapes[f"{name}.kernel"][1] for name in layers[:-1])
    train = spec.train
    model = MLPClassifier(
        hidden_layer_sizes=hidden,
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=train.batch_size,
        learning_rate_init=train.learning_rate,
        beta_1=train.beta1,
        beta_2=train.beta2,
        epsilon=train.epsilon,
        shuffle=False,
        random_state=0,
        early_stopping=False,
        warm_start=False,
    )
    x = np.zeros((NUM_CLASSES, *spec.input_shape), dtype=np.float32)
    classes = np.arange(NUM_CLASSES)
    one_update(model, x, classes, classes=classes)
    model.batch_size = train.batch_size
    if not hasattr(model, "_optimizer"):
        raise RuntimeError(
            "this scikit-learn keeps no MLPClassifier._optimizer after partial_fit, so "
            "a fresh Adam state cannot be guaranteed (models/sklearn_models.py)"
        )
    drop_optimizer(model)
    model.xfbench_spec = spec  # get/set_weights need it (see Adapter.build)
    return model


def to_estimator(spec: ModelSpec, model: MLPClassifier, weights: Mapping[str, np.ndarray]) -> None:
    """Load canonical weights into ``model`` (as float32 copies).

    Copies, because Adam updates ``coefs_`` in place: the caller's arrays must not
    change when the model trains.
    """
    layers = dense_layers(spec)
    model.coefs_ = [np.array(weights[f"{n}.kernel"], dtype=np.float32) for n in layers]
    model.intercepts_ = [np.array(weights[f"{n}.bias"], dtype=np.float32) for n in layers]


def from_estimator(spec: ModelSpec, model: MLPClassifier) -> dict[str, np.ndarray]:
    """The canonical weights of ``model`` (float32 copies, unaffected by later training)."""
    out = {}
    for name, kernel, bias in zip(dense_layers(spec), model.coefs_, model.intercepts_, strict=True):
        out[f"{name}.kernel"] = np.array(kernel, dtype=np.float32)
        out[f"{name}.bias"] = np.array(bias, dtype=np.float32)
    return out
