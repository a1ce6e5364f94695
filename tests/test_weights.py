"""The neutral weight file: round trip, and errors that name the file and the mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.weights import FORMAT, WeightFileError, load_weights, save_weights
from models.spec import get_spec


@pytest.fixture
def mlp():
    return get_spec("mlp")


def _refused(tmp_path, spec, weights) -> str:
    """The message of saving ``weights`` as ``spec``'s, which must fail and write nothing."""
    with pytest.raises(WeightFileError) as err:
        save_weights(tmp_path / "w.npz", spec, weights)
    assert not (tmp_path / "w.npz").exists()
    return str(err.value)


def test_round_trip(tmp_path, mlp):
    w = mlp.init_weights(0)
    save_weights(tmp_path / "w.npz", mlp, w)
    back = load_weights(tmp_path / "w.npz", mlp)
    assert all(np.array_equal(back[k], w[k]) for k in w)
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_file(tmp_path, mlp):
    with pytest.raises(WeightFileError, match=r"nope\.npz: no such weight file"):
        load_weights(tmp_path / "nope.npz", mlp)


def test_truncated_file(tmp_path, mlp):
    path = tmp_path / "w.npz"
    save_weights(path, mlp, mlp.init_weights(0))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightFileError, match=r"w\.npz: not a readable \.npz"):
        load_weights(path, mlp)


def test_weights_of_another_model(tmp_path, mlp):
    cnn = get_spec("cnn")
    save_weights(tmp_path / "cnn.npz", cnn, cnn.init_weights(0))
    with pytest.raises(WeightFileError, match="holds weights of model 'cnn', not 'mlp'"):
        load_weights(tmp_path / "cnn.npz", mlp)


def test_foreign_npz(tmp_path, mlp):
    np.savez(tmp_path / "x.npz", **mlp.init_weights(0))
    with pytest.raises(WeightFileError, match="not an xfbench weight file"):
        load_weights(tmp_path / "x.npz", mlp)


def test_shape_and_name_mismatch_are_named(tmp_path, mlp):
    w = mlp.init_weights(0)
    w["fc1.kernel"] = w["fc1.kernel"].T
    del w["fc2.bias"]
    w["fc3.kernel"] = np.zeros((1, 1), np.float32)
    msg = _refused(tmp_path, mlp, w)
    assert "missing tensors ['fc2.bias']" in msg
    assert "unexpected tensors ['fc3.kernel']" in msg
    assert "fc1.kernel has shape (128, 784), the spec says (784, 128)" in msg


def test_non_finite_values_are_refused(tmp_path, mlp):
    w = mlp.init_weights(0)
    w["fc2.bias"][3] = np.nan
    with pytest.raises(WeightFileError, match=r"fc2\.bias holds NaN"):
        save_weights(tmp_path / "w.npz", mlp, w)


# -- state: batch normalisation's running statistics are part of the file --------------
@pytest.fixture
def resnet():
    return get_spec("resnet")


def _trained_like(spec, seed=0):
    """Initial weights with running statistics no longer at their initial 0 and 1."""
    rng = np.random.RandomState(seed)
    w = spec.init_weights(seed)
    for p in spec.params:
        if not p.trainable:
            w[p.name] = rng.uniform(0.1, 2.0, size=p.shape).astype(np.float32)
    return w


def test_round_trip_includes_the_state(tmp_path, resnet):
    w = _trained_like(resnet)
    save_weights(tmp_path / "w.npz", resnet, w)
    back = load_weights(tmp_path / "w.npz", resnet)
    state = [p.name for p in resnet.params if not p.trainable]
    assert "stage2.block0.shortcut.bn.moving_variance" in state
    assert sorted(back) == sorted(resnet.param_shapes)
    for name in state:
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], w[name], err_msg=name)
    assert all(np.array_equal(back[k], w[k]) for k in w)


def test_state_is_checked_like_the_weights(tmp_path, resnet):
    w = _trained_like(resnet)
    del w["stem.bn.moving_mean"]
    w["stage3.block1.bn2.moving_variance"] = np.ones(32, np.float32)
    w["stage1.block0.bn1.moving_variance"][0] = np.inf
    w["stage2.block0.shortcut.bn.moving_variance"][5] = -0.5
    msg = _refused(tmp_path, resnet, w)
    assert "missing tensors ['stem.bn.moving_mean']" in msg
    assert "stage3.block1.bn2.moving_variance has shape (32,), the spec says (64,)" in msg
    assert "stage1.block0.bn1.moving_variance holds NaN or infinite values" in msg
    assert "stage2.block0.shortcut.bn.moving_variance holds negative values" in msg


def test_a_file_without_the_state_is_refused(tmp_path, resnet):
    # A file written by a tool that kept the trainable tensors only.
    w = resnet.init_weights(0)
    trainable = {p.name: w[p.name] for p in resnet.params if p.trainable}
    header = json.dumps({"format": FORMAT, "model": "resnet"}).encode()
    np.savez(tmp_path / "w.npz", __xfbench__=np.frombuffer(header, np.uint8), **trainable)
    with pytest.raises(WeightFileError, match=r"w\.npz: does not match the 'resnet' spec: missing"):
        load_weights(tmp_path / "w.npz", resnet)
