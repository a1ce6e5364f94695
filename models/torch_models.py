"""PyTorch definitions of the three specs, and their canonical weight mapping.

PyTorch already uses the canonical conv layout (OIHW) and NCHW flatten order; its
``nn.Linear`` stores ``(out, in)`` (transposed on the way in and out), and its LSTM has
two biases, of which the recurrent one is held at zero and frozen (see models/spec.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from models.spec import NUM_CLASSES, ModelSpec


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


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": CNN, "lstm": LSTM, "mlp": MLP}


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


def to_state_dict(
    spec: ModelSpec, model: nn.Module, weights: Mapping[str, np.ndarray]
) -> dict[str, torch.Tensor]:
    """Canonical weights -> a ``state_dict`` for ``model``."""
    state = {}
    for layer in _dense_names(spec):
        state[f"{layer}.weight"] = weights[f"{layer}.kernel"].T
        state[f"{layer}.bias"] = weights[f"{layer}.bias"]
    for layer in ("conv1", "conv2"):
        if f"{layer}.kernel" in weights:
            state[f"{layer}.weight"] = weights[f"{layer}.kernel"]
            state[f"{layer}.bias"] = weights[f"{layer}.bias"]
    if spec.arch == "lstm":
        state["lstm.weight_ih_l0"] = weights["lstm.kernel"].T
        state["lstm.weight_hh_l0"] = weights["lstm.recurrent_kernel"].T
        state["lstm.bias_ih_l0"] = weights["lstm.bias"]
        state["lstm.bias_hh_l0"] = np.zeros_like(weights["lstm.bias"])
    return {
        k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()
    }


def from_state_dict(spec: ModelSpec, state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A ``state_dict`` -> canonical weights."""
    s = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}
    out = {}
    for layer in _dense_names(spec):
        out[f"{layer}.kernel"] = s[f"{layer}.weight"].T.copy()
        out[f"{layer}.bias"] = s[f"{layer}.bias"]
    for layer in ("conv1", "conv2"):
        if f"{layer}.weight" in s:
            out[f"{layer}.kernel"] = s[f"{layer}.weight"]
            out[f"{layer}.bias"] = s[f"{layer}.bias"]
    if spec.arch == "lstm":
        out["lstm.kernel"] = s["lstm.weight_ih_l0"].T.copy()
        out["lstm.recurrent_kernel"] = s["lstm.weight_hh_l0"].T.copy()
        out["lstm.bias"] = s["lstm.bias_ih_l0"] + s["lstm.bias_hh_l0"]
    return out
