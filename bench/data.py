"""The benchmark data: scikit-learn's handwritten digits, upsampled to MNIST scale.

scikit-learn ships the 1,797 8x8 images on disk, so nothing is downloaded. They are
upsampled to 28x28 with bilinear interpolation written here in numpy (not scipy's, so
every framework environment, whatever its scipy, produces the same bytes), scaled to
[0, 1], and split with a seeded legacy ``RandomState`` (stream-stable across numpy
versions). :func:`fingerprint` hashes the arrays so runs can prove they saw the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from models.spec import IMAGE_SIZE, ModelSpec

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray  # (N, 1, 28, 28) float32 in [0, 1]
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray


def upsample(images: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` images to ``(N, size, size)`` (align-corners)."""
    _, h, w = images.shape
    ys = np.linspace(0.0, h - 1, size)
    xs = np.linspace(0.0, w - 1, size)
    y0 = np.floor(ys).astype(int).clip(0, h - 2)
    x0 = np.floor(xs).astype(int).clip(0, w - 2)
    wy = (ys - y0)[None, :, None]
    wx = (xs - x0)[None, None, :]
    a = images[:, y0][:, :, x0]
    b = images[:, y0][:, :, x0 + 1]
    c = images[:, y0 + 1][:, :, x0]
    d = images[:, y0 + 1][:, :, x0 + 1]
    top = a * (1 - wx) + b * wx
    bottom = c * (1 - wx) + d * wx
    return top * (1 - wy) + bottom * wy


@cache
def load_digits() -> Digits:
    """The fixed train/test split (1,437 / 360 images)."""
    from sklearn.datasets import load_digits as _load

    raw = _load()
    images = upsample(raw.images.astype(np.float64) / 16.0).astype(np.float32)
    labels = raw.target.astype(np.int64)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    n_test = round(len(labels) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return Digits(
        x_train=images[train][:, None],
        y_train=labels[train],
        x_test=images[test][:, None],
        y_test=labels[test],
    )


#: Seed of the latent vectors a generator reads wherever the harness would give a model
#: images (checks, exports, timed inference): :func:`latent`.
LATENT_SEED = 0


def latent(spec: ModelSpec, n: int, seed: int = LATENT_SEED) -> np.ndarray:
    """``n`` latent vectors of the GAN's generator, standard normal, float32. Drawn
    row by row from one seeded stream, so the first ``k`` of ``n`` are the ``k`` that
    ``latent(spec, k, seed)`` gives, in every framework's environment."""
    rng = np.random.RandomState(seed)
    return rng.standard_normal((n, *spec.input_shape)).astype(np.float32)


def as_model_input(spec: ModelSpec, images: np.ndarray) -> np.ndarray:
    """Reshape ``(N, 1, 28, 28)`` images to what ``spec`` reads (rows for the LSTM...).

    A generator reads no images: for the GAN the ``N`` images stand for ``N`` latent
    vectors (:func:`latent` at :data:`LATENT_SEED`), so every check and timing that
    feeds a model a batch of digits feeds the generator a batch of noise of that size.
    """
    if spec.arch == "gan":
        return latent(spec, images.shape[0])
    return np.ascontiguousarray(images.reshape((images.shape[0], *spec.input_shape)))


def train_batch(
    spec: ModelSpec, images: np.ndarray, labels: np.ndarray, seed: int = LATENT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """The two arguments of a training step (``Adapter.make_train_step``) for a batch:
    the model's input and the labels; for the GAN the real images and the latent
    vectors its generator turns into fakes (:func:`latent` at ``seed``: a new seed per
    step in training, so every step sees new noise)."""
    if spec.arch == "gan":
        return np.ascontiguousarray(images), latent(spec, images.shape[0], seed)
    return as_model_input(spec, images), labels


def batches(n: int, batch_size: int, epoch: int, seed: int) -> Iterator[np.ndarray]:
    """Index batches of one epoch; the same in every framework for a given seed."""
    order = np.random.RandomState(seed * 1000 + epoch).permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fingerprint(data: Digits) -> str:
    """A short hash of the split, recorded in every manifest."""
    h = hashlib.sha256()
    for arr in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]
