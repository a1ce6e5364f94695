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

from models.spec import BN_EPSILON, BN_MOMENTUM, ModelSpec, ResidualBlock, resnet_blocks


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


_BLOCKS: dict[str, type[gluon.HybridBlock]] = {
    "cnn": CNN,
    "lstm": LSTM,
    "mlp": MLP,
    "resnet": ResNet,
}


def build_model(
    spec: ModelSpec, ctx: mx.Context | None = None, share: gluon.HybridBlock | None = None
) -> gluon.HybridBlock:
    """The Gluon model for ``spec``, initialised on ``ctx`` (weights arbitrary).

    With ``share``, a second block of the same model using ``share``'s parameters (the
    same ``Parameter`` objects, so the same arrays, gradients and ``grad_req``): Gluon
    looks each child's parameters up by their full names in the ``params`` dict given to
    the outer block. Nothing is initialised then; ``ctx`` is ``share``'s.
    """
    try:
        cls = _BLOCKS[spec.arch]
    except KeyError:
        raise ValueError(f"no MXNet definition of model {spec.name!r}") from None
    if share is not None:
        shared = share.collect_params()
        block = cls(spec, prefix=share.prefix, params=shared)
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
