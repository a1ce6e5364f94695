"""The report's charts: which files, valid PNGs, no overwriting, no heavy imports."""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")

from bench.plots import PNG_SIGNATURE, embed_png, make_plots, sanitise  # noqa: E402
from bench.report import CASE_COLUMNS, case_row  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("tensorflow", "torch")
MODELS = ("cnn", "mlp")
RUNTIMES = ("native", "onnxruntime")
BATCHES = (1, 32)


def _record(fw, model, runtime, phase, batch, threads, seconds, status="ok", reason=""):
    """A case record shaped like the ``end`` events of ``raw/*.jsonl``."""
    case_id = f"{fw}-{model}-{runtime}-{phase}-cpu-b{batch}-t{threads}"
    return {
        "schema": "xfbench-case/1",
        "event": "end",
        "framework": fw,
        "model": model,
        "runtime": runtime,
        "phase": phase,
        "device": "cpu",
        "batch_size": batch,
        "threads": threads,
        "case_id": case_id,
        "status": status,
        "reason": reason,
        "extra_info": {"peak_rss_bytes": 400 * 2**20, "peak_rss_scope": "case"},
        "stats": {"data": list(seconds) if status == "ok" else []},
    }


def _cases(thread_counts=(1, 2), host="vm", device="cpu", failures=True):
    records = []
    for i, (fw, model, rt, batch, threads) in enumerate(
        itertools.product(FRAMEWORKS, MODELS, RUNTIMES, BATCHES, thread_counts)
    ):
        base = 1e-4 * (1 + i % 5) * batch**0.7 / threads**0.8
        rounds = [base * (1 + 0.01 * k) for k in range(7)]
        records.append(_record(fw, model, rt, "inference", batch, threads, rounds))
        if rt == "native":
            records.append(
                _record(fw, model, rt, "train_step", batch, threads, [r * 4 for r in rounds])
            )
    records.append(_record("torch", "cnn", "native", "cold_start", 1, 1, [0.02]))
    if failures:
        records.append(
            _record(
                "tensorflow",
                "mlp",
                "native-eager",
                "inference",
                32,
                max(thread_counts),
                [],
                status="unsupported",
                reason="not built",
            )
        )
        records.append(
            _record(
                "torch",
                "cnn",
                "native",
                "train_step",
                64,
                max(thread_counts),
                [],
                status="error",
                reason="boom",
            )
        )
    rows = []
    for rec in records:
        row = case_row(rec)
        row.update(run="20260101-000000-vm-cpu", host=host, device_name="AMD EPYC", exporter="")
        row["device"] = device
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=CASE_COLUMNS)


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert float(np.ptp(img[..., :3])) > 0.2, f"{path.name} is a blank image"


def test_writes_every_chart_as_png(tmp_path):
    out = tmp_path / "plots"  # created by make_plots
    paths = make_plots(_cases(), out)
    assert [p.name for p in paths] == [
        "latency_vs_batch.png",
        "native_vs_onnxruntime.png",
        "thread_scaling.png",
        "train_step.png",
    ]
    assert sorted(out.iterdir()) == sorted(paths)
    for p in paths:
        _assert_png(p)


def test_one_thread_count_has_no_thread_scaling(tmp_path):
    paths = make_plots(_cases(thread_counts=(2,), failures=False), tmp_path)
    names = [p.name for p in paths]
    assert "thread_scaling.png" not in names
    assert names == ["latency_vs_batch.png", "native_vs_onnxruntime.png", "train_step.png"]
    assert not (tmp_path / "thread_scaling.png").exists()


def test_several_machines_get_a_file_each(tmp_path):
    cases = pd.concat(
        [_cases(thread_counts=(2,)), _cases(thread_counts=(2,), host="gpu box", device="cuda")],
        ignore_index=True,
    )
    names = [p.name for p in make_plots(cases, tmp_path)]
    assert names == [
        "latency_vs_batch-gpu_box-cuda.png",
        "native_vs_onnxruntime-gpu_box-cuda.png",
        "train_step-gpu_box-cuda.png",
        "latency_vs_batch-vm-cpu.png",
        "native_vs_onnxruntime-vm-cpu.png",
        "train_step-vm-cpu.png",
    ]


def test_missing_data_is_skipped_without_error(tmp_path):
    cases = _cases(thread_counts=(2,))
    only_failures = cases.assign(status="error", p50_ms=float("nan"))
    assert make_plots(only_failures, tmp_path / "a") == []
    assert make_plots(cases.iloc[0:0], tmp_path / "b") == []
    no_training = cases[cases.phase != "train_step"]
    names = [p.name for p in make_plots(no_training, tmp_path / "c")]
    assert names == ["latency_vs_batch.png", "native_vs_onnxruntime.png"]


def test_never_overwrites(tmp_path):
    cases = _cases()
    make_plots(cases, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"latency_vs_batch\.png"):
        make_plots(cases, tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_embed_png_round_trips(tmp_path):
    path = make_plots(_cases(thread_counts=(2,)), tmp_path)[0]
    uri = embed_png(path)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :], validate=True) == path.read_bytes()
    not_png = tmp_path / "x.png"
    not_png.write_text("hello")
    with pytest.raises(ValueError, match="not a PNG"):
        embed_png(not_png)


def test_sanitise():
    assert sanitise("gpu box/1") == "gpu_box_1"
    assert sanitise("a.b-c_d") == "a.b-c_d"
    assert sanitise("") == "unknown"


def test_import_is_light():
    code = (
        "import sys, bench.plots; "
        "heavy = {'matplotlib', 'pandas', 'torch', 'tensorflow', 'mxnet'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
