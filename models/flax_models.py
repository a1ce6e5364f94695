"""Flax NNX versions of the specs, and canonical <-> Flax weight conversion.

Every size is read from the spec (its hyper-parameters and canonical weight shapes), so
a change to ``models/spec.py`` reaches this file without edits here. Submodules carry the
canonical layer names (``conv1``, ``fc1``, ``lstm``, ``stage2``/``block0``/``shortcut``...),
so the pure state dict of a model (``{"fc1": {"kernel": ..., "bias": ...}, ...}``) has
the spec's names, one level per dot, but for the last part of a batch normalisation
tensor's name (:data:`BN_NAMES`): ``nnx.BatchNorm``, whose ``__call__`` is what jax2onnx
exports as an ONNX ``BatchNormalization``, calls its tensors ``scale``, ``bias``, ``mean``
and ``var``. Every variable is an ``nnx.Param`` but the running statistics, which are
``nnx.BatchStat`` (the spec's ``trainable=False``): not counted as parameters, not given
gradients, and updated by a call in training mode only.

Layout differences from the canonical format (``models/spec.py``):

* ``nnx.Linear.kernel`` is ``(in, out)``, as canonical: copied as is.
* ``nnx.Conv.kernel`` is HWIO: transposed from and to OIHW.
* The CNN reads NCHW input ``(N, 1, 28, 28)`` like the other frameworks' models (so
  every ONNX export has the same input) but computes in NHWC, the layout XLA's
  convolutions and Flax's layers are written for; the input is transposed once inside
  the model. Its flatten therefore runs in (H, W, C) order instead of the canonical
  (C, H, W), and, as in the Keras adapter, the rows of ``fc1.kernel`` are permuted when
  weights are loaded and saved rather than transposing the activations back at run time:
  that would cost a transpose per call natively and a ``Transpose`` node in the export
  for no change in the maths.
* The ResNet, like the CNN, reads NCHW input and computes in NHWC. Its 3x3 convolutions
  are padded by one pixel on every side, written out as ``((1, 1), (1, 1))``: ``"SAME"``
  pads asymmetrically at stride 2 (nothing above and left, one below and right, as
  TensorFlow does), which would sample the 28x28 map at other pixels than PyTorch and
  the reference. It ends in a global average pooling, so it has no flatten-order issue.
* The GAN (``gen`` and ``disc`` submodules; calling it runs the generator) computes in
  NHWC too. The generator's dense projection writes its 64x7x7 features in (H, W, C)
  order, so the columns of ``gen.fc.kernel`` are permuted on load and save, the way the
  CNN's ``fc1`` rows are, and its (N, 28, 28, 1) output is transposed to the canonical
  (N, 1, 28, 28) at the end; the discriminator reads NCHW images like the CNN, and the
  rows of ``disc.fc.kernel`` are permuted like ``fc1``'s. Its transposed convolutions
  are ``nnx.ConvTranspose`` with ``transpose_kernel=True``: JAX then computes the
  gradient of a convolution, flipping the kernel spatially and swapping its channel
  axes itself, so the kernel is the canonical IOHW one laid out ``(kh, kw, out, in)``
  (the same permutation as OIHW -> HWIO, no flip by hand). Flax pads the *dilated
  input*, where PyTorch's padding crops the full output: PyTorch's ``p = 1`` with
  ``k = 4`` is ``k - 1 - p = 2`` on every side here (checked against
  ``models.reference._conv_transpose``: equal to 2e-6 with this layout, far off with
  the kernel flipped by hand as well). The discriminator's strided convolutions
  are padded explicitly like the ResNet's.
* ``nnx.BatchNorm`` normalises the last axis (the NHWC channel axis) with Flax's
  ``momentum`` = ``1 - BN_MOMENTUM`` of the spec, ``BN_EPSILON``, and
  ``use_fast_variance=False`` (the two-pass variance the reference computes, rather than
  ``E[x^2] - E[x]^2``). Its running variance moves towards the batch's biased variance,
  like Keras's.
* The LSTM is a layer of this module holding ``kernel (in, 4H)``,
  ``recurrent_kernel (H, 4H)`` and one ``bias (4H,)`` in the canonical i, f, g, o gate
  order, so it needs no conversion at all. It is written with ``jax.lax.scan`` (exported
  by jax2onnx as an ONNX ``Loop``); the input projection of all time steps is one matrix
  product before the scan, leaving only the recurrent product inside it.

Every matrix product and convolution asks for ``Precision.HIGHEST``: on the CPU that is
what XLA does anyway, and on a GPU it keeps JAX from using TF32 (its default for float32
there), so the comparison stays in strict float32 like the other frameworks'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.spec import (
    BN_EPSILON,
    BN_MOMENTUM,
    GAN_KERNEL,
    GAN_PADDING,
    GAN_STRIDE,
    LEAKY_SLOPE,
    ModelSpec,
    ResidualBlock,
    resnet_blocks,
)

PRECISION = jax.lax.Precision.HIGHEST
Converter = Callable[[np.ndarray], np.ndarray]
#: Canonical batch normalisation tensors -> ``nnx.BatchNorm``'s names for them.
BN_NAMES = {"gamma": "scale", "beta": "bias", "moving_mean": "mean", "moving_variance": "var"}


def _linear(shapes: Mapping[str, tuple[int, ...]], name: str, rngs: nnx.Rngs) -> nnx.Linear:
    n_in, n_out = shapes[f"{name}.kernel"]
    return nnx.Linear(
        n_in,
        n_out,
        kernel_init=nnx.initializers.glorot_uniform(),
        precision=PRECISION,
        rngs=rngs,
    )


def _conv(shapes: Mapping[str, tuple[int, ...]], name: str, rngs: nnx.Rngs) -> nnx.Conv:
    c_out, c_in, kh, kw = shapes[f"{name}.kernel"]
    return nnx.Conv(
        c_in,
        c_out,
        kernel_size=(kh, kw),
        padding="VALID",
        kernel_init=nnx.initializers.glorot_uniform(),
        precision=PRECISION,
        rngs=rngs,
    )


class CNN(nnx.Module):
    """LeNet-5 style CNN taking NCHW input and computing in NHWC (see the module doc)."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        shapes = spec.param_shapes
        self.pool = spec.hyper["pool"]
        self.conv1 = _conv(shapes, "conv1", rngs)
        self.conv2 = _conv(shapes, "conv2", rngs)
        self.fc1 = _linear(shapes, "fc1", rngs)
        self.fc2 = _linear(shapes, "fc2", rngs)
        self.fc3 = _linear(shapes, "fc3", rngs)

    def _pool(self, x: jax.Array) -> jax.Array:
        # Keyword arguments: jax2onnx's max_pool plugin fails on positional ones.
        window = (self.pool, self.pool)
        return nnx.max_pool(x, window_shape=window, strides=window, padding="VALID")

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        x = self._pool(nnx.relu(self.conv1(x)))
        x = self._pool(nnx.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)  # (H, W, C) order: fc1's rows are permuted to match
        x = nnx.relu(self.fc1(x))
        x = nnx.relu(self.fc2(x))
        return self.fc3(x)


