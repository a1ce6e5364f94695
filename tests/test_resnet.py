"""The ResNet: batch normalisation in the numpy reference, and in every framework that
declares the model, with running statistics that are not the initial 0 and 1.

The conformance kit runs the ResNet like every model, but from initial weights, where
every running mean is 0 and every running variance and gamma 1: batch normalisation is
then (almost) the identity, and a framework that swapped ``gamma`` with
``moving_variance``, or ``beta`` with ``moving_mean``, or normalised by batch statistics
at inference, would still pass it. The tests here load statistics that tell them apart,
and check what a training step does to them.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conformance import _batch_statistics, assert_running_statistics_moved_once
from bench.data import as_model_input, load_digits
from bench.zoo import REFERENCE_TOL
from models import reference
from models.spec import BN_EPSILON, WIDTHS, get_spec, resnet_blocks, sizes_of


def with_statistics(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """The spec's initial weights with every batch normalisation tensor drawn away from
    its initial value, each from a range of its own (a swap of two shows)."""
    rng = np.random.RandomState(seed)
    draw = {
        "gamma": lambda n: rng.uniform(0.5, 1.5, n),
        "beta": lambda n: rng.uniform(-0.3, 0.3, n),
        "moving_mean": lambda n: rng.uniform(-0.5, 0.5, n),
        "moving_variance": lambda n: rng.uniform(0.5, 2.0, n),
    }
    w = spec.init_weights(seed)
    for p in spec.params:
        var = p.name.rsplit(".", 1)[1]
        if var in draw:
            w[p.name] = draw[var](p.shape).astype(np.float32)
    return w


# -- the reference, by hand ----------------------------------------------------------------
def _one_channel(gamma, beta, mean, var):
    values = {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var}
    return {f"bn.{n}": np.array([v], dtype=np.float64) for n, v in values.items()}


def test_reference_batch_norm_in_eval_mode_by_hand():
    # One channel, running mean 3 and variance 4 - eps: y = 2 * (x - 3) / 2 + 1 = x - 2,
    # whatever the batch holds (inference never looks at the batch's statistics).
    x = np.array([[[[1.0, 3.0], [5.0, 7.0]]]])  # (N, C, H, W) = (1, 1, 2, 2)
    w = _one_channel(gamma=2.0, beta=1.0, mean=3.0, var=4.0 - BN_EPSILON)
    got = reference._batch_norm(x, w, "bn")
    np.testing.assert_allclose(got, [[[[-1.0, 1.0], [3.0, 5.0]]]], rtol=1e-12)
    np.testing.assert_allclose(reference._batch_norm(x[:, :, :1, :1], w, "bn"), [[[[-1.0]]]])


def test_reference_batch_norm_epsilon_is_the_spec_s():
    # A zero running variance divides by sqrt(eps): 1e-5, not Keras's default 1e-3.
    assert BN_EPSILON == 1e-5
    w = _one_channel(gamma=1.0, beta=0.0, mean=0.0, var=0.0)
    got = reference._batch_norm(np.full((1, 1, 1, 1), 1e-3), w, "bn")
    np.testing.assert_allclose(got, 1e-3 / np.sqrt(1e-5), rtol=1e-12)


def test_reference_batch_norm_is_per_channel():
    x = np.ones((2, 3, 2, 2))
    w = {
        "bn.gamma": np.array([1.0, 2.0, 3.0]),
        "bn.beta": np.array([0.0, 10.0, 20.0]),
        "bn.moving_mean": np.array([1.0, 0.0, 1.0]),
        "bn.moving_variance": np.array([1.0, 1.0, 1.0]) - BN_EPSILON,
    }
    got = reference._batch_norm(x, w, "bn")
    np.testing.assert_allclose(got[1, :, 1, 0], [0.0, 12.0, 20.0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (2, 0)])
def test_reference_strided_conv_matches_a_direct_loop(stride, padding):
    # Windows start at -padding and step by stride: at stride 2 and padding 1 on a 6x6
    # map, rows -1, 1, 3 (PyTorch's padding=1; TensorFlow's "same" would start at 0).
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 3, 6, 6))
    k = 3 if padding else 1
    kernel = rng.normal(size=(4, 3, k, k))
    got = reference._conv2d_padded(x, kernel, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    size = (6 + 2 * padding - k) // stride + 1
    want = np.zeros((2, 4, size, size))
    for i in range(size):
        for j in range(size):
            window = padded[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            want[:, :, i, j] = np.einsum("ncij,ocij->no", window, kernel)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.shape[2] == {(1, 1): 6, (2, 1): 3, (2, 0): 3}[(stride, padding)]


def test_reference_resnet_is_batch_independent():
    # Eval mode: each sample's logits are its own, whatever else is in the batch.
    spec = get_spec("resnet")
    w = with_statistics(spec)
    x = as_model_input(spec, load_digits().x_test[:5])
    full = reference.forward(spec, w, x)
    np.testing.assert_allclose(reference.forward(spec, w, x[2:3]), full[2:3], rtol=1e-12)


def test_resnet_comes_in_its_reference_size_only():
    assert WIDTHS["resnet"] == (1,) and sizes_of("resnet") == [] and sizes_of("resnet", True) == []
    with pytest.raises(ValueError, match=r"resnet comes in one size only, so name it 'resnet'"):
        get_spec("resnet@x2")
    assert get_spec("resnet").trained


# -- the frameworks ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def resnet(adapter):
    if "resnet" not in adapter.models:
        pytest.skip(f"{adapter.name} declares no 'resnet' model")
    return get_spec("resnet")


def _forward(adapter, model, mode, x):
    fwd = adapter.forward(model, mode)
    y = fwd(adapter.to_device(model, x))
    adapter.wait(y)
    return adapter.to_numpy(y).astype(np.float32)


def test_every_mode_uses_the_running_statistics(adapter, resnet, digits, mode):
    model = adapter.build(resnet)
    weights = with_statistics(resnet, 5)
    adapter.set_weights(model, weights)
    back = adapter.get_weights(model)
    for name, value in weights.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)
    x = as_model_input(resnet, digits.x_test[:7])
    want = reference.outputs(resnet, weights, x, adapter.output)
    for b in (1, 7):
        got = _forward(adapter, model, mode, x[:b])
        bound = REFERENCE_TOL * max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want[:b]).max() <= bound, (mode, b, np.abs(got - want[:b]).max())


def test_train_step_normalises_by_the_batch_and_updates_the_running_statistics(
    adapter, resnet, digits, train_mode
):
    model = adapter.build(resnet)
    weights = resnet.init_weights(resnet.train.seed)
    adapter.set_weights(model, weights)
    x = as_model_input(resnet, digits.x_train[:32])
    y = digits.y_train[:32]
    # The first step's loss is computed before its update: from the initial weights,
    # with every layer normalised by the batch's statistics.
    stats: dict[str, tuple] = {}
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    logits = reference._resnet(resnet, w64, x.astype(np.float64), _batch_statistics(stats))
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    want_loss = -log_p[np.arange(len(y)), y].mean()
    step = adapter.make_train_step(model, resnet.train, train_mode)
    loss = step(x, y)
    assert loss == pytest.approx(want_loss, rel=1e-4), (loss, want_loss)

    # Each running statistic moved BN_MOMENTUM of the way from its initial value (mean
    # 0, variance 1) to the batch's.
    after = adapter.get_weights(model)
    assert len(stats) == 1 + 2 * len(resnet_blocks(resnet)) + 2  # stem, 2 per block, shortcuts
    assert_running_statistics_moved_once(adapter, stats, after)

    # And the model is back in inference mode: its running statistics, at batch 1 as at
    # 7 (by batch statistics, one sample would give other logits); in every mode after
    # the default training mode (compiling each mode once per training mode would
    # double the suite's compilations for nothing more).
    x_test = as_model_input(resnet, digits.x_test[:7])
    want = reference.outputs(resnet, after, x_test, adapter.output)
    bound = REFERENCE_TOL * max(1.0, float(np.abs(want).max()))
    default = train_mode == adapter.train_modes[0]
    for mode in adapter.modes if default else adapter.modes[:1]:
        for b in (1, 7):
            got = _forward(adapter, model, mode, x_test[:b])
            assert np.abs(got - want[:b]).max() <= bound, (mode, b)
