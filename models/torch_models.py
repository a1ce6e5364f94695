"""PyTorch definitions of the specs, and their canonical weight mapping.

PyTorch already uses the canonical conv layout (OIHW) and NCHW flatten order; its
``nn.Linear`` stores ``(out, in)`` (transposed on the way in and out), and its LSTM has
two biases, of which the recurrent one is held at zero and frozen (see models/spec.py).
Batch normalisation is ``nn.BatchNorm2d(eps=BN_EPSILON, momentum=BN_MOMENTUM)``: canonical
``gamma``/``beta``/``moving_mean``/``moving_variance`` are its ``weight``/``bias`` parameters
and ``running_mean``/``running_var`` buffers; its ``num_batches_tracked`` buffer (used only
by ``momentum=None``) is not part of the weight file and is left as the model has it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from models.spec import (
    BN_EPSILON,
    BN_MOMENTUM,
    GAN_KERNEL,
    GAN_PADDING,
    GAN_STRIDE,
    LEAKY_SLOPE,
    NUM_CLASSES,
    ModelSpec,
    ResidualBlock,
    resnet_blocks,
)


class CNN(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hyper
        self.conv1 = nn.Conv2d(spec.input_shape[0], h["conv1"], h["kernel"])
        self.conv2 = nn.Conv2d(h["conv1"], h["conv2"], h["kernel"])
        self.pool = nn.MaxPool2d(h["pool"])
        self.fc1 = nn.Linear(spec.param_shapes["fc1.kernel"][0], h["fc1"])
        self.fc2 = nn.Linear(h["fc1"], h["fc2"])
        self.fc3 = nn.Linear(h["fc2"], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LSTM(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hyper
        self.lstm = nn.LSTM(h["features"], h["hidden"], batch_first=True)
        # Only b_ih + b_hh enters the maths: the spec has one bias, so b_hh stays zero.
        self.lstm.bias_hh_l0.requires_grad_(False)
        self.fc = nn.Linear(h["hidden"], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.fc1 = nn.Linear(spec.input_shape[0], spec.hyper["hidden"])
        self.fc2 = nn.Linear(spec.hyper["hidden"], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _conv_bn(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
    """``conv`` (no bias, padding ``k // 2``: 1 for 3x3, 0 for 1x1) then ``bn``."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            bn=nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
        )
    )


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity, or 1x1 conv + BN where
    the shape changes), then ReLU; module names follow the canonical ones."""

    def __init__(self, blk: ResidualBlock) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(blk.c_in, blk.c_out, 3, stride=blk.stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(blk.c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(blk.c_out, blk.c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(blk.c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.shortcut = _conv_bn(blk.c_in, blk.c_out, 1, blk.stride) if blk.projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hyper
        self.stem = _conv_bn(spec.input_shape[0], h["stem"], 3, 1)
        stages: dict[str, OrderedDict[str, nn.Module]] = {}
        for blk in resnet_blocks(spec):
            stage, block = blk.name.split(".")
            stages.setdefault(stage, OrderedDict())[block] = BasicBlock(blk)
        for stage, blocks in stages.items():  # stage1.block0, ...
            self.add_module(stage, nn.Sequential(blocks))
        self.stages = list(stages)
        self.fc = nn.Linear(h["stage3"], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        for stage in self.stages:
            x = getattr(self, stage)(x)
        return self.fc(x.mean(dim=(2, 3)))  # global average pooling


class Generator(nn.Module):
    """Latent vectors -> images: dense, BN, ReLU, then two stride-2 transposed
    convolutions (``ConvTranspose2d``, whose weight is the canonical IOHW layout)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hyper
        self.shape = (h["gen0"], h["base"], h["base"])
        self.fc = nn.Linear(h["latent"], h["gen0"] * h["base"] ** 2, bias=False)
        self.bn0 = nn.BatchNorm2d(h["gen0"], eps=BN_EPSILON, momentum=BN_MOMENTUM)
        k, s, p = GAN_KERNEL, GAN_STRIDE, GAN_PADDING
        self.deconv1 = nn.ConvTranspose2d(h["gen0"], h["gen1"], k, s, p, bias=False)
        self.bn1 = nn.BatchNorm2d(h["gen1"], eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.deconv2 = nn.ConvTranspose2d(h["gen1"], 1, k, s, p)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).reshape(-1, *self.shape)  # (C, H, W) order, as canonical
        x = torch.relu(self.bn0(x))
        x = torch.relu(self.bn1(self.deconv1(x)))
        return torch.sigmoid(self.deconv2(x))


