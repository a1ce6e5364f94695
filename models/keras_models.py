"""Keras 3 (TensorFlow backend) versions of the specs, and their weight layouts.

Everything here is derived from a :class:`~models.spec.ModelSpec`. Layers are named after
the canonical weight prefixes (``conv1``, ``fc1``, ``lstm``, ``stage2.block0.bn1``...), so a
canonical name ``"<layer>.<variable>"`` finds its Keras variable by name (batch
normalisation's ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance`` are Keras's own
names), and the few tensors whose layouts differ are converted by the functions in
:func:`_layout_converters`.

TensorFlow and Keras are imported inside functions (through :func:`import_tensorflow`), so
that importing this module, or the adapter that uses it, imports no framework.

The CNN reads NCHW input ``(N, 1, 28, 28)`` like the other frameworks' models (so every
ONNX export has the same input) but computes in NHWC, because TensorFlow's CPU kernels
implement convolution and pooling only for NHWC. Its flatten therefore runs in (H, W, C)
order instead of the canonical (C, H, W), and the rows of ``fc1.kernel`` are permuted
when weights are loaded and saved rather than transposing activations back at run time.
The ResNet computes in NHWC too; its global average pooling leaves no spatial order to
permute.

The ResNet's batch normalisation is ``BatchNormalization(epsilon=BN_EPSILON,
momentum=1 - BN_MOMENTUM)``: Keras's ``momentum`` is the weight of the old running value
(its defaults, 1e-3 and 0.99, are not the spec's). Its stride-2 3x3 convolutions are
``ZeroPadding2D(1)`` + ``"valid"``: Keras's ``"same"`` at stride 2 on an even size pads
0 before and 1 after (TensorFlow's rule), where the spec (and PyTorch's ``padding=1``)
pads 1 on both sides, which shifts every window by one pixel. At stride 1 ``"same"`` pads
a 3x3 kernel by 1 on both sides, as the spec does.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from models.spec import (
    BN_EPSILON,
    BN_MOMENTUM,
    GAN_KERNEL,
    GAN_PADDING,
    GAN_STRIDE,
    IMAGE_SIZE,
    LEAKY_SLOPE,
    NUM_CLASSES,
    ModelSpec,
    resnet_blocks,
)

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
    elif spec.arch == "resnet":
        outputs = _resnet(spec, inputs)
    elif spec.arch == "gan":
        return _gan(spec, inputs)
    else:
        raise ValueError(f"no Keras model for spec {spec.name!r}")
    return keras.Model(inputs, outputs, name=spec.slug)


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str) -> Any:
    """Convolution without bias (padding ``kernel // 2`` on every side, as the spec says)
    then batch normalisation, in NHWC, the layers named ``conv`` and ``bn``."""
    from keras import layers

    padding = "same" if stride == 1 else "valid"  # "same" pads k // 2 only at stride 1
    if stride != 1 and kernel // 2:  # see the module docstring
        x = layers.ZeroPadding2D(kernel // 2, data_format="channels_last", name=f"{conv}.pad")(x)
    x = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=False,
        data_format="channels_last",
        name=conv,
    )(x)
    return layers.BatchNormalization(
        axis=-1, epsilon=BN_EPSILON, momentum=1.0 - BN_MOMENTUM, name=bn
    )(x)


def _resnet(spec: ModelSpec, inputs: Any) -> Any:
    from keras import layers

    x = layers.Permute((2, 3, 1), name="to_nhwc")(inputs)  # see the module docstring
    x = _conv_bn(x, spec.hyper["stem"], 3, 1, "stem.conv", "stem.bn")
    x = layers.ReLU(name="stem.relu")(x)
    for blk in resnet_blocks(spec):
        p = blk.name
        y = _conv_bn(x, blk.c_out, 3, blk.stride, f"{p}.conv1", f"{p}.bn1")
        y = layers.ReLU(name=f"{p}.relu1")(y)
        y = _conv_bn(y, blk.c_out, 3, 1, f"{p}.conv2", f"{p}.bn2")
        if blk.projection:
            x = _conv_bn(x, blk.c_out, 1, blk.stride, f"{p}.shortcut.conv", f"{p}.shortcut.bn")
        x = layers.Add(name=f"{p}.add")([y, x])
        x = layers.ReLU(name=f"{p}.relu2")(x)
    x = layers.GlobalAveragePooling2D(data_format="channels_last", name="pool")(x)
    return layers.Dense(NUM_CLASSES, name="fc")(x)


@functools.cache
def _gan_class() -> type:
    """The Keras model class that holds the GAN's two networks (made on first use, so
    that importing this module imports no Keras)."""
    import keras

    class GAN(keras.Model):
        """The generator ``gen`` and the discriminator ``disc``, both tracked (their
        variables are the model's); calling the model runs the generator."""

        def __init__(self, gen: keras.Model, disc: keras.Model, name: str) -> None:
            super().__init__(name=name)
            self.gen = gen
            self.disc = disc
            self.built = True  # both networks are built functional models

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.gen(inputs, training=training)

    return GAN


def _gan(spec: ModelSpec, inputs: Any) -> keras.Model:
    """The DCGAN of the spec (see the module docstring): the generator reads ``inputs``
    (the latent vectors), the discriminator ``(N, 1, 28, 28)`` images."""
    import keras
    from keras import layers

    h = spec.hyper
    base = h["base"]
    k, s = GAN_KERNEL, GAN_STRIDE
    if (k - s) % 2 or (k - s) // 2 != GAN_PADDING:
        raise ValueError("'same' padding is the spec's only for a padding of (k - s) / 2")
    conv = {"strides": s, "padding": "same", "data_format": "channels_last"}
    bn = {"axis": -1, "epsilon": BN_EPSILON, "momentum": 1.0 - BN_MOMENTUM}

    x = layers.Dense(h["gen0"] * base * base, use_bias=False, name="gen.fc")(inputs)
    x = layers.Reshape((base, base, h["gen0"]), name="gen.reshape")(x)  # NHWC
    x = layers.BatchNormalization(name="gen.bn0", **bn)(x)
    x = layers.ReLU(name="gen.relu0")(x)
    x = layers.Conv2DTranspose(h["gen1"], k, use_bias=False, name="gen.deconv1", **conv)(x)
    x = layers.BatchNormalization(name="gen.bn1", **bn)(x)
    x = layers.ReLU(name="gen.relu1")(x)
    x = layers.Conv2DTranspose(1, k, activation="sigmoid", name="gen.deconv2", **conv)(x)
    images = layers.Permute((3, 1, 2), name="gen.to_nchw")(x)
    gen = keras.Model(inputs, images, name="gen")

    real = keras.Input(shape=(1, IMAGE_SIZE, IMAGE_SIZE), dtype="float32", name="images")
    x = layers.Permute((2, 3, 1), name="disc.to_nhwc")(real)
    x = layers.Conv2D(h["disc1"], k, name="disc.conv1", **conv)(x)
    x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="disc.relu1")(x)
    x = layers.Conv2D(h["disc2"], k, name="disc.conv2", **conv)(x)
    x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="disc.relu2")(x)
    x = layers.Flatten(name="disc.flatten", data_format="channels_last")(x)
    logit = layers.Dense(1, name="disc.fc")(x)
    disc = keras.Model(real, logit, name="disc")
    return _gan_class()(gen, disc, name=spec.slug)


