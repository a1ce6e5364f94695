from __future__ import annotations

import numpy as np

from bench.data import as_model_input, batches, fingerprint, load_digits, upsample
from models.spec import get_spec


def test_split_is_fixed_and_disjoint():
    d = load_digits()
    assert d.x_train.shape == (1438, 1, 28, 28) and d.x_test.shape == (359, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    assert set(np.unique(d.y_test)) == set(range(10))
    # No test image is also a training image.
    train = {row.tobytes() for row in d.x_train.reshape(len(d.x_train), -1)}
    assert not any(row.tobytes() in train for row in d.x_test.reshape(len(d.x_test), -1))
    # The same bytes in every environment: this hash was recorded under numpy 1.23
    # (MXNet's environment) and numpy 2.4 alike.
    assert fingerprint(d) == "d1165a78d3ad2713"


def test_upsample_keeps_corners_and_constants():
    img = np.arange(64, dtype=np.float64).reshape(1, 8, 8)
    up = upsample(img)
    assert up.shape == (1, 28, 28)
    assert up[0, 0, 0] == img[0, 0, 0] and up[0, -1, -1] == img[0, -1, -1]
    np.testing.assert_allclose(upsample(np.full((1, 8, 8), 0.25)), 0.25)


def test_batches_cover_every_sample_once_and_repeat_per_seed():
    a = list(batches(100, 32, epoch=0, seed=0))
    assert [len(b) for b in a] == [32, 32, 32, 4]
    assert sorted(np.concatenate(a)) == list(range(100))
    assert all(np.array_equal(x, y) for x, y in zip(a, batches(100, 32, 0, 0), strict=True))
    assert not np.array_equal(a[0], next(batches(100, 32, epoch=1, seed=0)))


def test_model_inputs():
    d = load_digits()
    assert as_model_input(get_spec("lstm"), d.x_test[:2]).shape == (2, 28, 28)
    assert as_model_input(get_spec("mlp"), d.x_test[:2]).shape == (2, 784)
    np.testing.assert_array_equal(
        as_model_input(get_spec("lstm"), d.x_test[:1])[0, 3], d.x_test[0, 0, 3]
    )
