"""The neutral weight file: round trip, and errors that name the file and the mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from bench.weights import WeightFileError, load_weights, save_weights
from models.spec import get_spec


@pytest.fixture
def mlp():
    return get_spec("mlp")


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
    with pytest.raises(WeightFileError) as err:
        save_weights(tmp_path / "w.npz", mlp, w)
    msg = str(err.value)
    assert "missing tensors ['fc2.bias']" in msg
    assert "unexpected tensors ['fc3.kernel']" in msg
    assert "fc1.kernel has shape (128, 784), the spec says (784, 128)" in msg
    assert not (tmp_path / "w.npz").exists()


def test_non_finite_values_are_refused(tmp_path, mlp):
    w = mlp.init_weights(0)
    w["fc2.bias"][3] = np.nan
    with pytest.raises(WeightFileError, match=r"fc2\.bias holds NaN"):
        save_weights(tmp_path / "w.npz", mlp, w)
