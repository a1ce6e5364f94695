"""Framework-neutral specifications of the benchmark models.

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
* transposed convolution kernel ``(in_channels, out_channels, kh, kw)`` (IOHW, the layout
  of ONNX's ``ConvTranspose`` and PyTorch's ``ConvTranspose2d``).
* batch normalisation ``<layer>.gamma``, ``<layer>.beta`` (trainable) and
  ``<layer>.moving_mean``, ``<layer>.moving_variance`` (state: :attr:`ParamSpec.trainable`
  is False), one value per channel. The weight file holds both; ``param_count`` counts
  the trainable ones only (what frameworks count), ``state_count`` the rest. See
  :data:`BN_EPSILON` and :data:`BN_MOMENTUM` for the arithmetic every framework follows.

>>> spec = get_spec("mlp")
>>> spec.param_count
101770
>>> [p.name for p in spec.params]
['fc1.kernel', 'fc1.bias', 'fc2.kernel', 'fc2.bias']
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

MODEL_NAMES: tuple[str, ...] = ("cnn", "lstm", "mlp", "resnet", "gan")
#: What `xfbench bench` times when no model is named. `resnet` and `gan` are left out:
#: the ResNet's 62 MFLOPs per sample at batch 256 (and its training step) would take the
#: default CPU run past its 10-minute goal, and building both (training the ResNet, the
#: GAN and the CNN that judges it in five environments) past the 20-minute cold one;
#: name them (`-m cnn,resnet,gan`) to time them. The zoo and the tests cover every model.
BENCH_DEFAULT_MODELS: tuple[str, ...] = ("cnn", "lstm", "mlp")
NUM_CLASSES = 10
IMAGE_SIZE = 28

#: Batch normalisation, the same in every framework. Inference (every forward pass,
#: every mode, the ONNX export) uses the running statistics:
#: ``y = gamma * (x - moving_mean) / sqrt(moving_variance + BN_EPSILON) + beta``.
#: A training step normalises with the batch's own mean and (biased) variance over
#: (N, H, W) and then updates ``moving = (1 - BN_MOMENTUM) * moving + BN_MOMENTUM * batch``.
#: In the frameworks' own terms: PyTorch ``BatchNorm2d(eps=1e-5, momentum=0.1)``, Keras
#: ``BatchNormalization(epsilon=1e-5, momentum=0.9)`` (Keras's defaults, 1e-3 and 0.99,
#: differ), Flax ``BatchNorm(epsilon=1e-5, momentum=0.9)``, MXNet ``BatchNorm(epsilon=1e-5,
#: momentum=0.9)``. One difference no framework lets us remove: PyTorch moves its running
#: variance towards the *unbiased* batch variance (times n / (n - 1), n = N * H * W, at
#: least 30 * 7 * 7 = 1470 in the zoo's training: a factor below 1.0007), the others
#: towards the biased one. It touches only the statistics a training run accumulates,
#: never the function computed from a given weight file.
BN_EPSILON = 1e-5
#: The weight of the newest batch in the running statistics (PyTorch's ``momentum``;
#: Keras, Flax and MXNet call ``1 - BN_MOMENTUM`` their momentum).
BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class ParamSpec:
    """One canonical weight tensor."""

    name: str
    shape: tuple[int, ...]
    # "glorot_uniform", "he_uniform", "orthogonal", "zeros", "ones" or "lstm_bias"
    init: str
    #: False for state that is saved and loaded with the weights but not trained by the
    #: optimizer (batch normalisation's running statistics).
    trainable: bool = True

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def key_dict(self) -> dict[str, Any]:
        """The fields as :func:`dataclasses.asdict` gives them, less those at their
        defaults: a field added with a default leaves the build key of every spec that
        does not use it unchanged (``trainable`` came after cnn, lstm and mlp had builds)."""
        out = asdict(self)
        for f in fields(self):
            if f.default is not MISSING and out[f.name] == f.default:
                del out[f.name]
        return out


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
        """Trainable parameters: what every framework's own count must equal."""
        return sum(p.size for p in self.params if p.trainable)

    @property
    def state_count(self) -> int:
        """Values of the non-trainable state the weight file also holds (batch
        normalisation's running statistics); 0 for models without any."""
        return sum(p.size for p in self.params if not p.trainable)

    def key_dict(self) -> dict[str, Any]:
        """What the zoo's build key hashes for this spec (``bench/zoo.py``): the fields
        as :func:`dataclasses.asdict` gives them, each weight tensor's by
        :meth:`ParamSpec.key_dict`."""
        out = asdict(self)
        out["params"] = [p.key_dict() for p in self.params]
        return out

    @property
    def flops_per_sample(self) -> int:
        """2 x multiply-accumulates of the convolutions, dense layers and LSTM matrix
        products for one sample (element-wise work, batch normalisation and pooling not
        counted; see bench/flops.py)."""
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
        elif self.arch == "resnet":  # shortcut 1x1 convolutions included
            convs = sum(2 * math.prod(shape) * size * size for _, shape, size in resnet_convs(self))
        elif self.arch == "gan":  # the generator: inference is generating a batch
            return gan_generator_flops(self)
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
    if p.init == "ones":
        return np.ones(p.shape)
    if p.init == "lstm_bias":
        # Forget-gate bias of one (Jozefowicz et al., 2015): the usual LSTM default.
        hidden = p.shape[0] // 4
        b = np.zeros(p.shape)
        b[hidden : 2 * hidden] = 1.0
        return b
    if p.init in ("glorot_uniform", "he_uniform"):
        if len(p.shape) == 4:  # OIHW
            receptive = p.shape[2] * p.shape[3]
            fan_in, fan_out = p.shape[1] * receptive, p.shape[0] * receptive
        else:  # (in, out)
            fan_in, fan_out = p.shape
        if p.init == "he_uniform":  # He et al. (2015), as the ResNet paper initialises
            limit = math.sqrt(6.0 / fan_in)
        else:
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


