"""Plain-numpy forward passes of the three specs, in float64.

This is the yardstick for equivalence. Every framework's output is compared with the
reference on the same canonical weights and inputs; when each framework lies within
``tol / 2`` of the reference, any two frameworks lie within ``tol`` of each other, so
the pairwise guarantee holds without ever loading two frameworks into one process
(their numpy pins make that impossible anyway).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.spec import ModelSpec


def forward(spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of ``spec`` for a batch ``x`` (float64)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    x = np.asarray(x, dtype=np.float64)
    if spec.arch == "cnn":
        return _cnn(w, x, spec.hyper["pool"])
    if spec.arch == "lstm":
        return _lstm(w, x)
    if spec.arch == "mlp":
        h = np.maximum(x @ w["fc1.kernel"] + w["fc1.bias"], 0.0)
        return h @ w["fc2.kernel"] + w["fc2.bias"]
    raise ValueError(f"no reference forward for model {spec.name!r}")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def outputs(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray, kind: str = "logits"
) -> np.ndarray:
    """What an adapter whose models output ``kind`` (``"logits"`` or
    ``"probabilities"``, the softmax of the logits) must return."""
    z = forward(spec, weights, x)
    if kind == "logits":
        return z
    if kind == "probabilities":
        return softmax(z)
    raise ValueError(f"unknown output kind {kind!r}; valid kinds: logits, probabilities")


def _conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    # x: (N, C, H, W); kernel: (O, C, kh, kw); 'valid' padding, stride 1.
    kh, kw = kernel.shape[2:]
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))  # N, C, H', W', kh, kw
    return np.einsum("nchwij,ocij->nohw", windows, kernel, optimize=True) + bias[:, None, None]


def _maxpool(x: np.ndarray, k: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


def _cnn(w: dict[str, np.ndarray], x: np.ndarray, pool: int) -> np.ndarray:
    h = _maxpool(np.maximum(_conv2d(x, w["conv1.kernel"], w["conv1.bias"]), 0.0), pool)
    h = _maxpool(np.maximum(_conv2d(h, w["conv2.kernel"], w["conv2.bias"]), 0.0), pool)
    h = h.reshape(h.shape[0], -1)  # (C, H, W) order
    h = np.maximum(h @ w["fc1.kernel"] + w["fc1.bias"], 0.0)
    h = np.maximum(h @ w["fc2.kernel"] + w["fc2.bias"], 0.0)
    return h @ w["fc3.kernel"] + w["fc3.bias"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _lstm(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    n, steps, _ = x.shape
    hidden = w["lstm.recurrent_kernel"].shape[0]
    h = np.zeros((n, hidden))
    c = np.zeros((n, hidden))
    for t in range(steps):
        z = x[:, t] @ w["lstm.kernel"] + h @ w["lstm.recurrent_kernel"] + w["lstm.bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h @ w["fc.kernel"] + w["fc.bias"]
