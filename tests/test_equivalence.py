"""Cross-framework equivalence of the trained models.

Reads what the framework environments' test runs recorded under
``$XFBENCH_TEST_ARTIFACTS`` (tox runs the framework environments before ``core``), and
checks every pair of frameworks on the same weights and inputs within 1e-4.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.adapters import adapter_class, framework_names
from bench.zoo import compare_equivalence, model_dir, read_manifest
from models.spec import MODEL_NAMES, get_spec

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = os.environ.get("XFBENCH_TEST_ARTIFACTS")
    required = os.environ.get("XFBENCH_REQUIRE_EQUIVALENCE") == "1"
    present = root and (Path(root) / "equivalence").is_dir()
    if not present:
        message = (
            "no recorded framework outputs: run the framework environments first "
            "(`tox -e torch,tensorflow,mxnet,core`)"
        )
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return Path(root)


def declaring(model: str) -> list[str]:
    """The registered frameworks that implement ``model``."""
    return [fw for fw in framework_names() if model in adapter_class(fw).models]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_framework_pair_agrees(artifacts, model):
    rows = compare_equivalence(artifacts, model)
    pairs = {(r["a"], r["b"]) for r in rows if r["weights"] == "init"}
    n = len(declaring(model))
    assert len(pairs) == n * (n - 1) // 2, f"outputs missing for some frameworks: {sorted(pairs)}"
    worst = max(rows, key=lambda r: r["max_abs_diff"])
    assert worst["max_abs_diff"] <= TOLERANCE, worst


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_all_frameworks_saw_the_same_data_and_sizes(artifacts, model):
    manifests = [read_manifest(model_dir(artifacts, fw, model)) for fw in declaring(model)]
    assert all(manifests), "a framework's build is missing"
    assert len({m["data_fingerprint"] for m in manifests}) == 1
    assert {m["parameters"] for m in manifests} == {get_spec(model).param_count}
    print(json.dumps({m["framework"]: m["train"]["test_accuracy"] for m in manifests}))