@dataclass(frozen=True)
class ResidualBlock:
    """One basic block of the ResNet: ``conv3x3(stride)-BN-ReLU-conv3x3-BN``, plus the
    shortcut, then ReLU. The shortcut is the identity, or, where the shape changes
    (``stride`` 2 or a new channel count), ``conv1x1(stride)-BN`` ("option B")."""

    name: str  # canonical prefix, e.g. "stage2.block0"
    c_in: int
    c_out: int
    stride: int
    size_in: int  # feature map height (= width) going in
    size_out: int  # and coming out

    @property
    def projection(self) -> bool:
        """Whether the shortcut is a 1x1 convolution + BN rather than the identity."""
        return self.stride != 1 or self.c_in != self.c_out


#: The ResNet's stages, in order: (hyper-parameter holding its channels, stride of its
#: first block).
RESNET_STAGES = (("stage1", 1), ("stage2", 2), ("stage3", 2))


def resnet_blocks(spec: ModelSpec) -> tuple[ResidualBlock, ...]:
    """The residual blocks of a ``resnet`` spec, in order. Every framework's definition,
    the reference and the FLOP count read the architecture from here."""
    return _resnet_blocks(spec.hyper, spec.input_shape[1])


def _resnet_blocks(h: dict[str, int], size: int) -> tuple[ResidualBlock, ...]:
    blocks = []
    c = h["stem"]
    for stage, stride in RESNET_STAGES:
        for b in range(h["blocks"]):
            s = stride if b == 0 else 1
            # 3x3, padding 1: out = (size + 2 - 3) // s + 1 (28 -> 14 -> 7 at stride 2).
            out = (size - 1) // s + 1
            blocks.append(ResidualBlock(f"{stage}.block{b}", c, h[stage], s, size, out))
            c, size = h[stage], out
    return tuple(blocks)


def resnet_convs(spec: ModelSpec) -> list[tuple[str, tuple[int, ...], int]]:
    """``(canonical kernel name, OIHW shape, output height)`` of every convolution of a
    ``resnet`` spec, shortcuts included, in order."""
    shapes = spec.param_shapes
    size = spec.input_shape[1]  # the stem: 3x3, stride 1, padding 1
    out = [("stem.conv.kernel", shapes["stem.conv.kernel"], size)]
    for blk in resnet_blocks(spec):
        for conv in ("conv1", "conv2", *(("shortcut.conv",) if blk.projection else ())):
            name = f"{blk.name}.{conv}.kernel"
            out.append((name, shapes[name], blk.size_out))
    return out


def _bn(name: str, channels: int) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec(f"{name}.gamma", (channels,), "ones"),
        ParamSpec(f"{name}.beta", (channels,), "zeros"),
        ParamSpec(f"{name}.moving_mean", (channels,), "zeros", trainable=False),
        ParamSpec(f"{name}.moving_variance", (channels,), "ones", trainable=False),
    )


def _kernel(name: str, c_in: int, c_out: int, k: int, init: str = "glorot_uniform") -> ParamSpec:
    """A convolution kernel without bias (batch normalisation follows it)."""
    return ParamSpec(f"{name}.kernel", (c_out, c_in, k, k), init)


