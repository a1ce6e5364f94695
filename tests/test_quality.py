"""The GAN's quality score (bench/quality.py): the judge tells digits from what an
untrained generator makes, and its target sits between the two."""

from __future__ import annotations

import numpy as np
import pytest

from bench import quality
from bench.data import as_model_input, load_digits
from models import reference
from models.spec import get_spec


def test_score_refuses_what_is_not_a_batch_of_digit_images():
    judge = get_spec(quality.JUDGE).init_weights(0)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) images, got shape \(4, 784\)"):
        quality.score(np.zeros((4, 784)), judge)


def test_classes_count_only_digits_seen_often_enough():
    # An untrained judge still has an argmax: its histogram sums to the samples, and a
    # class counts only at CLASS_SHARE of them.
    judge = get_spec(quality.JUDGE).init_weights(0)
    images = load_digits().x_test[:200]
    verdict = quality.score(images, judge)
    histogram = np.array(verdict["histogram"])
    assert histogram.sum() == 200
    assert verdict["classes"] == int((histogram >= quality.CLASS_SHARE * 200).sum())
    assert 0.1 <= verdict["confidence"] <= 1.0


@pytest.fixture
def judge(adapter, test_artifacts):
    """This framework's trained CNN, the GAN's judge (the zoo's build, reused if current)."""
    from bench.weights import load_weights
    from bench.zoo import build_model, model_dir

    if "gan" not in adapter.models:
        pytest.skip(f"{adapter.name} declares no 'gan' model")
    spec = get_spec(quality.JUDGE)
    build_model(adapter, spec, test_artifacts, progress=False)
    return load_weights(model_dir(test_artifacts, adapter.name, spec.name) / "weights.npz", spec)


def test_the_target_separates_digits_from_an_untrained_generator(adapter, judge):
    gan = get_spec("gan")
    real = quality.score(load_digits().x_test, judge)
    assert quality.meets_target(real), real
    untrained = reference.generate(
        gan, gan.init_weights(gan.train.seed), quality.judged_latent(gan)
    )
    verdict = quality.score(untrained, judge)
    assert not quality.meets_target(verdict), verdict
    noise = np.random.RandomState(0).uniform(size=(quality.SAMPLES, 1, 28, 28))
    assert not quality.meets_target(quality.score(noise, judge))


def test_judged_samples_are_not_the_checks_latent_vectors():
    gan = get_spec("gan")
    judged = quality.judged_latent(gan)
    assert judged.shape == (quality.SAMPLES, 32)
    assert not np.array_equal(judged[:8], as_model_input(gan, np.zeros((8, 1, 28, 28))))
