"""Framework-neutral specifications of the three benchmark models.

A spec says everything two frameworks must agree on for their versions of a model to
be the same function: layer sizes, activations, the canonical weight names with
their shapes and layouts, how the weights are initialised, and the training
hyper-parameters. The per-framework definitions (``models/torch_models.py`` and its
siblings) are built from these objects and nothing else.

Canonical layouts (what the neutral ``.npz`` weight file holds):

* convolution kernel ``(out_channels, in_channels, kh, kw)`` (OIHW), bias ``(out,)``;
  feature maps are NCHW, so the flatten before the first dense layer is in (C, H, W)
  order.
* dense kernel ``(in_features, out_features)``: ``y = x @ kernel + bias``.
* LSTM ``kernel (input, 4*hidden)``, ``recurrent_kernel (hidden, 4*hidden)`` and a
  single ``bias (4*hidden,)``; gates in the order input, forget, cell candidate,
  output (i, f, g, o). Frameworks with two biases (PyTorch, MXNet) receive the bias
  as their input bias, hold their recurrent bias at zero and untrainable (only the
  sum of the two ever enters the maths), and report ``b_ih + b_hh`` when saving.

>>> spec = get_spec("mlp")
>>> spec.param_count
101770
>>> [p.name for p in spec.params]
['fc1.kernel', 'fc1.bias', 'fc2.kernel', 'fc2.bias']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MODEL_NAMES: tuple[str, ...] = ("cnn", "lstm", "mlp")
NUM_CLASSES = 10
IMAGE_SIZE = 28


@dataclass(frozen=True)
class ParamSpec:
    """One canonical weight tensor."""

    name: str
    shape: tuple[int, ...]
    init: str  # "glorot_uniform", "orthogonal", "zeros" or "lstm_bias"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TrainSpec:
    """Training hyper-parameters shared by every framework."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    # Adam's constants differ between frameworks' defaults (Keras: epsilon 1e-7,
    # PyTorch and MXNet: 1e-8), so the spec states them and every adapter passes them.
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    target_accuracy: float = 0.95

    def __post_init__(self) -> None:
        if self.optimizer != "adam":
            raise ValueError(f"only 'adam' is specified for now, got {self.optimizer!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training spec: {self}")