class Discriminator(nn.Module):
    """Images -> one logit each ("real" when positive)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hyper
        k, s, p = GAN_KERNEL, GAN_STRIDE, GAN_PADDING
        self.conv1 = nn.Conv2d(1, h["disc1"], k, s, p)
        self.conv2 = nn.Conv2d(h["disc1"], h["disc2"], k, s, p)
        self.fc = nn.Linear(h["disc2"] * h["base"] ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        x = nn.functional.leaky_relu(self.conv2(x), LEAKY_SLOPE)
        return self.fc(torch.flatten(x, 1))


class GAN(nn.Module):
    """Both networks under their canonical prefixes; calling the module generates (what
    inference runs, and the ONNX export holds), the training step drives both."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.gen = Generator(spec)
        self.disc = Discriminator(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: the latent vectors
        return self.gen(x)


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "cnn": CNN,
    "lstm": LSTM,
    "mlp": MLP,
    "resnet": ResNet,
    "gan": GAN,
}


def has_training_behaviour(model: nn.Module) -> bool:
    """Whether ``model`` computes differently in training mode (batch normalisation,
    dropout); the others ignore ``train()`` and ``eval()``."""
    kinds = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return any(isinstance(m, kinds) for m in model.modules())


def build_model(spec: ModelSpec) -> nn.Module:
    model = ARCHITECTURES[spec.arch](spec)
    model.xfbench_spec = spec  # get/set_weights need it (see Adapter.build)
    return model


def _dense_names(spec: ModelSpec) -> list[str]:
    return [
        p.name[: -len(".kernel")]
        for p in spec.params
        if p.name.endswith(".kernel") and len(p.shape) == 2 and not p.name.startswith("lstm")
    ]


#: Canonical batch-normalisation tensors -> ``nn.BatchNorm2d``'s names for them.
_BN_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _torch_names(spec: ModelSpec) -> dict[str, str]:
    """Canonical name -> ``state_dict`` key, for every tensor but the LSTM's and the
    dense kernels (which are transposed): convolution kernels and biases, dense biases
    and batch normalisation."""
    out = {}
    for p in spec.params:
        if p.name.startswith("lstm."):
            continue
        layer, var = p.name.rsplit(".", 1)
        if var == "kernel" and len(p.shape) == 4:
            out[p.name] = f"{layer}.weight"
        elif var == "bias":
            out[p.name] = p.name
        elif var in _BN_NAMES:
            out[p.name] = f"{layer}.{_BN_NAMES[var]}"
    return out


def to_state_dict(
    spec: ModelSpec, model: nn.Module, weights: Mapping[str, np.ndarray]
) -> dict[str, torch.Tensor]:
    """Canonical weights -> a ``state_dict`` for ``model``."""
    state = {}
    for layer in _dense_names(spec):
        state[f"{layer}.weight"] = weights[f"{layer}.kernel"].T
    for name, key in _torch_names(spec).items():
        state[key] = weights[name]
    if spec.arch == "lstm":
        state["lstm.weight_ih_l0"] = weights["lstm.kernel"].T
        state["lstm.weight_hh_l0"] = weights["lstm.recurrent_kernel"].T
        state["lstm.bias_ih_l0"] = weights["lstm.bias"]
        state["lstm.bias_hh_l0"] = np.zeros_like(weights["lstm.bias"])
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    # Batch normalisation's step counter is no weight: load_state_dict(strict=True) gets
    # the model's own.
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked"):
            out[key] = value
    return out


def from_state_dict(spec: ModelSpec, state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A ``state_dict`` -> canonical weights."""
    s = {
        k: v.detach().cpu().numpy().astype(np.float32)
        for k, v in state.items()
        if not k.endswith(".num_batches_tracked")
    }
    out = {}
    for layer in _dense_names(spec):
        out[f"{layer}.kernel"] = s[f"{layer}.weight"].T.copy()
    for name, key in _torch_names(spec).items():
        out[name] = s[key]
    if spec.arch == "lstm":
        out["lstm.kernel"] = s["lstm.weight_ih_l0"].T.copy()
        out["lstm.recurrent_kernel"] = s["lstm.weight_hh_l0"].T.copy()
        out["lstm.bias"] = s["lstm.bias_ih_l0"] + s["lstm.bias_hh_l0"]
    return out