def _resnet(width: float = 1.0) -> ModelSpec:
    # CIFAR-style ResNet-20 (He et al., 2016) on 1x28x28: 28 -> 14 -> 7.
    h = {
        "stem": _scaled(16, width),
        "stage1": _scaled(16, width),
        "stage2": _scaled(32, width),
        "stage3": _scaled(64, width),
        "blocks": 3,
    }
    # Kernels are Glorot-initialised like every other model's, but for the stem's: with one
    # input channel, Glorot's average of fan-in (9) and fan-out (144) would shrink the
    # stem's output ~3-fold, and with it the logits of the untrained model (whose batch
    # normalisation is the identity) to ~0.1-0.5, near where the conformance kit's
    # comparisons lose their power. He's limit (fan-in; the ResNet paper's initialiser)
    # puts them at ~0.4-2. He's limit everywhere would compound over the 19 unnormalised
    # layers to logits of 10-60, where float32 rounding starts to eat the tolerances.
    params: list[ParamSpec] = [
        _kernel("stem.conv", 1, h["stem"], 3, "he_uniform"),
        *_bn("stem.bn", h["stem"]),
    ]
    for blk in _resnet_blocks(h, IMAGE_SIZE):
        params += [
            _kernel(f"{blk.name}.conv1", blk.c_in, blk.c_out, 3),
            *_bn(f"{blk.name}.bn1", blk.c_out),
        ]
        params += [
            _kernel(f"{blk.name}.conv2", blk.c_out, blk.c_out, 3),
            *_bn(f"{blk.name}.bn2", blk.c_out),
        ]
        if blk.projection:
            params.append(_kernel(f"{blk.name}.shortcut.conv", blk.c_in, blk.c_out, 1))
            params += _bn(f"{blk.name}.shortcut.bn", blk.c_out)
    params += _dense("fc", h["stage3"], NUM_CLASSES)
    return ModelSpec(
        name=model_id("resnet", width),
        arch="resnet",
        width=width,
        description=f"ResNet-20 (CIFAR style): conv3x3({h['stem']})-BN-ReLU, 3 stages of "
        f"{h['blocks']} basic blocks ({h['stage1']}, {h['stage2']}, {h['stage3']} channels; "
        "stride 2 entering stages 2 and 3: 28->14->7; 1x1 conv+BN shortcuts where the shape "
        f"changes), global average pooling, dense {h['stage3']}-10",
        input_shape=(1, IMAGE_SIZE, IMAGE_SIZE),
        hyper=h,
        params=tuple(params),
        # Four epochs: on the 2-core development machine every one of eight runs (PyTorch
        # eager and compile, TensorFlow function and XLA, 1 and 2 threads, oneDNN on and
        # off) was at 0.975-0.994 after the fourth; at 0.942-0.986 after the third, and
        # in epochs 5 and 6 most runs dipped once (down to 0.908) before settling.
        train=TrainSpec(epochs=4, target_accuracy=0.95),
    )


#: The GAN's networks, in the order of their canonical name prefixes: the generator
#: (what inference runs and the ONNX export holds) and the discriminator.
GAN_NETWORKS = ("gen", "disc")
#: Slope of the discriminator's leaky ReLU (DCGAN's).
LEAKY_SLOPE = 0.2
#: Transposed convolutions of the generator and convolutions of the discriminator:
#: kernel 4, stride 2, padding 1, so each doubles (or halves) the feature map, 7 <-> 14
#: <-> 28, with every output pixel covered by the same number of kernel taps (k = 2s).
GAN_KERNEL, GAN_STRIDE, GAN_PADDING = 4, 2, 1
#: Epochs the zoo trains the GAN for; bench/quality.py has the target it must meet (on
#: the development machine PyTorch met it after 5 to 7 epochs and held it to 40).
GAN_EPOCHS = 20


def _deconv_kernel(name: str, c_in: int, c_out: int, k: int) -> ParamSpec:
    """A transposed convolution kernel, IOHW, Glorot-initialised by its fans as a
    convolution from ``c_out`` to ``c_in`` channels (the one it is the transpose of)."""
    return ParamSpec(f"{name}.kernel", (c_in, c_out, k, k), "glorot_uniform")


