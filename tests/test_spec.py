"""Specs, initial weights and the numpy reference that every framework is held to."""

from __future__ import annotations

import numpy as np
import pytest

from models import reference
from models.spec import MODEL_NAMES, SPECS, get_spec


def test_parameter_counts():
    # Worked out by hand from the architectures in models/spec.py.
    assert get_spec("cnn").param_count == (6 * 25 + 6) + (16 * 6 * 25 + 16) + (256 * 120 + 120) + (
        120 * 84 + 84
    ) + (84 * 10 + 10)
    assert get_spec("lstm").param_count == 28 * 256 + 64 * 256 + 256 + 64 * 10 + 10
    assert get_spec("mlp").param_count == 784 * 128 + 128 + 128 * 10 + 10


def test_flops_per_sample_by_hand():
    conv1 = 2 * 1 * 25 * 6 * 24 * 24
    conv2 = 2 * 6 * 25 * 16 * 8 * 8
    assert get_spec("cnn").flops_per_sample == conv1 + conv2 + 2 * (256 * 120 + 120 * 84 + 84 * 10)
    assert get_spec("lstm").flops_per_sample == 28 * 2 * 4 * 64 * (28 + 64) + 2 * 64 * 10
    assert get_spec("mlp").flops_per_sample == 2 * (784 * 128 + 128 * 10)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: cnn, lstm, mlp"):
        get_spec("resnet")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_init_weights_are_seeded_and_shaped(name):
    spec = SPECS[name]
    a, b, c = spec.init_weights(0), spec.init_weights(0), spec.init_weights(1)
    assert {k: v.shape for k, v in a.items()} == spec.param_shapes
    assert all(v.dtype == np.float32 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if "kernel" in k)


def test_lstm_forget_bias_starts_at_one():
    bias = get_spec("lstm").init_weights(0)["lstm.bias"]
    assert np.all(bias[64:128] == 1.0) and np.all(bias[:64] == 0) and np.all(bias[128:] == 0)


def test_reference_conv_matches_a_direct_loop():
    rng = np.random.RandomState(0)
    spec = get_spec("cnn")
    w = {k: rng.normal(size=v.shape) for k, v in spec.init_weights(0).items()}
    x = rng.normal(size=(1, 6, 8, 8))
    got = reference._conv2d(x, w["conv2.kernel"], w["conv2.bias"])
    want = np.zeros((1, 16, 4, 4))
    for o in range(16):
        for i in range(4):
            for j in range(4):
                want[0, o, i, j] = (x[0, :, i : i + 5, j : j + 5] * w["conv2.kernel"][o]).sum()
                want[0, o, i, j] += w["conv2.bias"][o]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reference_lstm_one_step_by_hand():
    spec = get_spec("lstm")
    w = {k: v.astype(np.float64) for k, v in spec.init_weights(0).items()}
    x = np.random.RandomState(1).normal(size=(2, 1, 28))
    z = x[:, 0] @ w["lstm.kernel"] + w["lstm.bias"]  # h0 = 0
    i, f, g, o = (
        1 / (1 + np.exp(-z[:, :64])),
        None,
        np.tanh(z[:, 128:192]),
        1 / (1 + np.exp(-z[:, 192:])),
    )
    h = o * np.tanh(i * g)  # c0 = 0, so the forget gate drops out
    np.testing.assert_allclose(
        reference.forward(spec, w, x), h @ w["fc.kernel"] + w["fc.bias"], rtol=1e-12
    )
    assert f is None


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reference_output_shape(name):
    spec = SPECS[name]
    x = np.zeros((3, *spec.input_shape))
    assert reference.forward(spec, spec.init_weights(0), x).shape == (3, 10)
