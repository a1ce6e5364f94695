"""How good a GAN's generator is, measured with the zoo's own digits CNN.

A generator is not trained to an accuracy; what it makes is judged. The judge is a
trained ``cnn`` of the zoo (the same framework's build, run here through the numpy
reference, so the judgement does not depend on the framework's inference). It
classifies :data:`SAMPLES` images generated from fixed latent vectors, and the score
has two parts, each a failure mode of GANs:

* ``confidence``: the judge's mean top-class probability. Blurry or noisy images, and
  the grey blobs of an untrained generator, are digits of no class in particular.
* ``classes``: how many of the ten digits the judge sees in at least
  :data:`CLASS_SHARE` of the samples. A generator that collapsed onto a few digits
  ("mode collapse") scores confidently on too few.

A generator meets the target (:func:`meets_target`) when both reach theirs. The
Inception Score and FID measure the same two things with an ImageNet network, which
nothing here may download.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models import reference
from models.spec import NUM_CLASSES, ModelSpec, get_spec

#: The model that judges, and how many samples it judges.
JUDGE = "cnn"
SAMPLES = 500
#: Latent vectors of the judged samples: not the stream checks and timings use.
QUALITY_SEED = 7
#: A class counts as produced when at least this share of the samples is judged to be it
#: (a tenth of the 10% a uniform generator would give each class).
CLASS_SHARE = 0.01
#: The target, calibrated on the development machine (see the CHANGELOG): trained
#: generators reach it, untrained ones (tests/test_quality.py) do not come close.
TARGET_CONFIDENCE = 0.80
TARGET_CLASSES = 9


def score(images: np.ndarray, judge_weights: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The judge's verdict on ``(N, 1, 28, 28)`` images in [0, 1]: ``confidence``,
    ``classes`` and the count per class (``histogram``)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"the judge reads (N, 1, 28, 28) images, got shape {images.shape}")
    probs = reference.softmax(reference.forward(get_spec(JUDGE), judge_weights, images))
    labels = probs.argmax(axis=1)
    histogram = np.bincount(labels, minlength=NUM_CLASSES)
    return {
        "confidence": float(probs.max(axis=1).mean()),
        "classes": int((histogram >= CLASS_SHARE * len(images)).sum()),
        "histogram": [int(n) for n in histogram],
    }


def meets_target(verdict: Mapping[str, Any]) -> bool:
    return verdict["confidence"] >= TARGET_CONFIDENCE and verdict["classes"] >= TARGET_CLASSES


def target() -> dict[str, float]:
    """The target as recorded in manifests."""
    return {
        "confidence": TARGET_CONFIDENCE,
        "classes": TARGET_CLASSES,
        "class_share": CLASS_SHARE,
        "samples": SAMPLES,
    }


def judged_latent(spec: ModelSpec) -> np.ndarray:
    from bench.data import latent

    return latent(spec, SAMPLES, QUALITY_SEED)
