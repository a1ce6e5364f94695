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
import re
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
    """A model every framework must implement identically.

    ``name`` is the model id (``mlp``, ``mlp@x16``); ``arch`` the architecture the
    frameworks' definitions dispatch on (``mlp``); ``width`` the factor its layer widths
    were scaled by (1 for the trained reference size).
    """

    name: str
    description: str
    input_shape: tuple[int, ...]  # one sample, without the batch axis
    hyper: dict[str, int] = field(hash=False)
    params: tuple[ParamSpec, ...]
    train: TrainSpec
    arch: str = ""
    width: float = 1.0

    def __post_init__(self) -> None:
        if not self.arch:
            object.__setattr__(self, "arch", self.name)

    @property
    def slug(self) -> str:
        """The id as an identifier (``mlp_x0_25``), for names inside a framework."""
        return re.sub(r"[^0-9A-Za-z]+", "_", self.name)

    @property
    def trained(self) -> bool:
        """Whether the zoo trains this model to its accuracy target: the reference size
        only. The other sizes time the same code on more or less work; they are built
        from the spec's initial weights and verified (reference, ONNX parity, FLOPs), not
        trained, which would cost hours at the largest sizes and change nothing timed."""
        return self.width == 1

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params)

    @property
    def flops_per_sample(self) -> int:
        """2 x multiply-accumulates of the convolutions, dense layers and LSTM matrix
        products for one sample (element-wise work not counted; see bench/flops.py)."""
        h = self.hyper
        if self.arch == "cnn":
            k, size = h["kernel"], self.input_shape[1]
            c1 = size - k + 1  # 24
            c2 = c1 // h["pool"] - k + 1  # 8
            convs = (
                2 * self.input_shape[0] * k * k * h["conv1"] * c1 * c1
                + 2 * h["conv1"] * k * k * h["conv2"] * c2 * c2
            )
        elif self.arch == "lstm":
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


def format_width(width: float) -> str:
    """``16`` -> ``x16``, ``0.25`` -> ``x0.25`` (a model id's size part)."""
    return f"x{width:g}"


def model_id(arch: str, width: float = 1.0) -> str:
    """``mlp`` at the reference width, ``mlp@x16`` at 16 times its layer widths."""
    return arch if width == 1 else f"{arch}@{format_width(width)}"


def _scaled(base: int, width: float) -> int:
    return max(1, round(base * width))


def _cnn(width: float = 1.0) -> ModelSpec:
    # LeNet-5 with ReLU and max pooling: 28 -conv5-> 24 -pool2-> 12 -conv5-> 8 -pool2-> 4.
    h = {
        "conv1": _scaled(6, width),
        "conv2": _scaled(16, width),
        "kernel": 5,
        "pool": 2,
        "fc1": _scaled(120, width),
        "fc2": _scaled(84, width),
    }
    flat = h["conv2"] * 4 * 4
    return ModelSpec(
        name=model_id("cnn", width),
        arch="cnn",
        width=width,
        description=f"LeNet-5 style CNN: conv5x5({h['conv1']})-relu-maxpool2, "
        f"conv5x5({h['conv2']})-relu-maxpool2, dense {flat}-{h['fc1']}-{h['fc2']}-10 with relu",
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


def _lstm(width: float = 1.0) -> ModelSpec:
    h = {"steps": IMAGE_SIZE, "features": IMAGE_SIZE, "hidden": _scaled(64, width)}
    hidden = h["hidden"]
    return ModelSpec(
        name=model_id("lstm", width),
        arch="lstm",
        width=width,
        description=f"single-layer LSTM ({hidden} units) reading 28 rows of 28 pixels, "
        f"last hidden state -> dense {hidden}-10",
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


def _mlp(width: float = 1.0) -> ModelSpec:
    h = {"hidden": _scaled(128, width)}
    return ModelSpec(
        name=model_id("mlp", width),
        arch="mlp",
        width=width,
        description=f"MLP 784-{h['hidden']}-10 with relu",
        input_shape=(IMAGE_SIZE * IMAGE_SIZE,),
        hyper=h,
        params=(
            *_dense("fc1", IMAGE_SIZE * IMAGE_SIZE, h["hidden"]),
            *_dense("fc2", h["hidden"], NUM_CLASSES),
        ),
        train=TrainSpec(epochs=10, target_accuracy=0.95),
    )


_BUILDERS = {"cnn": _cnn, "lstm": _lstm, "mlp": _mlp}
SPECS: dict[str, ModelSpec] = {name: build() for name, build in _BUILDERS.items()}

#: The width factors each architecture comes in (powers of two): every one spans at
#: least three orders of magnitude of FLOPs per sample from its smallest to its largest
#: size (``tests/test_spec.py``), and its largest stays small enough (at most ~20M
#: parameters) for every framework to build, export and check on a laptop.
WIDTHS: dict[str, tuple[float, ...]] = {
    "cnn": (0.25, 0.5, 1, 2, 4, 8, 16),
    "lstm": (0.25, 0.5, 1, 2, 4, 8, 16),
    "mlp": (0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
}
#: The sizes a default benchmark run adds to the reference size: each architecture's
#: smallest and largest, enough for the scaling report's fit (``--sweep``: all).
DEFAULT_WIDTHS: dict[str, tuple[float, ...]] = {a: (w[0], w[-1]) for a, w in WIDTHS.items()}


def parse_model_id(model: str) -> tuple[str, float]:
    """(architecture, width) of a model id, or a ValueError naming what exists."""
    arch, sep, size = model.partition("@")
    if arch not in _BUILDERS:
        raise ValueError(f"unknown model {model!r}; valid models: {', '.join(MODEL_NAMES)}")
    if not sep:
        return arch, 1.0
    valid = ", ".join(model_id(arch, w) for w in WIDTHS[arch])
    try:
        width = float(size[1:]) if size.startswith("x") else float("nan")
    except ValueError:
        width = float("nan")
    if width not in WIDTHS[arch]:
        raise ValueError(f"unknown size {size!r} of {arch}; its sizes: {valid}")
    return arch, width


def sizes_of(arch: str, sweep: bool = False) -> list[str]:
    """The model ids of ``arch`` a run times besides the reference size (``--sweep``:
    every width, else :data:`DEFAULT_WIDTHS`), smallest first."""
    return [model_id(arch, w) for w in (WIDTHS if sweep else DEFAULT_WIDTHS)[arch] if w != 1]


def get_spec(name: str) -> ModelSpec:
    """The spec of model id ``name`` (``cnn``, ``mlp@x16``); an unknown one gets an error
    listing the valid ones."""
    arch, width = parse_model_id(name)
    if width == 1:
        return SPECS[arch]
    return _BUILDERS[arch](width)
