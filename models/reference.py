"""Plain-numpy forward passes of the specs, in float64.

This is the yardstick for equivalence. Every framework's output is compared with the
reference on the same canonical weights and inputs; when each framework lies within
``tol / 2`` of the reference, any two frameworks lie within ``tol`` of each other, so
the pairwise guarantee holds without ever loading two frameworks into one process
(their numpy pins make that impossible anyway).

Batch normalisation is computed as inference computes it everywhere: with the running
statistics the weights hold (``models/spec.py``, :data:`~models.spec.BN_EPSILON`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.spec import (
    BN_EPSILON,
    GAN_PADDING,
    GAN_STRIDE,
    LEAKY_SLOPE,
    ModelSpec,
    resnet_blocks,
)


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
    if spec.arch == "resnet":
        return _resnet(spec, w, x)
    if spec.arch == "gan":  # inference runs the generator: latent vectors -> images
        return generate(spec, w, x)
    raise ValueError(f"no reference forward for model {spec.name!r}")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def outputs(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray, kind: str = "logits"
) -> np.ndarray:
    """What an adapter whose models output ``kind`` (``"logits"`` or
    ``"probabilities"``, the softmax of the logits) must return. A generator's images
    are its output whatever the kind."""
    z = forward(spec, weights, x)
    if spec.arch == "gan":
        return z
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


def _conv2d_padded(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Convolution (cross-correlation, as every framework computes it) without bias,
    after ``padding`` zeros on every side, with ``stride``: x (N, C, H, W), kernel
    (O, C, kh, kw). Summed over the kernel's offsets, one matrix product each, so no
    patch array larger than the output is ever built."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = kernel.shape[2:]
    ho = (x.shape[2] - kh) // stride + 1
    wo = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], kernel.shape[0], ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            out += np.einsum("nchw,oc->nohw", patch, kernel[:, :, i, j], optimize=True)
    return out


def _batch_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Inference-mode batch normalisation of NCHW ``x`` by layer ``name``'s running
    statistics: ``gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta``."""

    def per_channel(v: np.ndarray) -> np.ndarray:
        return v[:, None, None]

    mean, var = w[f"{name}.moving_mean"], w[f"{name}.moving_variance"]
    normalised = (x - per_channel(mean)) / per_channel(np.sqrt(var + BN_EPSILON))
    return per_channel(w[f"{name}.gamma"]) * normalised + per_channel(w[f"{name}.beta"])


BatchNorm = Callable[[np.ndarray, dict[str, np.ndarray], str], np.ndarray]


def _resnet(
    spec: ModelSpec, w: dict[str, np.ndarray], x: np.ndarray, batch_norm: BatchNorm = _batch_norm
) -> np.ndarray:
    """The ResNet's logits; ``batch_norm(x, weights, layer)`` normalises (the tests pass
    a batch-statistics one to check the frameworks' training steps)."""

    def conv_bn(h: np.ndarray, conv: str, bn: str, stride: int = 1, padding: int = 1):
        return batch_norm(_conv2d_padded(h, w[f"{conv}.kernel"], stride, padding), w, bn)

    h = np.maximum(conv_bn(x, "stem.conv", "stem.bn"), 0.0)
    for blk in resnet_blocks(spec):
        p = blk.name
        y = np.maximum(conv_bn(h, f"{p}.conv1", f"{p}.bn1", blk.stride), 0.0)
        y = conv_bn(y, f"{p}.conv2", f"{p}.bn2")
        if blk.projection:
            h = conv_bn(h, f"{p}.shortcut.conv", f"{p}.shortcut.bn", blk.stride, padding=0)
        h = np.maximum(y + h, 0.0)
    h = h.mean(axis=(2, 3))  # global average pooling
    return h @ w["fc.kernel"] + w["fc.bias"]


# -- the GAN ---------------------------------------------------------------------------------
def _conv_transpose(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Transposed convolution without bias, as ONNX ``ConvTranspose`` and PyTorch's
    ``ConvTranspose2d`` define it: x (N, C, H, W), kernel (C, O, kh, kw) (IOHW). Each
    input pixel scatters ``x[n, c, h, w] * kernel[c, :, i, j]`` to output position
    ``(h * stride + i, w * stride + j)`` of a ``(H - 1) * stride + kh`` map, of which
    ``padding`` rows and columns are then cut from every side."""
    n, _, h, w = x.shape
    _, o, kh, kw = kernel.shape
    full = np.zeros((n, o, (h - 1) * stride + kh, (w - 1) * stride + kw))
    for i in range(kh):
        for j in range(kw):
            full[
                :, :, i : i + stride * (h - 1) + 1 : stride, j : j + stride * (w - 1) + 1 : stride
            ] += np.einsum("nchw,co->nohw", x, kernel[:, :, i, j], optimize=True)
    if padding:
        full = full[:, :, padding:-padding, padding:-padding]
    return full


def generate(
    spec: ModelSpec,
    w: Mapping[str, np.ndarray],
    z: np.ndarray,
    batch_norm: BatchNorm = _batch_norm,
) -> np.ndarray:
    """The generator's images ``(N, 1, 28, 28)`` in [0, 1] for latent vectors ``z``;
    ``batch_norm`` as in :func:`_resnet` (the tests pass a batch-statistics one)."""
    h = spec.hyper
    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    x = np.asarray(z, dtype=np.float64) @ w["gen.fc.kernel"]
    x = x.reshape(len(x), h["gen0"], h["base"], h["base"])  # (C, H, W) order
    x = np.maximum(batch_norm(x, w, "gen.bn0"), 0.0)
    x = _conv_transpose(x, w["gen.deconv1.kernel"], GAN_STRIDE, GAN_PADDING)
    x = np.maximum(batch_norm(x, w, "gen.bn1"), 0.0)
    x = _conv_transpose(x, w["gen.deconv2.kernel"], GAN_STRIDE, GAN_PADDING)
    return _sigmoid(x + w["gen.deconv2.bias"][:, None, None])


def discriminate(spec: ModelSpec, w: Mapping[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """The discriminator's logits ``(N, 1)`` (positive: "real") for ``(N, 1, 28, 28)``
    images."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    x = np.asarray(images, dtype=np.float64)
    for layer in ("disc.conv1", "disc.conv2"):
        x = _conv2d_padded(x, w[f"{layer}.kernel"], GAN_STRIDE, GAN_PADDING)
        x = x + w[f"{layer}.bias"][:, None, None]
        x = np.where(x > 0, x, LEAKY_SLOPE * x)
    x = x.reshape(len(x), -1)  # (C, H, W) order
    return x @ w["disc.fc.kernel"] + w["disc.fc.bias"]


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow: binary cross-entropy of a logit ``x``
    against label 0 is ``softplus(x)``, against label 1 ``softplus(-x)``."""
    return np.logaddexp(0.0, x)
