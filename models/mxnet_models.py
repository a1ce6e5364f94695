"""MXNet Gluon versions of the specs, and canonical <-> MXNet weight conversion.

Every size is read from the spec (its hyper-parameters, canonical weight shapes and, for
the ResNet, ``resnet_blocks``), so a change to ``models/spec.py`` reaches this file
without edits here. The Gluon child blocks carry the canonical layer names (``conv1``,
``fc1``, ``lstm``, and nested for the ResNet: ``stage2.block0.shortcut.conv``...), which
lets the weight conversion find each layer by following the dotted prefix of its
canonical weight name through the block's attributes.

Layout differences from the canonical format (``models/spec.py``):

* ``Conv2D.weight`` is OIHW, as canonical: copied as is.
* ``Dense.weight`` is ``(out, in)``, canonical is ``(in, out)``: transposed.
* ``rnn.LSTM`` holds ``i2h_weight (4H, in)`` and ``h2h_weight (4H, H)``: transposed. Its
  gates are stacked i, f, g, o (checked against ``models.reference``), the canonical
  order, so no gate permutation is needed. Of its two biases the canonical bias goes
  into ``i2h_bias``; ``h2h_bias`` is held at zero with ``grad_req='null'`` so that the
  optimizer never moves it and it is not counted as a trainable parameter.
* ``nn.Conv2DTranspose.weight`` (MXNet's ``Deconvolution``) is ``(in, out, kh, kw)``,
  the canonical IOHW, and MXNet's transposed convolution is the gradient of its
  convolution, as ONNX ``ConvTranspose`` and the reference define it (no kernel flip):
  copied as is. Its ``padding`` crops the full ``(in - 1) * stride + k`` output on every
  side, as PyTorch's does (checked against ``models.reference``).
* ``nn.BatchNorm`` holds ``gamma``/``beta``/``running_mean``/``running_var``: canonical
  ``gamma``/``beta``/``moving_mean``/``moving_variance``, copied as they are. The running
  statistics are Gluon parameters with ``grad_req='null'`` (MXNet "auxiliary states"):
  they are in ``collect_params()``, so a block built with ``share`` shares them too, and
  they are not counted as trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import nn, rnn

from models.spec import (
    BN_EPSILON,
    BN_MOMENTUM,
    GAN_PADDING,
    GAN_STRIDE,
    LEAKY_SLOPE,
    ModelSpec,
    ResidualBlock,
    resnet_blocks,
)


def _dense(shapes: Mapping[str, tuple[int, ...]], name: str, activation: str | None) -> nn.Dense:
    n_in, n_out = shapes[f"{name}.kernel"]
    # in_units given up front: the weights exist right after initialize(), no deferred init.
    return nn.Dense(n_out, activation=activation, in_units=n_in, prefix=f"{name}_")


def _conv(shapes: Mapping[str, tuple[int, ...]], name: str) -> nn.Conv2D:
    c_out, c_in, kh, kw = shapes[f"{name}.kernel"]
    return nn.Conv2D(c_out, (kh, kw), in_channels=c_in, activation="relu", prefix=f"{name}_")


class CNN(gluon.HybridBlock):
    """LeNet-5 style CNN; NCHW input, so the flatten is already in canonical (C, H, W) order."""

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shapes, pool = spec.param_shapes, spec.hyper["pool"]
        with self.name_scope():
            self.conv1 = _conv(shapes, "conv1")
            self.pool1 = nn.MaxPool2D(pool)
            self.conv2 = _conv(shapes, "conv2")
            self.pool2 = nn.MaxPool2D(pool)
            self.flatten = nn.Flatten()
            self.fc1 = _dense(shapes, "fc1", "relu")
            self.fc2 = _dense(shapes, "fc2", "relu")
            self.fc3 = _dense(shapes, "fc3", None)

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # F: mx.nd or mx.sym
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc3(self.fc2(self.fc1(self.flatten(x))))


class LSTM(gluon.HybridBlock):
    """One LSTM layer over the image rows (batch-first), last hidden state -> logits."""

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shapes = spec.param_shapes
        n_in, n_gates = shapes["lstm.kernel"]
        with self.name_scope():
            self.lstm = rnn.LSTM(n_gates // 4, layout="NTC", input_size=n_in, prefix="lstm_")
            self.fc = _dense(shapes, "fc", None)

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # F: mx.nd or mx.sym
        seq = self.lstm(x)  # (N, T, H)
        # The last step, kept 2-D: slice_axis + reshape export cleanly to ONNX Slice/Reshape.
        last = F.slice_axis(seq, axis=1, begin=-1, end=None).reshape((0, -1))
        return self.fc(last)


class MLP(gluon.HybridBlock):
    """784-128-10 with relu."""

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shapes = spec.param_shapes
        with self.name_scope():
            self.fc1 = _dense(shapes, "fc1", "relu")
            self.fc2 = _dense(shapes, "fc2", None)

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # F: mx.nd or mx.sym
        return self.fc2(self.fc1(x))


def _bn(channels: int, name: str) -> nn.BatchNorm:
    """Batch normalisation over the channel axis with the spec's arithmetic: MXNet's
    ``momentum`` is the weight of the old running value, ``1 - BN_MOMENTUM``.
    ``scale=True`` (the default, repeated because it matters) is ``fix_gamma=False`` in the
    operator: with ``fix_gamma=True`` MXNet would ignore gamma, and mx.onnx would still
    export it into the ONNX ``BatchNormalization``."""
    return nn.BatchNorm(
        axis=1,
        momentum=1.0 - BN_MOMENTUM,
        epsilon=BN_EPSILON,
        center=True,
        scale=True,
        in_channels=channels,
        prefix=f"{name}_",
    )


def _conv_nobias(c_in: int, c_out: int, k: int, stride: int, name: str) -> nn.Conv2D:
    """A convolution without bias (batch normalisation follows), padding ``k // 2``:
    1 for 3x3, 0 for the 1x1 shortcut; symmetric, as the reference and PyTorch pad."""
    return nn.Conv2D(
        c_out,
        k,
        strides=stride,
        padding=k // 2,
        in_channels=c_in,
        use_bias=False,
        prefix=f"{name}_",
    )


class _ConvBN(gluon.HybridBlock):
    """``conv`` then ``bn`` (no activation): the stem (ReLU applied by the caller) and
    the projection shortcut."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = _conv_nobias(c_in, c_out, k, stride, "conv")
            self.bn = _bn(c_out, "bn")

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return self.bn(self.conv(x))