def _gan(width: float = 1.0) -> ModelSpec:
    # A DCGAN (Radford et al., 2016) scaled to the 28x28 digits: the generator projects
    # the latent vector to 64x7x7, then two stride-2 transposed convolutions with batch
    # norm and ReLU, the last to one channel through a sigmoid (pixels in [0, 1], like
    # the data); the discriminator mirrors it with strided convolutions and leaky ReLU
    # and no batch norm (its training step sees real and generated batches apart, where
    # batch statistics would tell it which is which).
    h = {
        "latent": _scaled(32, width),
        "gen0": _scaled(64, width),
        "gen1": _scaled(32, width),
        "disc1": _scaled(32, width),
        "disc2": _scaled(64, width),
        "base": IMAGE_SIZE // 4,  # 7: the generator's first feature map
    }
    k, base = GAN_KERNEL, h["base"]
    params = (
        # Dense with no bias: batch normalisation follows it (and the deconvolution).
        ParamSpec("gen.fc.kernel", (h["latent"], h["gen0"] * base * base), "glorot_uniform"),
        *_bn("gen.bn0", h["gen0"]),
        _deconv_kernel("gen.deconv1", h["gen0"], h["gen1"], k),
        *_bn("gen.bn1", h["gen1"]),
        _deconv_kernel("gen.deconv2", h["gen1"], 1, k),
        ParamSpec("gen.deconv2.bias", (1,), "zeros"),
        *_conv("disc.conv1", 1, h["disc1"], k),
        *_conv("disc.conv2", h["disc1"], h["disc2"], k),
        *_dense("disc.fc", h["disc2"] * base * base, 1),
    )
    return ModelSpec(
        name=model_id("gan", width),
        arch="gan",
        width=width,
        description=f"DCGAN. Generator: latent {h['latent']} -> dense {h['gen0']}x7x7-BN-ReLU, "
        f"deconv4x4/2 ({h['gen1']}, 14x14)-BN-ReLU, deconv4x4/2 (1, 28x28)-sigmoid. "
        f"Discriminator: conv4x4/2 ({h['disc1']})-leakyReLU({LEAKY_SLOPE}), conv4x4/2 "
        f"({h['disc2']})-leakyReLU, dense {h['disc2'] * base * base}-1 (a logit). Inference "
        "generates a batch; a training step updates the discriminator, then the generator",
        input_shape=(h["latent"],),
        hyper=h,
        params=params,
        # DCGAN's Adam (learning rate 2e-4, beta1 0.5). The target is a quality score,
        # not an accuracy (bench/quality.py).
        train=TrainSpec(learning_rate=2e-4, beta1=0.5, epochs=GAN_EPOCHS, target_accuracy=0.0),
    )


def gan_generator_flops(spec: ModelSpec) -> int:
    """2 x multiply-accumulates of the generator for one sample: its dense projection and
    its transposed convolutions (``2 * c_in * c_out * k * k`` per *input* pixel)."""
    shapes, size = spec.param_shapes, spec.hyper["base"]
    total = 2 * math.prod(shapes["gen.fc.kernel"])
    for layer in ("gen.deconv1", "gen.deconv2"):
        total += 2 * math.prod(shapes[f"{layer}.kernel"]) * size * size
        size *= GAN_STRIDE
    return total


def network_params(spec: ModelSpec, network: str) -> tuple[ParamSpec, ...]:
    """The GAN's tensors of one of :data:`GAN_NETWORKS` (``gen`` or ``disc``)."""
    if network not in GAN_NETWORKS:
        raise ValueError(f"unknown network {network!r}; the GAN has {', '.join(GAN_NETWORKS)}")
    return tuple(p for p in spec.params if p.name.startswith(f"{network}."))


_BUILDERS = {"cnn": _cnn, "lstm": _lstm, "mlp": _mlp, "resnet": _resnet, "gan": _gan}
SPECS: dict[str, ModelSpec] = {name: build() for name, build in _BUILDERS.items()}

#: The width factors each architecture comes in (powers of two): every one that comes in
#: several sizes spans at least three orders of magnitude of FLOPs per sample from its
#: smallest to its largest size (``tests/test_sizes.py``), and its largest stays small
#: enough (at most ~20M parameters) for every framework to build, export and check on a
#: laptop.
WIDTHS: dict[str, tuple[float, ...]] = {
    "cnn": (0.25, 0.5, 1, 2, 4, 8, 16),
    "lstm": (0.25, 0.5, 1, 2, 4, 8, 16),
    "mlp": (0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
    # The reference size only, for now: the builders take a width like the others.
    "resnet": (1,),
    "gan": (1,),
}
#: The sizes a default benchmark run adds to the reference size: each architecture's
#: smallest and largest, enough for the scaling report's fit (``--sweep``: all).
DEFAULT_WIDTHS: dict[str, tuple[float, ...]] = {a: (w[0], w[-1]) for a, w in WIDTHS.items()}


def arch_of(model: str) -> str:
    """The architecture of a model id (``mlp@x16`` -> ``mlp``), without validating it."""
    return str(model).partition("@")[0]


def is_size(model: str) -> bool:
    """Whether a model id names a size other than its architecture's reference size."""
    return "@" in str(model)


def parse_model_id(model: str) -> tuple[str, float]:
    """(architecture, width) of a model id, or a ValueError naming what exists."""
    arch, sep, size = model.partition("@")
    if arch not in _BUILDERS:
        raise ValueError(f"unknown model {model!r}; valid models: {', '.join(MODEL_NAMES)}")
    if not sep:
        return arch, 1.0
    if len(WIDTHS[arch]) == 1:
        sized = ", ".join(a for a, w in WIDTHS.items() if len(w) > 1)
        raise ValueError(
            f"unknown size {size!r} of {arch}: {arch} comes in one size only, so name it "
            f"{arch!r}; the models that come in sizes are {sized} (e.g. cnn@x2)"
        )
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
