"""The benchmark suite: compile, inference and the training step in every mode of one
framework, or ONNX Runtime on every export, in one process. Cases come from
``bench/matrix.py``; cold starts run in fresh processes of their own
(``bench/coldstart.py``).

What a timed call contains, and nothing else: native inference is
``adapter.wait(forward(x))`` on an input already on the device (``wait`` is a no-op
where results are complete on return); ONNX Runtime is ``session.run`` (IO binding on
CUDA); the training step goes from a numpy batch to the loss on the host, cycling
through the training split. Each is called once untimed, warmed up, then timed for
``Timing.max_time`` in rounds of one call wherever a call lasts ``Timing.min_round_s``
(``bench/suites/conftest.py``: ``time_calls``).

An inference case on a device other than the CPU first checks, untimed, that its first
call's result matches the same computation on the CPU (:func:`check_against_cpu`): a
fast wrong answer is not a benchmark result.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from bench import testhooks
from bench.adapters.base import UnsupportedError
from bench.matrix import ORT, Case
from bench.ort import OrtRunner
from bench.suites.conftest import Context, sample_batch, time_calls, train_batches
from models.spec import get_spec

#: The most an inference result on another device may differ from the same computation
#: on the CPU, as max |a - b| over the outputs: the conformance kit's GPU tolerance
#: (``bench/conformance.py``: ``test_runs_on_cuda_when_available``). GPU kernels
#: (cuDNN's convolution algorithms, other summation orders) stay close, not exact.
DEVICE_TOL = 1e-3


def check_against_cpu(case: Case, got: Any, want: Any, tol: float = DEVICE_TOL) -> float:
    """Max |got - want| of ``case``'s first result (``got``) and the same computation on
    the CPU (``want``); ``AssertionError`` (the case fails, saying by how much) where it
    is above ``tol``, not finite, or the shapes differ. Results may arrive as any array
    type numpy reads; the difference is taken in float64."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    where = f"{case.id}: the first result on {case.device}"
    if got.shape != want.shape:
        raise AssertionError(
            f"{where} has shape {got.shape}, the same computation on the CPU {want.shape}"
        )
    diff = float(np.abs(got - want).max()) if got.size else 0.0
    if not diff <= tol:  # NaN included
        raise AssertionError(
            f"{where} differs from the same computation on the CPU by max |a - b| = "
            f"{diff:.3g} (tolerance {tol:g}); its timings would be of a wrong answer"
        )
    return diff


def _fault_injection(case: Case) -> None:
    """Test hook (:mod:`bench.testhooks`): ``XFBENCH_FAULT=crash:<case id>`` or
    ``hang:<case id>`` makes that case kill or stall its worker, so the isolation tests
    exercise a real dying process."""
    kind, _, target = testhooks.hook("XFBENCH_FAULT").partition(":")
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
    if case.runtime != ORT and case.device not in ctx.adapter.devices():
        pytest.skip(
            f"unsupported: {case.framework} cannot use {case.device!r} here "
            f"(it sees {ctx.adapter.devices()})"
        )


def _native_call(case: Case, ctx: Context) -> tuple[Callable[[], Any], Any, float]:
    """The timed call of a native inference case, its model, and the seconds spent
    creating the mode's forward function here (0 where an earlier case created it)."""
    a = ctx.adapter
    x, _ = sample_batch(get_spec(case.model), case.batch_size)
    model = ctx.native(case.model, case.runtime, case.device)
    t0 = time.perf_counter()
    fwd, created = ctx.forward(case.model, case.runtime, case.device)
    create_s = time.perf_counter() - t0 if created else 0.0
    x_dev = a.to_device(model, x)

    def call() -> Any:
        y = fwd(x_dev)
        a.wait(y)
        return y

    return call, model, create_s


