"""The GAN's spec, its numpy reference and its data, by hand (no framework)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import as_model_input, latent, load_digits, train_batch
from models import reference
from models.spec import get_spec, network_params


@pytest.fixture(scope="module")
def gan():
    return get_spec("gan")


def test_counts_by_hand(gan):
    g = 32 * 64 * 7 * 7 + 2 * 64 + 64 * 32 * 4 * 4 + 2 * 32 + 32 * 1 * 4 * 4 + 1
    d = (1 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (64 * 7 * 7 + 1)
    assert gan.param_count == g + d == 170_338
    assert gan.state_count == 2 * (64 + 32)
    trainable = {
        n: sum(p.size for p in network_params(gan, n) if p.trainable) for n in ("gen", "disc")
    }
    assert trainable == {"gen": g, "disc": d}
    # Inference runs the generator only: its dense projection and two transposed
    # convolutions, each 2 * c_in * c_out * 16 per input pixel (7x7, then 14x14).
    assert gan.flops_per_sample == 2 * 32 * 3136 + 2 * 64 * 32 * 16 * 49 + 2 * 32 * 16 * 196
    with pytest.raises(ValueError, match="the GAN has gen, disc"):
        network_params(gan, "critic")


@pytest.mark.parametrize(("stride", "padding"), [(2, 1), (1, 0), (2, 0)])
def test_transposed_conv_matches_a_direct_loop(stride, padding):
    # Each input pixel (h, w) adds x * kernel[c, o, i, j] at (h*s + i - p, w*s + j - p).
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 3, 4, 4))
    kernel = rng.normal(size=(3, 5, 4, 4))  # IOHW
    got = reference._conv_transpose(x, kernel, stride, padding)
    size = (4 - 1) * stride + 4 - 2 * padding
    want = np.zeros((2, 5, size, size))
    for h in range(4):
        for w in range(4):
            for i in range(4):
                for j in range(4):
                    y, z = h * stride + i - padding, w * stride + j - padding
                    if 0 <= y < size and 0 <= z < size:
                        want[:, :, y, z] += np.einsum(
                            "nc,co->no", x[:, :, h, w], kernel[:, :, i, j]
                        )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_generator_makes_images_and_discriminator_scores_them(gan):
    w = gan.init_weights(0)
    z = latent(gan, 5)
    images = reference.forward(gan, w, z)
    assert images.shape == (5, 1, 28, 28)
    assert images.min() > 0 and images.max() < 1  # a sigmoid: pixels like the data's
    assert reference.outputs(gan, w, z, "probabilities") is not None  # kind is ignored
    np.testing.assert_array_equal(reference.outputs(gan, w, z, "logits"), images)
    assert reference.discriminate(gan, w, images).shape == (5, 1)


def test_latent_vectors_are_one_seeded_stream(gan):
    assert latent(gan, 7).dtype == np.float32
    np.testing.assert_array_equal(latent(gan, 32)[:7], latent(gan, 7))
    assert not np.array_equal(latent(gan, 7, seed=1), latent(gan, 7))
    # Wherever a model is fed digits, the generator is fed as many latent vectors.
    digits = load_digits().x_test[:4]
    np.testing.assert_array_equal(as_model_input(gan, digits), latent(gan, 4))


def test_a_training_batch_is_real_images_and_noise(gan):
    d = load_digits()
    x, z = train_batch(gan, d.x_train[:8], d.y_train[:8], seed=3)
    np.testing.assert_array_equal(x, d.x_train[:8])
    np.testing.assert_array_equal(z, latent(gan, 8, 3))
    cnn = get_spec("cnn")
    x, y = train_batch(cnn, d.x_train[:8], d.y_train[:8], seed=3)
    np.testing.assert_array_equal(y, d.y_train[:8])  # the classifiers' labels, unchanged