def _lstm_bias(hidden: int) -> jax.Array:
    """Zeros with a forget-gate bias of one, the spec's ``lstm_bias`` initialiser."""
    return jnp.zeros((4 * hidden,), jnp.float32).at[hidden : 2 * hidden].set(1.0)


class LSTMLayer(nnx.Module):
    """A single-layer LSTM over batch-first input, returning the last hidden state.

    Parameters are in the canonical layout (gates i, f, g, o; one bias), so the weight
    mapping copies them unchanged. ``nnx.OptimizedLSTMCell`` has the same gate order and
    a single bias too, but under other names (``dense_i``/``dense_h``), and driving an
    NNX cell through ``lax.scan`` takes a split/merge per step; the recurrence is a few
    lines, written out here.
    """

    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = hidden
        glorot, orthogonal = nnx.initializers.glorot_uniform(), nnx.initializers.orthogonal()
        self.kernel = nnx.Param(glorot(rngs.params(), (features, 4 * hidden)))
        self.recurrent_kernel = nnx.Param(orthogonal(rngs.params(), (hidden, 4 * hidden)))
        self.bias = nnx.Param(_lstm_bias(hidden))

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, recurrent, bias = self.kernel[...], self.recurrent_kernel[...], self.bias[...]
        # The input projection of every step at once: (T, N, 4H), time-major for the scan.
        zx = jnp.matmul(jnp.swapaxes(x, 0, 1), kernel, precision=PRECISION) + bias
        zeros = jnp.zeros((x.shape[0], self.hidden), x.dtype)

        def step(carry: tuple[jax.Array, jax.Array], z_t: jax.Array) -> tuple[Any, None]:
            h, c = carry
            z = z_t + jnp.matmul(h, recurrent, precision=PRECISION)
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        (h, _), _ = jax.lax.scan(step, (zeros, zeros), zx)
        return h