def _get_layer(spec: ModelSpec, model: keras.Model, name: str) -> Any:
    """The layer called ``name``; a GAN's from the network its prefix names."""
    if spec.arch == "gan":
        return getattr(model, name.split(".", 1)[0]).get_layer(name)
    return model.get_layer(name)


def _chw_to_hwc(c: int, h: int, w: int, axis: int) -> tuple[Converter, Converter]:
    """Permute one axis of a dense kernel between the canonical (C, H, W) flatten
    order and Keras's (H, W, C): ``(to_keras, from_keras)``."""

    def to_keras(m: np.ndarray) -> np.ndarray:
        m = np.moveaxis(m, axis, 0)
        m = m.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
        return np.moveaxis(m, 0, axis)

    def from_keras(m: np.ndarray) -> np.ndarray:
        m = np.moveaxis(m, axis, 0)
        m = m.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        return np.moveaxis(m, 0, axis)

    return to_keras, from_keras


def _layout_converters(
    spec: ModelSpec, model: keras.Model
) -> dict[str, tuple[Converter, Converter]]:
    """``{canonical name: (to_keras, from_keras)}`` for tensors whose layouts differ.

    Tensors not listed (dense and LSTM kernels, every bias) are stored identically.
    """
    out: dict[str, tuple[Converter, Converter]] = {}
    # OIHW <-> HWIO for convolutions; IOHW <-> (kh, kw, out, in) for transposed ones,
    # the same permutation of axes.
    for p in spec.params:
        if p.name.endswith(".kernel") and len(p.shape) == 4:
            out[p.name] = (lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1))
    # Dense kernels next to a flatten or reshape: canonical (C, H, W) order <-> Keras's
    # (H, W, C). The feature map's shape is read off the model so it follows the spec.
    if spec.arch == "cnn":
        fh, fw, fc = model.get_layer("flatten").input.shape[1:]
        out["fc1.kernel"] = _chw_to_hwc(fc, fh, fw, axis=0)  # its rows
    elif spec.arch == "gan":
        fh, fw, fc = model.disc.get_layer("disc.flatten").input.shape[1:]
        out["disc.fc.kernel"] = _chw_to_hwc(fc, fh, fw, axis=0)
        fh, fw, fc = model.gen.get_layer("gen.reshape").output.shape[1:]
        out["gen.fc.kernel"] = _chw_to_hwc(fc, fh, fw, axis=1)  # its columns
    return out


def _variables(spec: ModelSpec, model: keras.Model) -> dict[str, keras.Variable]:
    """The Keras variable behind each canonical name (``"fc1.kernel"`` -> layer fc1's
    variable ``kernel``; ``"stage2.block0.bn1.moving_mean"`` -> layer stage2.block0.bn1's
    ``moving_mean``; for the LSTM, its cell's ``kernel``/``recurrent_kernel``/``bias``;
    for the GAN, ``"gen.bn0.gamma"`` -> layer gen.bn0 of the generator).
    Non-trainable variables (batch normalisation's running statistics) included."""
    found = {}
    for name in spec.param_shapes:
        layer_name, var_name = name.rsplit(".", 1)
        by_name = {v.name: v for v in _get_layer(spec, model, layer_name).weights}
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