@pytest.mark.phase("compile")
def test_compile(case: Case, ctx: Context, benchmark: Any) -> None:
    """The first call of a mode at this batch size in this process: tracing and
    compilation included (for eager modes, the first call's own set-up). Creating the
    mode's forward function counts here too, for the first batch size of that mode."""
    _prepare(case, ctx)
    with _unsupported_as_skip():  # loading the model and the data is not compilation
        ctx.native(case.model, case.runtime, case.device)
        sample_batch(get_spec(case.model), case.batch_size)

    def first_call() -> None:
        call, _, create_s = _native_call(case, ctx)
        t0 = time.perf_counter()
        call()
        benchmark.extra_info["forward_created_s"] = create_s
        benchmark.extra_info["first_call_s"] = time.perf_counter() - t0

    with _unsupported_as_skip():
        # One sample per process (the harness's own set-up of the input, a few us, rides
        # along: negligible against any compilation).
        benchmark.pedantic(first_call, rounds=1, iterations=1)


@pytest.mark.phase("inference")
def test_inference(case: Case, ctx: Context, benchmark: Any) -> None:
    _prepare(case, ctx)
    with _unsupported_as_skip():
        if case.runtime == ORT:
            x, _ = sample_batch(get_spec(case.model), case.batch_size)
            session = ctx.onnx_session(case.framework, case.model, case.device)
            runner = OrtRunner(session, x, case.device)
            benchmark.extra_info["providers"] = session.get_providers()
            # Shape computations the CUDA provider itself left to the CPU (bench/ort.py).
            benchmark.extra_info["cpu_nodes"] = getattr(session, "xfbench_cpu_nodes", "")
            if case.device != "cpu":
                want = ctx.onnx_cpu_reference(case.framework, case.model, case.batch_size)
                diff = check_against_cpu(case, runner.to_numpy(runner()), want)
                benchmark.extra_info["cpu_max_abs_diff"] = diff
            time_calls(benchmark, case, ctx.timing, runner)
            return
        call, model, _ = _native_call(case, ctx)
    a = ctx.adapter
    y = call()
    where = a.output_device(y)
    assert where == case.device, f"result computed on {where}, not {case.device}"
    if case.device != "cpu":
        want = ctx.native_cpu_reference(case.model, case.batch_size)
        diff = check_against_cpu(case, a.to_numpy(y), want)
        benchmark.extra_info["cpu_max_abs_diff"] = diff
        benchmark.extra_info["gpu_settings"] = a.gpu_settings()
    del y  # not held on the device while the case is timed
    a.reset_peak_device_memory(model)
    time_calls(benchmark, case, ctx.timing, call)
    benchmark.extra_info["peak_device_bytes"] = a.peak_device_memory(model)


@pytest.mark.phase("peak")
def test_gemm_peak(case: Case, ctx: Context, benchmark: Any) -> None:
    """An n x n float32 matrix product: 2 n^3 FLOPs per call, the efficiency yardstick."""
    _prepare(case, ctx)
    with _unsupported_as_skip():  # a build that cannot run kernels on this GPU (MXNet)
        run = ctx.adapter.gemm(case.batch_size, case.device)
    if run is None:
        pytest.skip(f"unsupported: {case.framework} adapter offers no gemm")
    time_calls(benchmark, case, ctx.timing, run)
    benchmark.extra_info["flops_per_call"] = 2 * case.batch_size**3


@pytest.mark.phase("train_step")
def test_train_step(case: Case, ctx: Context, benchmark: Any) -> None:
    """Forward, loss, backward and an optimizer update, from a numpy batch to the loss
    read back on the host (which also waits for the device), cycling through the
    training split in the same order in every framework."""
    _prepare(case, ctx)
    spec = get_spec(case.model)
    batches = itertools.cycle(train_batches(spec, case.batch_size))
    a = ctx.adapter
    with _unsupported_as_skip():
        # A model of its own: training changes the weights the inference cases use.
        model = ctx.load_native(case.model, case.device)
        step = a.make_train_step(model, spec.train, case.runtime)

        def call() -> float:
            return step(*next(batches))

        t0 = time.perf_counter()
        call()
        benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
    a.reset_peak_device_memory(model)
    loss = time_calls(benchmark, case, ctx.timing, call)
    benchmark.extra_info["peak_device_bytes"] = a.peak_device_memory(model)
    assert math.isfinite(loss), loss
