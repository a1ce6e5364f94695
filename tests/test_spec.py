"""Specs, initial weights and the numpy reference that every framework is held to."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from models import reference
from models.spec import MODEL_NAMES, SPECS, get_spec, resnet_blocks


def test_parameter_counts():
    # Worked out by hand from the architectures in models/spec.py.
    assert get_spec("cnn").param_count == (6 * 25 + 6) + (16 * 6 * 25 + 16) + (256 * 120 + 120) + (
        120 * 84 + 84
    ) + (84 * 10 + 10)
    assert get_spec("lstm").param_count == 28 * 256 + 64 * 256 + 256 + 64 * 10 + 10
    assert get_spec("mlp").param_count == 784 * 128 + 128 + 128 * 10 + 10
    # ResNet-20: 3x3 kernels (no bias), 1x1 shortcut kernels at the two stage changes,
    # gamma and beta per BN channel, dense 64-10.
    convs = 9 * 16 + 6 * 16 * 16 * 9 + (16 * 32 + 5 * 32 * 32) * 9 + (32 * 64 + 5 * 64 * 64) * 9
    shortcuts = 16 * 32 + 32 * 64
    bn_channels = 16 + 6 * 16 + 7 * 32 + 7 * 64  # stem, 6 per stage, 1 per shortcut
    resnet = get_spec("resnet")
    assert resnet.param_count == convs + shortcuts + 2 * bn_channels + 64 * 10 + 10 == 272_186
    # The running statistics are state, not parameters: in the weight file, not counted.
    assert resnet.state_count == 2 * bn_channels
    assert sum(p.size for p in resnet.params) == resnet.param_count + resnet.state_count
    assert all(get_spec(m).state_count == 0 for m in ("cnn", "lstm", "mlp"))


def test_flops_per_sample_by_hand():
    conv1 = 2 * 1 * 25 * 6 * 24 * 24
    conv2 = 2 * 6 * 25 * 16 * 8 * 8
    assert get_spec("cnn").flops_per_sample == conv1 + conv2 + 2 * (256 * 120 + 120 * 84 + 84 * 10)
    assert get_spec("lstm").flops_per_sample == 28 * 2 * 4 * 64 * (28 + 64) + 2 * 64 * 10
    assert get_spec("mlp").flops_per_sample == 2 * (784 * 128 + 128 * 10)
    stem = 2 * 1 * 9 * 16 * 28 * 28
    stage1 = 6 * 2 * 16 * 9 * 16 * 28 * 28
    stage2 = 2 * (16 * 9 * 32 + 5 * 32 * 9 * 32 + 16 * 32) * 14 * 14  # 1x1 shortcut last
    stage3 = 2 * (32 * 9 * 64 + 5 * 64 * 9 * 64 + 32 * 64) * 7 * 7
    resnet = stem + stage1 + stage2 + stage3 + 2 * 64 * 10
    assert get_spec("resnet").flops_per_sample == resnet == 62_043_904


def test_resnet_layout():
    spec = get_spec("resnet")
    shapes = spec.param_shapes
    assert shapes["stem.conv.kernel"] == (16, 1, 3, 3)
    assert shapes["stage2.block0.conv1.kernel"] == (32, 16, 3, 3)
    assert shapes["stage2.block0.shortcut.conv.kernel"] == (32, 16, 1, 1)
    assert shapes["stage3.block2.conv2.kernel"] == (64, 64, 3, 3)
    assert (shapes["fc.kernel"], shapes["fc.bias"]) == ((64, 10), (10,))
    assert {n for n in shapes if "shortcut" in n} == {
        f"stage{s}.block0.shortcut.{t}" for s in (2, 3) for t in
        ("conv.kernel", "bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance")
    }  # fmt: skip
    inits = {"gamma": "ones", "beta": "zeros", "moving_mean": "zeros", "moving_variance": "ones"}
    inits |= {"bias": "zeros", "kernel": "glorot_uniform"}
    for p in spec.params:
        var = p.name.rsplit(".", 1)[1]
        assert p.trainable is (var not in ("moving_mean", "moving_variance")), p.name
        assert p.init == ("he_uniform" if p.name == "stem.conv.kernel" else inits[var]), p.name
    w = spec.init_weights(0)
    assert np.all(w["stage3.block0.bn2.moving_variance"] == 1) and np.all(w["stem.bn.gamma"] == 1)
    assert not np.any(w["stage2.block1.bn1.moving_mean"]) and not np.any(w["stem.bn.beta"])
    for name, limit in (
        ("stem.conv.kernel", np.sqrt(6 / 9)),  # He: fan in 1 x 3 x 3
        ("stage1.block0.conv1.kernel", np.sqrt(6 / (2 * 16 * 9))),  # Glorot: fan in = out
    ):
        assert limit * 0.9 < np.abs(w[name]).max() <= limit, name
    blocks = resnet_blocks(spec)
    assert [(b.name, b.stride, b.size_out, b.projection) for b in blocks[2:4]] == [
        ("stage1.block2", 1, 28, False),
        ("stage2.block0", 2, 14, True),
    ]
    assert blocks[-1].size_out == 7
    assert get_spec("resnet").train.target_accuracy >= get_spec("cnn").train.target_accuracy
    assert get_spec("resnet").train.batch_size == 32


# What the zoo's build key hashed for each spec before ParamSpec had a ``trainable``
# field (sha256 of the sorted JSON of ``dataclasses.asdict(spec)``, first 16 hex digits):
# the field must not make any existing build stale.
KEYS_BEFORE_TRAINABLE = {
    "cnn": "8b7c158cae8314be",
    "cnn@x0.25": "c29ded2bc9b9d4e8",
    "cnn@x16": "3a509f04b151c168",
    "lstm": "d96356f8a268f442",
    "lstm@x0.25": "74cc9606cbf6eba0",
    "mlp": "9fdb4bcbfa98cf62",
    "mlp@x64": "d4216a0ebd2c049a",
}


@pytest.mark.parametrize("name", sorted(KEYS_BEFORE_TRAINABLE))
def test_build_keys_of_existing_specs_are_unchanged(name):
    blob = json.dumps(get_spec(name).key_dict(), sort_keys=True, default=str)
    assert hashlib.sha256(blob.encode()).hexdigest()[:16] == KEYS_BEFORE_TRAINABLE[name]


def test_state_enters_the_build_key():
    params = get_spec("resnet").key_dict()["params"]
    by_name = {p["name"]: p for p in params}
    assert by_name["stem.bn.moving_mean"]["trainable"] is False
    assert "trainable" not in by_name["stem.bn.gamma"]  # the default is left out


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: cnn, lstm, mlp, resnet"):
        get_spec("vgg")


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
    want = (3, 1, 28, 28) if name == "gan" else (3, 10)  # a generator's images
    assert reference.forward(spec, spec.init_weights(0), x).shape == want
