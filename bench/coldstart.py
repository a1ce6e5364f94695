"""One cold start, in a process of its own: import the framework, load one model, call it.

The orchestrator starts this module once per framework x model x runtime and cold
process, with the framework's (or ONNX Runtime's) interpreter and the run's thread
settings, and reads one JSON result back. Nothing else is loaded first: the process
imports numpy and the harness's own small modules, then the framework, so that each
part of the start-up is timed on its own::

    import_s      importing the framework and sizing its thread pools
                  (Adapter.set_threads and import_framework; onnxruntime's import and,
                  on CUDA, its loading of the CUDA and cuDNN libraries, as torch's
                  import loads its own: bench/ort.py, require_cuda)
    load_s        building the model and loading its trained weights, or creating the
                  ONNX Runtime session
    first_call_s  the first call at batch 1, with any compilation or tracing it does

Memory: the resident set after the import is the baseline; after the first call the
model is called once at every benchmarked batch size, and the peak resident set above
the baseline (the kernel's high-water mark, reset after the import) is the model's
memory: weights, compiled code, workspaces and activations, without the framework.

    python -m bench.coldstart --framework torch --model cnn --runtime eager \\
        --device cpu --threads 2 --artifacts artifacts --batch-sizes 1,32,256 \\
        --result-file /tmp/cold.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def _input(spec: Any, batch_size: int) -> np.ndarray:
    """A batch of the model's input shape: random pixels, not the digits, so that no
    data loader (scikit-learn's) is imported before the framework is timed."""
    return np.random.RandomState(0).rand(batch_size, *spec.input_shape).astype(np.float32)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
    from models.spec import get_spec

    spec = get_spec(args.model)
    sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    out: dict[str, Any] = {}
    if args.runtime == "onnxruntime":
        from bench.ort import OrtRunner, make_session, require_cuda  # imports no onnxruntime

        t0 = time.perf_counter()
        import onnxruntime  # noqa: F401 - the import is what is timed

        if args.device == "cuda":
            # The same path as the benchmark's sessions (make_session calls it too, then
            # at no cost): onnxruntime.preload_dlls() once, or `unsupported` saying why.
            require_cuda()
        out["import_s"] = time.perf_counter() - t0

        baseline = rss_bytes()
        reset_peak_rss()
        path = args.artifacts / args.framework / args.model / "model.onnx"
        t0 = time.perf_counter()
        session = make_session(path, args.device, args.threads)
        out["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner = OrtRunner(session, _input(spec, 1), args.device)
        runner.to_numpy(runner())
        out["first_call_s"] = time.perf_counter() - t0
        for b in sizes:
            OrtRunner(session, _input(spec, b), args.device)()
        out["peak_device_bytes"] = None
    else:
        from bench.adapters import get_adapter
        from bench.weights import load_weights

        adapter = get_adapter(args.framework)
        t0 = time.perf_counter()
        # Sizing the pools may import the framework itself (torch), so both are timed.
        adapter.set_threads(args.threads)
        adapter.import_framework()
        out["import_s"] = time.perf_counter() - t0
        adapter.check_mode(args.runtime)
        if args.device not in adapter.devices():  # sklearn on a GPU, a CPU build, ...
            from bench.adapters.base import UnsupportedError

            raise UnsupportedError(
                f"{args.framework} cannot use {args.device!r} here (it sees {adapter.devices()})"
            )
        path = args.artifacts / args.framework / args.model / "weights.npz"
        weights = load_weights(path, spec)  # numpy: read before the baseline
        baseline = rss_bytes()
        reset_peak_rss()
        t0 = time.perf_counter()
        model = adapter.build(spec, args.device)
        adapter.set_weights(model, weights)
        out["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fwd = adapter.forward(model, args.runtime)
        y = fwd(adapter.to_device(model, _input(spec, 1)))
        adapter.wait(y)
        adapter.to_numpy(y)
        out["first_call_s"] = time.perf_counter() - t0
        # No reset of the device peak: the process holds nothing on the device but this
        # model, so the peak since start is the model's (weights, workspaces, activations).
        for b in sizes:
            adapter.wait(fwd(adapter.to_device(model, _input(spec, b))))
        out["peak_device_bytes"] = adapter.peak_device_memory(model)
    peak = peak_rss_bytes()
    out["rss_baseline_bytes"] = baseline
    out["rss_increase_bytes"] = None if peak is None or baseline is None else peak - baseline
    out["batch_sizes"] = sizes
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart")
    parser.add_argument("--framework", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--runtime", required=True, help="a mode of the framework, or onnxruntime")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--result-file", type=Path, required=True)
    args = parser.parse_args(argv)
    from bench.lifeline import watch_parent  # stdlib only: nothing of a framework's

    watch_parent()
    try:
        result = {"status": "ok", "reason": "", **measure(args)}
    except Exception as exc:
        from bench.adapters.base import UnsupportedError

        status = "unsupported" if isinstance(exc, UnsupportedError) else "error"
        if status == "error":  # an unsupported case is expected: its reason is enough
            traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        result = {"status": status, "reason": reason}
    args.result_file.write_text(json.dumps(result))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
