"""Keras 3 (TensorFlow backend) versions of the three specs, and their weight layouts.

Everything here is derived from a :class:`~models.spec.ModelSpec`. Layers are named after
the canonical weight prefixes (``conv1``, ``fc1``, ``lstm``...), so a canonical name
``"<layer>.<variable>"`` finds its Keras variable by name, and the few tensors whose
layouts differ are converted by the functions in :func:`_layout_converters`.

TensorFlow and Keras are imported inside functions (through :func:`import_tensorflow`), so
that importing this module, or the adapter that uses it, imports no framework.

The CNN reads NCHW input ``(N, 1, 28, 28)`` like the other frameworks' models (so every
ONNX export has the same input) but computes in NHWC, because TensorFlow's CPU kernels
implement convolution and pooling only for NHWC. Its flatten therefore runs in (H, W, C)
order instead of the canonical (C, H, W), and the rows of ``fc1.kernel`` are permuted
when weights are loaded and saved rather than transposing activations back at run time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from models.spec import NUM_CLASSES, ModelSpec

if TYPE_CHECKING:
    import keras

Converter = Callable[[np.ndarray], np.ndarray]


def import_tensorflow() -> ModuleType:
    """Import TensorFlow quietly and make sure Keras runs on it.

    ``TF_CPP_MIN_LOG_LEVEL`` only takes effect if it is set before TensorFlow's C++ core
    loads, hence this one entry point; a user's own setting wins. ``KERAS_BACKEND`` is
    checked because a Keras 3 on JAX or PyTorch would build models this module cannot
    convert, export or place with ``tf.device``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Keras is configured for the {keras.backend.backend()!r} backend; the "
            "tensorflow adapter needs KERAS_BACKEND=tensorflow"
        )
    return tf


def build_model(spec: ModelSpec) -> keras.Model:
    """A Keras functional model computing ``spec`` (weights left at Keras's initialisers).

    Layers are named after the spec's canonical prefixes; weight conversion relies on it.
    """
    import_tensorflow()
    import keras
    from keras import layers

    h = spec.hyper
    inputs = keras.Input(shape=spec.input_shape, dtype="float32", name="input")
    if spec.arch == "cnn":
        conv = {
            "kernel_size": h["kernel"],
            "padding": "valid",
            "activation": "relu",
            "data_format": "channels_last",
        }
        pool = {"pool_size": h["pool"], "data_format": "channels_last"}
        x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)  # see the module docstring
        x = layers.Conv2D(h["conv1"], name="conv1", **conv)(x)
        x = layers.MaxPooling2D(name="pool1", **pool)(x)
        x = layers.Conv2D(h["conv2"], name="conv2", **conv)(x)
        x = layers.MaxPooling2D(name="pool2", **pool)(x)
        x = layers.Flatten(name="flatten", data_format="channels_last")(x)
        x = layers.Dense(h["fc1"], activation="relu", name="fc1")(x)
        x = layers.Dense(h["fc2"], activation="relu", name="fc2")(x)
        outputs = layers.Dense(NUM_CLASSES, name="fc3")(x)
    elif spec.arch == "lstm":
        # Keras's gate order (i, f, c, o) and single bias already match the canonical
        # layout; the activations are spelled out so a changed Keras default cannot drift.
        x = layers.LSTM(
            h["hidden"],
            activation="tanh",
            recurrent_activation="sigmoid",
            return_sequences=False,
            name="lstm",
        )(inputs)
        outputs = layers.Dense(NUM_CLASSES, name="fc")(x)
    elif spec.arch == "mlp":
        x = layers.Dense(h["hidden"], activation="relu", name="fc1")(inputs)
        outputs = layers.Dense(NUM_CLASSES, name="fc2")(x)
    else:
        raise ValueError(f"no Keras model for spec {spec.name!r}")
    return keras.Model(inputs, outputs, name=spec.slug)


def _layout_converters(
    spec: ModelSpec, model: keras.Model
) -> dict[str, tuple[Converter, Converter]]:
    """``{canonical name: (to_keras, from_keras)}`` for tensors whose layouts differ.

    Tensors not listed (dense and LSTM kernels, every bias) are stored identically.
    """
    out: dict[str, tuple[Converter, Converter]] = {}
    if spec.arch != "cnn":
        return out
    # OIHW <-> HWIO.
    for layer in ("conv1", "conv2"):
        out[f"{layer}.kernel"] = (
            lambda w: w.transpose(2, 3, 1, 0),
            lambda w: w.transpose(3, 2, 0, 1),
        )
    # fc1 rows: canonical (C, H, W) flatten order <-> Keras's (H, W, C). The feature map's
    # shape is read off the model so it follows the spec's sizes.
    fh, fw, fc = model.get_layer("flatten").input.shape[1:]
    out["fc1.kernel"] = (
        lambda w: w.reshape(fc, fh, fw, -1).transpose(1, 2, 0, 3).reshape(fh * fw * fc, -1),
        lambda w: w.reshape(fh, fw, fc, -1).transpose(2, 0, 1, 3).reshape(fh * fw * fc, -1),
    )
    return out


def _variables(spec: ModelSpec, model: keras.Model) -> dict[str, keras.Variable]:
    """The Keras variable behind each canonical name (``"fc1.kernel"`` -> layer fc1's
    variable ``kernel``; for the LSTM, its cell's ``kernel``/``recurrent_kernel``/``bias``)."""
    found = {}
    for name in spec.param_shapes:
        layer_name, var_name = name.split(".")
        by_name = {v.name: v for v in model.get_layer(layer_name).weights}
        found[name] = by_name[var_name]
    if len(found) != len(model.weights):
        raise RuntimeError(
            f"the Keras {spec.name} model has {len(model.weights)} weights, the spec "
            f"{len(found)}: build_model and the spec disagree"
        )
    return found


def to_keras(spec: ModelSpec, model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assign canonical ``weights`` to ``model``'s variables, converting layouts."""
    converters = _layout_converters(spec, model)
    for name, var in _variables(spec, model).items():
        w = np.asarray(weights[name], dtype=np.float32)
        if name in converters:
            w = converters[name][0](w)
        var.assign(np.ascontiguousarray(w))


def from_keras(spec: ModelSpec, model: keras.Model) -> dict[str, np.ndarray]:
    """``model``'s weights in canonical names and layouts (float32, contiguous)."""
    converters = _layout_converters(spec, model)
    out = {}
    for name, var in _variables(spec, model).items():
        w = np.asarray(var.numpy(), dtype=np.float32)
        if name in converters:
            w = converters[name][1](w)
        out[name] = np.ascontiguousarray(w)
    return out
