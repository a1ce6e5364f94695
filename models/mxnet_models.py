"""MXNet Gluon versions of the three specs, and canonical <-> MXNet weight conversion.

Every size is read from the spec (its hyper-parameters and canonical weight shapes), so
a change to ``models/spec.py`` reaches this file without edits here. The Gluon child
blocks carry the canonical layer names (``conv1``, ``fc1``, ``lstm``...), which lets the
weight conversion find each layer by the prefix of its canonical weight name.

Layout differences from the canonical format (``models/spec.py``):

* ``Conv2D.weight`` is OIHW, as canonical: copied as is.
* ``Dense.weight`` is ``(out, in)``, canonical is ``(in, out)``: transposed.
* ``rnn.LSTM`` holds ``i2h_weight (4H, in)`` and ``h2h_weight (4H, H)``: transposed. Its
  gates are stacked i, f, g, o (checked against ``models.reference``), the canonical
  order, so no gate permutation is needed. Of its two biases the canonical bias goes
  into ``i2h_bias``; ``h2h_bias`` is held at zero with ``grad_req='null'`` so that the
  optimizer never moves it and it is not counted as a trainable parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon import nn, rnn

from models.spec import ModelSpec


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


_BLOCKS: dict[str, type[gluon.HybridBlock]] = {"cnn": CNN, "lstm": LSTM, "mlp": MLP}


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


def _bindings(block: gluon.HybridBlock, name: str) -> tuple[gluon.Parameter, bool]:
    """The MXNet parameter behind canonical weight ``name`` and whether it is transposed."""
    layer, kind = name.split(".")
    child = getattr(block, layer)
    if isinstance(child, rnn.LSTM):
        param = {
            "kernel": child.l0_i2h_weight,
            "recurrent_kernel": child.l0_h2h_weight,
            "bias": child.l0_i2h_bias,
        }[kind]
        return param, kind != "bias"
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