@dataclass(frozen=True)
class ModelSpec:
    """A model every framework must implement identically."""

    name: str
    description: str
    input_shape: tuple[int, ...]  # one sample, without the batch axis
    hyper: dict[str, int] = field(hash=False)
    params: tuple[ParamSpec, ...]
    train: TrainSpec

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params)

    @property
    def flops_per_sample(self) -> int:
        """2 x multiply-accumulates of the convolutions, dense layers and LSTM matrix
        products for one sample (element-wise work not counted; see bench/flops.py)."""
        h = self.hyper
        if self.name == "cnn":
            k, size = h["kernel"], self.input_shape[1]
            c1 = size - k + 1  # 24
            c2 = c1 // h["pool"] - k + 1  # 8
            convs = (
                2 * self.input_shape[0] * k * k * h["conv1"] * c1 * c1
                + 2 * h["conv1"] * k * k * h["conv2"] * c2 * c2
            )
        elif self.name == "lstm":
            convs = 2 * h["steps"] * 4 * h["hidden"] * (h["features"] + h["hidden"])
        else:
            convs = 0
        dense = sum(
            2 * math.prod(p.shape)
            for p in self.params
            if p.name.endswith(".kernel") and len(p.shape) == 2 and not p.name.startswith("lstm")
        )
        return convs + dense

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape for p in self.params}

    def init_weights(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Initial weights, drawn in numpy so every framework starts from the same point.

        ``np.random.RandomState`` is used on purpose: its streams are frozen across
        numpy versions, and the MXNet environment runs an older numpy than the others.
        """
        rng = np.random.RandomState(seed)
        out: dict[str, np.ndarray] = {}
        for p in self.params:
            out[p.name] = _initialise(p, rng).astype(np.float32)
        return out


def _initialise(p: ParamSpec, rng: np.random.RandomState) -> np.ndarray:
    if p.init == "zeros":
        return np.zeros(p.shape)
    if p.init == "lstm_bias":
        # Forget-gate bias of one (Jozefowicz et al., 2015): the usual LSTM default.
        hidden = p.shape[0] // 4
        b = np.zeros(p.shape)
        b[hidden : 2 * hidden] = 1.0
        return b
    if p.init == "glorot_uniform":
        if len(p.shape) == 4:  # OIHW
            receptive = p.shape[2] * p.shape[3]
            fan_in, fan_out = p.shape[1] * receptive, p.shape[0] * receptive
        else:  # (in, out)
            fan_in, fan_out = p.shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=p.shape)
    if p.init == "orthogonal":
        rows, cols = p.shape
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        return q.T if rows < cols else q
    raise ValueError(f"unknown initialiser {p.init!r} for {p.name}")


def _dense(name: str, n_in: int, n_out: int) -> tuple[ParamSpec, ParamSpec]:
    return (
        ParamSpec(f"{name}.kernel", (n_in, n_out), "glorot_uniform"),
        ParamSpec(f"{name}.bias", (n_out,), "zeros"),
    )


def _conv(name: str, c_in: int, c_out: int, k: int) -> tuple[ParamSpec, ParamSpec]:
    return (
        ParamSpec(f"{name}.kernel", (c_out, c_in, k, k), "glorot_uniform"),
        ParamSpec(f"{name}.bias", (c_out,), "zeros"),
    )


def _cnn() -> ModelSpec:
    # LeNet-5 with ReLU and max pooling: 28 -conv5-> 24 -pool2-> 12 -conv5-> 8 -pool2-> 4.
    h = {"conv1": 6, "conv2": 16, "kernel": 5, "pool": 2, "fc1": 120, "fc2": 84}
    flat = h["conv2"] * 4 * 4
    return ModelSpec(
        name="cnn",
        description="LeNet-5 style CNN: conv5x5(6)-relu-maxpool2, conv5x5(16)-relu-maxpool2, "
        "dense 256-120-84-10 with relu",
        input_shape=(1, IMAGE_SIZE, IMAGE_SIZE),
        hyper=h,
        params=(
            *_conv("conv1", 1, h["conv1"], h["kernel"]),
            *_conv("conv2", h["conv1"], h["conv2"], h["kernel"]),
            *_dense("fc1", flat, h["fc1"]),
            *_dense("fc2", h["fc1"], h["fc2"]),
            *_dense("fc3", h["fc2"], NUM_CLASSES),
        ),
        train=TrainSpec(epochs=10, target_accuracy=0.95),
    )


def _lstm() -> ModelSpec:
    h = {"steps": IMAGE_SIZE, "features": IMAGE_SIZE, "hidden": 64}
    hidden = h["hidden"]
    return ModelSpec(
        name="lstm",
        description="single-layer LSTM (64 units) reading 28 rows of 28 pixels, "
        "last hidden state -> dense 64-10",
        input_shape=(IMAGE_SIZE, IMAGE_SIZE),
        hyper=h,
        params=(
            ParamSpec("lstm.kernel", (h["features"], 4 * hidden), "glorot_uniform"),
            ParamSpec("lstm.recurrent_kernel", (hidden, 4 * hidden), "orthogonal"),
            ParamSpec("lstm.bias", (4 * hidden,), "lstm_bias"),
            *_dense("fc", hidden, NUM_CLASSES),
        ),
        train=TrainSpec(epochs=15, target_accuracy=0.90),
    )


def _mlp() -> ModelSpec:
    h = {"hidden": 128}
    return ModelSpec(
        name="mlp",
        description="MLP 784-128-10 with relu",
        input_shape=(IMAGE_SIZE * IMAGE_SIZE,),
        hyper=h,
        params=(
            *_dense("fc1", IMAGE_SIZE * IMAGE_SIZE, h["hidden"]),
            *_dense("fc2", h["hidden"], NUM_CLASSES),
        ),
        train=TrainSpec(epochs=10, target_accuracy=0.95),
    )


SPECS: dict[str, ModelSpec] = {s.name: s for s in (_cnn(), _lstm(), _mlp())}


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name``; an unknown name gets an error listing the valid ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}"
        ) from None