class BasicBlock(gluon.HybridBlock):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or 1x1 conv + BN where
    the shape changes), then ReLU; child names follow the canonical ones."""

    def __init__(self, blk: ResidualBlock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = _conv_nobias(blk.c_in, blk.c_out, 3, blk.stride, "conv1")
            self.bn1 = _bn(blk.c_out, "bn1")
            self.conv2 = _conv_nobias(blk.c_out, blk.c_out, 3, 1, "conv2")
            self.bn2 = _bn(blk.c_out, "bn2")
            self.shortcut = (
                _ConvBN(blk.c_in, blk.c_out, 1, blk.stride, prefix="shortcut_")
                if blk.projection
                else None
            )

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class _Stage(gluon.HybridBlock):
    """The residual blocks of one stage, as attributes ``block0``, ``block1``... (a
    ``HybridSequential`` would name them by index only, and the weight conversion looks
    layers up by their canonical names)."""

    def __init__(self, blocks: list[ResidualBlock], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._order = [blk.name.split(".")[1] for blk in blocks]
        with self.name_scope():
            for blk, name in zip(blocks, self._order, strict=True):
                setattr(self, name, BasicBlock(blk, prefix=f"{name}_"))

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        for name in self._order:
            x = getattr(self, name)(x)
        return x


class ResNet(gluon.HybridBlock):
    """ResNet-20 as in ``models/spec.py``: stem, three stages, global average pooling,
    dense. In ``autograd.record()`` (train mode) every BatchNorm normalises by the
    batch's statistics and updates its running ones; outside it, it uses the running
    statistics, which is also what the exported graph does."""

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        h, shapes = spec.hyper, spec.param_shapes
        stages: dict[str, list[ResidualBlock]] = {}
        for blk in resnet_blocks(spec):
            stages.setdefault(blk.name.split(".")[0], []).append(blk)
        self._stages = list(stages)  # stage1, stage2, stage3
        with self.name_scope():
            self.stem = _ConvBN(spec.input_shape[0], h["stem"], 3, 1, prefix="stem_")
            for stage, blocks in stages.items():
                setattr(self, stage, _Stage(blocks, prefix=f"{stage}_"))
            self.pool = nn.GlobalAvgPool2D()
            self.fc = _dense(shapes, "fc", None)

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # F: mx.nd or mx.sym
        x = F.relu(self.stem(x))
        for stage in self._stages:
            x = getattr(self, stage)(x)
        # Global average pooling as a global Pooling, (N, C, 1, 1), which the Dense
        # flattens: ONNX GlobalAveragePool, Flatten, Gemm. Not F.mean(axis=(2, 3)):
        # mx.onnx writes ReduceMean's axes as an attribute (right for opset 13) and then
        # validates its graph against the installed onnx's newest opset, where axes is
        # an input, and refuses it ("Unrecognized attribute: axes for operator
        # ReduceMean").
        return self.fc(self.pool(x))


class Generator(gluon.HybridBlock):
    """Latent vectors -> images: dense (no bias), reshaped to (C, H, W) as canonical,
    BN, ReLU, then two stride-2 transposed convolutions (BN and ReLU between them), the
    last through a sigmoid.

    ``training_view=True`` builds the generator the training step differentiates: the
    same parameters and the same function, with the last transposed convolution (to
    one channel) computed as :class:`_OneChannelDeconv` does, since MXNet 1.9.1's
    oneDNN backward of a one-channel ``Deconvolution`` fails."""

    def __init__(self, spec: ModelSpec, training_view: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        h, shapes = spec.hyper, spec.param_shapes
        self._shape = (h["gen0"], h["base"], h["base"])
        n_in, n_out = shapes["gen.fc.kernel"]
        with self.name_scope():
            self.fc = nn.Dense(n_out, use_bias=False, in_units=n_in, prefix="fc_")
            self.bn0 = _bn(h["gen0"], "bn0")
            self.deconv1 = _deconv(shapes, "deconv1", "gen.deconv1", use_bias=False)
            self.bn1 = _bn(h["gen1"], "bn1")
            self.deconv2 = _deconv(
                shapes, "deconv2", "gen.deconv2", use_bias=True, one_channel_grad=training_view
            )

    def hybrid_forward(self, F: Any, z: Any) -> Any:  # F: mx.nd or mx.sym
        # reshape (0, C, H, W): 0 keeps the batch axis, which a symbol does not know.
        x = F.relu(self.bn0(self.fc(z).reshape((0, *self._shape))))
        x = F.relu(self.bn1(self.deconv1(x)))
        return F.sigmoid(self.deconv2(x))


class Discriminator(gluon.HybridBlock):
    """Images -> one logit each ("real" when positive): two stride-2 convolutions with
    leaky ReLU, flattened in NCHW's (C, H, W) order, the canonical one, then dense."""

    def __init__(self, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shapes = spec.param_shapes
        with self.name_scope():
            self.conv1 = _gan_conv(shapes, "conv1", "disc.conv1")
            self.conv2 = _gan_conv(shapes, "conv2", "disc.conv2")
            n_in, n_out = shapes["disc.fc.kernel"]
            self.fc = nn.Dense(n_out, in_units=n_in, prefix="fc_")

    def hybrid_forward(self, F: Any, x: Any) -> Any:  # F: mx.nd or mx.sym
        x = F.LeakyReLU(self.conv1(x), act_type="leaky", slope=LEAKY_SLOPE)
        x = F.LeakyReLU(self.conv2(x), act_type="leaky", slope=LEAKY_SLOPE)
        return self.fc(x)  # Dense flattens its input (N, C*H*W) first


class GAN(gluon.Block):
    """Both networks as children ``gen`` and ``disc`` (the canonical prefixes, which the
    weight conversion follows). Calling the block generates: inference, the hybridized
    mode and the export run the generator only; the training step calls the two
    children itself (``bench/adapters/mxnet_adapter.py``).

    A plain ``Block``, not a ``HybridBlock``: ``hybridize()`` on it hybridizes both
    children, each with a cached graph of its own (the generator's for inference, both
    for the training step). A hybridized outer block would build one graph of what its
    forward computes, the generator alone, and warn (an error under the tests' warning
    filter) that the discriminator's parameters are used by no computation. The export
    is the generator child's graph.

    ``training_view``: see :class:`Generator`; the adapter's training step runs such a
    block built on the model's parameters (``build_model(..., share=model,
    training_view=True)``)."""

    def __init__(self, spec: ModelSpec, training_view: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.gen = Generator(spec, training_view, prefix="gen_")
            self.disc = Discriminator(spec, prefix="disc_")

    def forward(self, z: Any) -> Any:  # z: the latent vectors
        return self.gen(z)


class _OneChannelDeconv(nn.Conv2DTranspose):
    """A transposed convolution to one output channel, computed as a grouped one (a group
    per input channel, each to one map: the weight ``(in, 1, kh, kw)`` is already that
    layout) whose maps are then summed, plus the bias. The same function and the same
    parameters as ``nn.Conv2DTranspose``, a different set of operators: in MXNet 1.9.1
    (oneDNN 2.4) the backward of a ``Deconvolution`` with ``num_filter=1`` and more than
    one input channel fails with "could not create a primitive descriptor for a reorder
    primitive" (for any kernel, stride, padding or batch size, imperative or
    hybridized), and the generator's gradient must pass through that layer. Padding the
    weight to two output channels and slicing one off crashes the process instead.
    Only the training view uses this: inference and the export keep the plain
    ``Deconvolution`` (ONNX ``ConvTranspose``), whose forward pass is fine."""

    def hybrid_forward(self, F: Any, x: Any, weight: Any, bias: Any = None) -> Any:
        c_in = self._in_channels
        kwargs = {**self._kwargs, "num_filter": c_in, "num_group": c_in, "no_bias": True}
        y = F.sum(F.Deconvolution(x, weight, name="fwd", **kwargs), axis=1, keepdims=True)
        return y if bias is None else F.broadcast_add(y, bias.reshape((1, -1, 1, 1)))


def _deconv(
    shapes: Mapping[str, tuple[int, ...]],
    name: str,
    canonical: str,
    use_bias: bool,
    one_channel_grad: bool = False,
) -> nn.Conv2DTranspose:
    """The GAN's k4 s2 p1 transposed convolution: Gluon's ``padding`` is PyTorch's (output
    ``(in - 1) * 2 - 2 + 4 = 2 * in``), so no ``output_padding`` is needed. With
    ``one_channel_grad`` (one output channel only), a :class:`_OneChannelDeconv`."""
    c_in, c_out, kh, kw = shapes[f"{canonical}.kernel"]
    cls = _OneChannelDeconv if one_channel_grad else nn.Conv2DTranspose
    if one_channel_grad and c_out != 1:
        raise ValueError(f"{canonical}: {c_out} output channels, not one")
    return cls(
        c_out,
        (kh, kw),
        strides=GAN_STRIDE,
        padding=GAN_PADDING,
        in_channels=c_in,
        use_bias=use_bias,
        prefix=f"{name}_",
    )


def _gan_conv(shapes: Mapping[str, tuple[int, ...]], name: str, canonical: str) -> nn.Conv2D:
    """The discriminator's k4 s2 p1 convolution (with bias; the activation is applied
    by the caller)."""
    c_out, c_in, kh, kw = shapes[f"{canonical}.kernel"]
    return nn.Conv2D(
        c_out,
        (kh, kw),
        strides=GAN_STRIDE,
        padding=GAN_PADDING,
        in_channels=c_in,
        prefix=f"{name}_",
    )


_BLOCKS: dict[str, type[gluon.Block]] = {
    "cnn": CNN,
    "lstm": LSTM,
    "mlp": MLP,
    "resnet": ResNet,
    "gan": GAN,
}


def build_model(
    spec: ModelSpec,
    ctx: mx.Context | None = None,
    share: gluon.Block | None = None,
    training_view: bool = False,
) -> gluon.Block:
    """The Gluon model for ``spec``, initialised on ``ctx`` (weights arbitrary).

    With ``share``, a second block of the same model using ``share``'s parameters (the
    same ``Parameter`` objects, so the same arrays, gradients and ``grad_req``): Gluon
    looks each child's parameters up by their full names in the ``params`` dict given to
    the outer block. Nothing is initialised then; ``ctx`` is ``share``'s.
    ``training_view`` (the GAN only, with ``share``): the block its training step runs
    (see :class:`GAN`).
    """
    try:
        cls = _BLOCKS[spec.arch]
    except KeyError:
        raise ValueError(f"no MXNet definition of model {spec.name!r}") from None
    options = {}
    if training_view:
        if cls is not GAN or share is None:
            raise ValueError("a training view is of a GAN built already (share=...)")
        options["training_view"] = True
    if share is not None:
        shared = share.collect_params()
        block = cls(spec, prefix=share.prefix, params=shared, **options)
        if set(block.collect_params().keys()) != set(shared.keys()) or any(
            block.collect_params()[k] is not p for k, p in shared.items()
        ):
            raise RuntimeError(f"the {spec.name} block did not take the shared parameters")
        return block
    block = cls(spec, prefix=f"{spec.slug}_")
    block.initialize(ctx=ctx or mx.cpu())
    for param in _held_at_zero(block):
        param.set_data(mx.nd.zeros(param.shape))
        param.grad_req = "null"
    return block


def _held_at_zero(block: gluon.HybridBlock) -> list[gluon.Parameter]:
    """Recurrent biases: zero and untrainable, since the canonical bias is the input bias."""
    lstm = getattr(block, "lstm", None)
    return [lstm.l0_h2h_bias] if lstm is not None else []


#: Canonical batch normalisation tensors -> ``nn.BatchNorm``'s parameter attributes.
_BN_NAMES = {
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _bindings(block: gluon.HybridBlock, name: str) -> tuple[gluon.Parameter, bool]:
    """The MXNet parameter behind canonical weight ``name`` and whether it is transposed.

    The layer is found by following the name's dotted prefix through the blocks'
    attributes (``stage2.block0.shortcut.bn.gamma`` -> ``block.stage2.block0.shortcut.bn``).
    """
    path, kind = name.rsplit(".", 1)
    child = block
    for part in path.split("."):
        child = getattr(child, part)
    if isinstance(child, rnn.LSTM):
        param = {
            "kernel": child.l0_i2h_weight,
            "recurrent_kernel": child.l0_h2h_weight,
            "bias": child.l0_i2h_bias,
        }[kind]
        return param, kind != "bias"
    if isinstance(child, nn.BatchNorm):
        return getattr(child, _BN_NAMES[kind]), False
    param = child.weight if kind == "kernel" else child.bias
    return param, isinstance(child, nn.Dense) and kind == "kernel"


def get_canonical_weights(block: gluon.HybridBlock, spec: ModelSpec) -> dict[str, np.ndarray]:
    """``block``'s weights in canonical names and layouts (float32, host memory)."""
    out: dict[str, np.ndarray] = {}
    for name in spec.param_shapes:
        param, transpose = _bindings(block, name)
        value = param.data().asnumpy()
        if name == "lstm.bias":
            # The two biases only ever enter the maths as a sum; report that sum.
            value = value + block.lstm.l0_h2h_bias.data().asnumpy()
        out[name] = np.ascontiguousarray(value.T if transpose else value, dtype=np.float32)
    return out


def set_canonical_weights(
    block: gluon.HybridBlock, spec: ModelSpec, weights: Mapping[str, np.ndarray]
) -> None:
    """Load canonical ``weights`` into ``block`` (in place, so cached graphs see them)."""
    for name in spec.param_shapes:
        param, transpose = _bindings(block, name)
        value = np.asarray(weights[name], dtype=np.float32)
        param.set_data(mx.nd.array(value.T if transpose else value, dtype=np.float32))
    for param in _held_at_zero(block):
        param.set_data(mx.nd.zeros(param.shape))