class LSTM(nnx.Module):
    """LSTM over the rows of the image, last hidden state -> dense."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        h = spec.hyper
        self.lstm = LSTMLayer(h["features"], h["hidden"], rngs=rngs)
        self.fc = _linear(spec.param_shapes, "fc", rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(self.lstm(x))


class MLP(nnx.Module):
    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        self.fc1 = _linear(spec.param_shapes, "fc1", rngs)
        self.fc2 = _linear(spec.param_shapes, "fc2", rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(nnx.relu(self.fc1(x)))


def _batch_norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """Batch normalisation over the channel (last) axis, in inference mode.

    Built with ``use_running_average=True``: every forward function and the export
    normalise by the running statistics, and only the training step makes a training
    view of the model (:func:`training_view`).
    """
    return nnx.BatchNorm(
        features,
        use_running_average=True,
        momentum=1.0 - BN_MOMENTUM,
        epsilon=BN_EPSILON,
        use_fast_variance=False,
        rngs=rngs,
    )


def _resnet_conv(
    shapes: Mapping[str, tuple[int, ...]], name: str, stride: int, rngs: nnx.Rngs
) -> nnx.Conv:
    """A bias-free convolution padded by ``k // 2`` on every side (see the module doc)."""
    c_out, c_in, kh, kw = shapes[f"{name}.kernel"]
    return nnx.Conv(
        c_in,
        c_out,
        kernel_size=(kh, kw),
        strides=(stride, stride),
        padding=((kh // 2, kh // 2), (kw // 2, kw // 2)),
        use_bias=False,
        kernel_init=nnx.initializers.glorot_uniform(),
        precision=PRECISION,
        rngs=rngs,
    )


class ConvBN(nnx.Module):
    """``conv`` then ``bn``: the stem, and a projection shortcut."""

    def __init__(
        self, shapes: Mapping[str, tuple[int, ...]], name: str, stride: int, *, rngs: nnx.Rngs
    ) -> None:
        self.conv = _resnet_conv(shapes, f"{name}.conv", stride, rngs)
        self.bn = _batch_norm(shapes[f"{name}.bn.gamma"][0], rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.bn(self.conv(x))


class BasicBlock(nnx.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or 1x1 conv + BN where
    the shape changes), then ReLU; submodule names follow the canonical ones."""

    def __init__(
        self, shapes: Mapping[str, tuple[int, ...]], blk: ResidualBlock, *, rngs: nnx.Rngs
    ) -> None:
        self.projection = blk.projection
        self.conv1 = _resnet_conv(shapes, f"{blk.name}.conv1", blk.stride, rngs)
        self.bn1 = _batch_norm(blk.c_out, rngs)
        self.conv2 = _resnet_conv(shapes, f"{blk.name}.conv2", 1, rngs)
        self.bn2 = _batch_norm(blk.c_out, rngs)
        if blk.projection:
            self.shortcut = ConvBN(shapes, f"{blk.name}.shortcut", blk.stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nnx.relu(y + (self.shortcut(x) if self.projection else x))


class ResNetStage(nnx.Module):
    """The blocks of one stage, as attributes ``block0``, ``block1``... (their canonical
    names: a list attribute would name them ``0``, ``1``... in the state)."""

    def __init__(
        self,
        shapes: Mapping[str, tuple[int, ...]],
        blocks: list[ResidualBlock],
        *,
        rngs: nnx.Rngs,
    ) -> None:
        self.names = tuple(blk.name.split(".")[1] for blk in blocks)
        for blk, name in zip(blocks, self.names, strict=True):
            setattr(self, name, BasicBlock(shapes, blk, rngs=rngs))

    def __call__(self, x: jax.Array) -> jax.Array:
        for name in self.names:
            x = getattr(self, name)(x)
        return x


class ResNet(nnx.Module):
    """ResNet-20 taking NCHW input and computing in NHWC (see the module doc)."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        shapes = spec.param_shapes
        self.stem = ConvBN(shapes, "stem", 1, rngs=rngs)
        stages: dict[str, list[ResidualBlock]] = {}
        for blk in resnet_blocks(spec):
            stages.setdefault(blk.name.split(".")[0], []).append(blk)
        self.stages = tuple(stages)
        for stage, blocks in stages.items():  # stage1, stage2, stage3
            setattr(self, stage, ResNetStage(shapes, blocks, rngs=rngs))
        self.fc = _linear(shapes, "fc", rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        x = nnx.relu(self.stem(x))
        for stage in self.stages:
            x = getattr(self, stage)(x)
        return self.fc(x.mean(axis=(1, 2)))  # global average pooling


def _gan_conv(shapes: Mapping[str, tuple[int, ...]], name: str, rngs: nnx.Rngs) -> nnx.Conv:
    """The discriminator's stride-2 convolution, padded by ``GAN_PADDING`` on every side
    as PyTorch's ``padding=1`` is. Written out: ``"SAME"`` happens to pad (1, 1) at
    these sizes too, but by TensorFlow's rule, which pads asymmetrically at others."""
    c_out, c_in, kh, kw = shapes[f"{name}.kernel"]
    p = GAN_PADDING
    return nnx.Conv(
        c_in,
        c_out,
        kernel_size=(kh, kw),
        strides=(GAN_STRIDE, GAN_STRIDE),
        padding=((p, p), (p, p)),
        kernel_init=nnx.initializers.glorot_uniform(),
        precision=PRECISION,
        rngs=rngs,
    )


def _deconv(
    shapes: Mapping[str, tuple[int, ...]], name: str, use_bias: bool, rngs: nnx.Rngs
) -> nnx.ConvTranspose:
    """PyTorch's ``ConvTranspose2d(k, stride=2, padding=1)`` as an ``nnx.ConvTranspose``
    (see the module doc for the padding and ``transpose_kernel``)."""
    c_in, c_out, kh, kw = shapes[f"{name}.kernel"]  # canonical IOHW
    if (kh, kw) != (GAN_KERNEL, GAN_KERNEL):
        raise RuntimeError(f"{name}: kernel {(kh, kw)}, the spec says {GAN_KERNEL}")
    pad = ((kh - 1 - GAN_PADDING,) * 2, (kw - 1 - GAN_PADDING,) * 2)
    return nnx.ConvTranspose(
        c_in,
        c_out,
        kernel_size=(kh, kw),
        strides=(GAN_STRIDE, GAN_STRIDE),
        padding=pad,
        use_bias=use_bias,
        transpose_kernel=True,
        kernel_init=nnx.initializers.glorot_uniform(),
        precision=PRECISION,
        rngs=rngs,
    )


class Generator(nnx.Module):
    """Latent vectors -> (N, 1, 28, 28) images, computed in NHWC (see the module doc)."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        shapes, h = spec.param_shapes, spec.hyper
        self.base, self.channels = h["base"], h["gen0"]
        n_in, n_out = shapes["gen.fc.kernel"]
        self.fc = nnx.Linear(
            n_in,
            n_out,
            use_bias=False,
            kernel_init=nnx.initializers.glorot_uniform(),
            precision=PRECISION,
            rngs=rngs,
        )
        self.bn0 = _batch_norm(h["gen0"], rngs)
        self.deconv1 = _deconv(shapes, "gen.deconv1", False, rngs)
        self.bn1 = _batch_norm(h["gen1"], rngs)
        self.deconv2 = _deconv(shapes, "gen.deconv2", True, rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        # (H, W, C) order: fc's columns are permuted to match the canonical (C, H, W).
        x = self.fc(z).reshape(z.shape[0], self.base, self.base, self.channels)
        x = nnx.relu(self.bn0(x))
        x = nnx.relu(self.bn1(self.deconv1(x)))
        x = nnx.sigmoid(self.deconv2(x))
        return jnp.transpose(x, (0, 3, 1, 2))  # NHWC -> NCHW, the canonical images


class Discriminator(nnx.Module):
    """(N, 1, 28, 28) images -> one logit each, computed in NHWC like the CNN."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        shapes = spec.param_shapes
        self.conv1 = _gan_conv(shapes, "disc.conv1", rngs)
        self.conv2 = _gan_conv(shapes, "disc.conv2", rngs)
        self.fc = _linear(shapes, "disc.fc", rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        x = nnx.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        x = nnx.leaky_relu(self.conv2(x), LEAKY_SLOPE)
        x = x.reshape(x.shape[0], -1)  # (H, W, C) order: fc's rows are permuted to match
        return self.fc(x)


class GAN(nnx.Module):
    """Both networks under their canonical prefixes (``gen``, ``disc``); calling the
    module generates (what inference runs and the export holds), the adapter's training
    step drives both, and its ``discriminate`` calls ``disc``."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs) -> None:
        self.gen = Generator(spec, rngs=rngs)
        self.disc = Discriminator(spec, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.gen(z)


ARCHITECTURES: dict[str, type[nnx.Module]] = {
    "cnn": CNN,
    "lstm": LSTM,
    "mlp": MLP,
    "resnet": ResNet,
    "gan": GAN,
}


def build_model(spec: ModelSpec, seed: int = 0) -> nnx.Module:
    """The NNX module for ``spec``, on JAX's default device (weights from its initialisers),
    in inference mode (batch normalisation by the running statistics).

    Raises if the module's variables are not exactly the spec's canonical tensors (under
    :func:`flax_name`): the weight conversion below relies on it.
    """
    if spec.arch not in ARCHITECTURES:
        raise ValueError(f"no Flax model for spec {spec.name!r}")
    module = ARCHITECTURES[spec.arch](spec, rngs=nnx.Rngs(seed))
    names = set(flat_names(nnx.to_pure_dict(nnx.state(module))))
    want = {flax_name(name) for name in spec.param_shapes}
    if names != want:
        raise RuntimeError(
            f"the Flax {spec.name} model holds {sorted(names)}, the spec "
            f"{sorted(want)}: build_model and the spec disagree"
        )
    return module


def training_view(module: nnx.Module) -> nnx.Module:
    """``module`` with its batch normalisation in training mode (normalising by the
    batch's statistics and updating the running ones), sharing its variables.

    ``use_running_average`` is a static attribute, part of the graphdef: the training
    step merges its parameters into this view's graphdef, every other function into the
    inference-mode one of :func:`build_model`. Models without batch normalisation come
    back unchanged.
    """
    return nnx.view(module, use_running_average=False, raise_if_not_found=False)


def flax_name(name: str) -> str:
    """The canonical tensor ``name``'s flat name in the Flax state: the same, but for
    the last part of a batch normalisation tensor's (``stem.bn.gamma`` ->
    ``stem.bn.scale``)."""
    prefix, _, var = name.rpartition(".")
    return f"{prefix}.{BN_NAMES[var]}" if var in BN_NAMES else name


def flat_names(pure: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"fc1": {"kernel": a}}`` -> ``{"fc1.kernel": a}``."""
    out: dict[str, Any] = {}
    for key, value in pure.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_names(value, f"{name}."))
        else:
            out[name] = value
    return out


def _feature_map(spec: ModelSpec) -> tuple[int, int, int]:
    """(C, H, W) of the CNN's last pooled feature map, from the spec's sizes."""
    h = spec.hyper
    size = spec.input_shape[1]
    for _ in ("conv1", "conv2"):
        size = (size - h["kernel"] + 1) // h["pool"]
    c, hh, ww = h["conv2"], size, size
    if c * hh * ww != spec.param_shapes["fc1.kernel"][0]:
        raise RuntimeError(f"feature map {(c, hh, ww)} does not feed fc1.kernel's rows")
    return c, hh, ww


def _layout_converters(spec: ModelSpec) -> dict[str, tuple[Converter, Converter]]:
    """``{canonical name: (to_flax, from_flax)}`` for tensors whose layouts differ.

    Tensors not listed (dense and LSTM kernels, every bias, every batch normalisation
    tensor) are stored identically.
    """
    out: dict[str, tuple[Converter, Converter]] = {}
    if spec.arch not in ("cnn", "resnet", "gan"):
        return out
    # Convolution kernels OIHW <-> HWIO, and the GAN's transposed-convolution kernels
    # IOHW <-> (kh, kw, out, in) (``transpose_kernel=True``): the same permutation.
    for name, shape in spec.param_shapes.items():
        if name.endswith(".kernel") and len(shape) == 4:
            out[name] = (lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1))
    if spec.arch == "cnn":
        out["fc1.kernel"] = _rows_chw_hwc(*_feature_map(spec))
    if spec.arch == "gan":
        h = spec.hyper
        out["gen.fc.kernel"] = _columns_chw_hwc(h["gen0"], h["base"], h["base"])
        out["disc.fc.kernel"] = _rows_chw_hwc(h["disc2"], h["base"], h["base"])
    return out


def _rows_chw_hwc(c: int, h: int, w: int) -> tuple[Converter, Converter]:
    """A dense kernel read after a flatten: its rows from the canonical (C, H, W) order
    to the NHWC model's (H, W, C), and back."""
    return (
        lambda k: k.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1),
        lambda k: k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1),
    )


def _columns_chw_hwc(c: int, h: int, w: int) -> tuple[Converter, Converter]:
    """A dense kernel whose output is reshaped to a feature map (the generator's
    projection): its columns from (C, H, W) order to (H, W, C), and back."""
    return (
        lambda k: k.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(-1, c * h * w),
        lambda k: k.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, c * h * w),
    )


def to_flax(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Canonical ``weights`` -> the model's pure state dict (float32 numpy, Flax layouts
    and names), nested one level per dot."""
    converters = _layout_converters(spec)
    pure: dict[str, Any] = {}
    for name in spec.param_shapes:
        w = np.asarray(weights[name], dtype=np.float32)
        if name in converters:
            w = converters[name][0](w)
        *path, var = flax_name(name).split(".")
        node = pure
        for key in path:
            node = node.setdefault(key, {})
        node[var] = np.ascontiguousarray(w)
    return pure


def from_flax(spec: ModelSpec, pure: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's pure state dict -> canonical weights (float32, contiguous)."""
    converters = _layout_converters(spec)
    flat = flat_names(pure)
    out = {}
    for name in spec.param_shapes:
        w = np.asarray(flat[flax_name(name)], dtype=np.float32)
        if name in converters:
            w = converters[name][1](w)
        out[name] = np.ascontiguousarray(w)
    return out
