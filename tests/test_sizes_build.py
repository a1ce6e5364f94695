"""Every size a default run times is built and checked by each framework's real zoo:
the same checks as a trained build (numpy reference, weight round trip, ONNX parity,
the graph's FLOP count), from the spec's initial weights."""

from __future__ import annotations

import pytest

from bench.zoo import ONNX_PARITY_TOL, REFERENCE_TOL, build_model
from models.spec import get_spec, sizes_of


def test_default_sizes_build_and_verify(adapter, spec, tmp_path):
    sizes = sizes_of(spec.arch)
    if not sizes:
        pytest.skip(f"{spec.arch} comes in its reference size only")
    for name in sizes:
        sized = get_spec(name)
        m = build_model(adapter, sized, tmp_path, progress=False)
        assert m["status"] == "ok" and m["model"] == name
        assert m["train"]["trained"] is False and m["train"]["test_accuracy"] is None
        assert m["parameters"] == sized.param_count
        assert m["reference_max_abs_diff"] <= REFERENCE_TOL
        assert m["onnx"]["parity_max_abs_diff"] <= ONNX_PARITY_TOL
        assert m["onnx"]["flops_per_sample"] == sized.flops_per_sample
        again = build_model(adapter, sized, tmp_path, progress=False)
        assert again["reused"] is True
