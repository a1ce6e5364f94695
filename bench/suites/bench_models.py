"""The benchmark suite: cold start, inference (native, eager, ONNX Runtime) and the
training step, for one framework per process. Cases come from ``bench/matrix.py``.

Timing discipline: each timed callable ends with a device synchronize (GPU results
are complete when the clock is read), is warmed up untimed (three calls here, then
pytest-benchmark's own warm-up), and is timed for at least ``--benchmark-min-rounds``
rounds and about ``--benchmark-max-time`` seconds, every round kept.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench.adapters.base import UnsupportedError
from bench.matrix import Case
from bench.ort import OrtRunner, make_session
from bench.suites.conftest import Context, sample_batch
from models.spec import get_spec

WARMUP_CALLS = 3


def _fault_injection(case: Case) -> None:
    """Test hook: ``XFBENCH_FAULT=crash:<case id>`` or ``hang:<case id>`` makes that case
    kill or stall its worker, so the isolation tests exercise a real dying process."""
    kind, _, target = os.environ.get("XFBENCH_FAULT", "").partition(":")
    if target == case.id:
        if kind == "crash":
            os.abort()
        if kind == "hang":
            time.sleep(3600)


@contextmanager
def _unsupported_as_skip() -> Iterator[None]:
    try:
        yield
    except UnsupportedError as exc:
        pytest.skip(f"unsupported: {exc}")


def _prepare(case: Case, ctx: Context) -> None:
    _fault_injection(case)
    if case.runtime != "onnxruntime" and case.device not in ctx.adapter.devices():
        pytest.skip(
            f"unsupported: {case.framework} cannot use {case.device!r} here "
            f"(it sees {ctx.adapter.devices()})"
        )


def _warm(fn: Callable[[], Any]) -> Any:
    out = None
    for _ in range(WARMUP_CALLS):
        out = fn()
    return out


@pytest.mark.phase("cold_start")
def test_cold_start(case: Case, ctx: Context, benchmark: Any) -> None:
    """Load the model (weights from disk, or an ONNX Runtime session) and make the first
    call, once, in a process where the framework is already imported."""
    _prepare(case, ctx)
    spec = get_spec(case.model)
    x, _ = sample_batch(spec, 1)
    a = ctx.adapter

    def load_and_first_call() -> Any:
        if case.runtime == "onnxruntime":
            runner = OrtRunner(
                make_session(ctx.onnx_path(case.model), case.device, ctx.threads), x, case.device
            )
            return runner.to_numpy(runner())
        m = ctx.load_native(case.model, case.runtime, case.device)
        return a.to_numpy(a.infer(m, a.to_device(m, x)))

    with _unsupported_as_skip():
        y = benchmark.pedantic(load_and_first_call, rounds=1, iterations=1, warmup_rounds=0)
    assert y.shape == (1, 10)


@pytest.mark.phase("inference")
def test_inference(case: Case, ctx: Context, benchmark: Any) -> None:
    _prepare(case, ctx)
    spec = get_spec(case.model)
    x, _ = sample_batch(spec, case.batch_size)
    with _unsupported_as_skip():
        if case.runtime == "onnxruntime":
            session = ctx.onnx_session(case.model, case.device)
            call: Callable[[], Any] = OrtRunner(session, x, case.device)
            benchmark.extra_info["providers"] = session.get_providers()
            model, a = None, None
        else:
            a = ctx.adapter_for(case.runtime)
            model = ctx.native(case.model, case.runtime, case.device)
            x_dev = a.to_device(model, x)

            def call() -> Any:
                y = a.infer(model, x_dev)
                a.synchronize(model)
                return y

    y = _warm(call)
    if a is not None:
        where = a.output_device(y)
        assert where == case.device, f"result computed on {where}, not {case.device}"
        a.reset_peak_device_memory(model)
    benchmark(call)
    if a is not None:
        benchmark.extra_info["peak_device_bytes"] = a.peak_device_memory(model)


@pytest.mark.phase("peak")
def test_gemm_peak(case: Case, ctx: Context, benchmark: Any) -> None:
    """An n x n float32 matrix product: 2 n^3 FLOPs per call, the efficiency yardstick."""
    _prepare(case, ctx)
    run = ctx.adapter.gemm(case.batch_size, case.device)
    if run is None:
        pytest.skip(f"unsupported: {case.framework} adapter offers no gemm")
    _warm(run)
    benchmark(run)
    benchmark.extra_info["flops_per_call"] = 2 * case.batch_size**3


@pytest.mark.phase("train_step")
def test_train_step(case: Case, ctx: Context, benchmark: Any) -> None:
    """Forward, loss, backward and an Adam update on one batch, from numpy inputs to the
    loss read back on the host (which also synchronizes the device)."""
    _prepare(case, ctx)
    spec = get_spec(case.model)
    x, y = sample_batch(spec, case.batch_size)
    a = ctx.adapter
    with _unsupported_as_skip():
        # A model of its own: training changes the weights the inference cases use.
        model = ctx.load_native(case.model, "native", case.device)
        step = a.make_train_step(model, spec.train)
    for _ in range(WARMUP_CALLS):
        step(x, y)
    a.reset_peak_device_memory(model)
    loss = benchmark(step, x, y)
    benchmark.extra_info["peak_device_bytes"] = a.peak_device_memory(model)
    assert math.isfinite(loss), loss
