"""Faults in the trained artifacts and bad zoo input (issue 9), each reproduced with a
real damaged file through the real command line: every artifact is written atomically,
verified when reused, and a damaged one is rebuilt or named with the command that
fixes it, never a traceback that stops the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.atomic import atomic_path, atomic_write_text
from bench.weights import WeightFileError, load_weights, save_weights
from bench.zoo import (
    EquivalenceFileError,
    build_model,
    check_onnx,
    compare_equivalence,
    equivalence_outputs,
    model_dir,
    read_manifest,
)
from models.spec import get_spec

REPO = Path(__file__).resolve().parent.parent


def xfbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` with this interpreter, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "XFBENCH_TOX_WORKDIR"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".tmp" in p.name]


def write_npz_with_header(path: Path, header: bytes, weights: dict[str, np.ndarray]) -> None:
    """A weight file like ``save_weights`` writes, but with ``header`` as its header."""
    with open(path, "wb") as fh:
        np.savez(fh, __xfbench__=np.frombuffer(header, dtype=np.uint8), **weights)


# --- framework-free: the helper, the weight header, the manifest, the outputs, --threads


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "manifest.json"
    atomic_write_text(path, '{"v": 1}\n')
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(path) as tmp:
        tmp.write_text('{"v": 2, "half')  # half a file, then the writer dies
        raise RuntimeError("interrupted")
    assert path.read_text() == '{"v": 1}\n'
    assert not temp_leftovers(tmp_path)


def test_atomic_path_keeps_the_suffix_np_save_needs(tmp_path):
    path = tmp_path / "init.torch.logits.npy"
    with atomic_path(path) as tmp:
        np.save(tmp, np.ones((3, 10), np.float32))  # np.save appends .npy to other names
    assert np.load(path).shape == (3, 10)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "header, problem",
    [
        (b"\xff\xfe\x00garbage", "damaged header, not UTF-8 JSON"),
        (b'{"format": "xfbench-weig', "damaged header, not UTF-8 JSON"),
        (b'["xfbench-weights/1", "mlp"]', "damaged header, a JSON list where an object belongs"),
    ],
)
def test_damaged_weight_header_is_a_weight_file_error(tmp_path, header, problem):
    mlp = get_spec("mlp")
    path = tmp_path / "torch" / "mlp" / "weights.npz"
    save_weights(path, mlp, mlp.init_weights(0))
    write_npz_with_header(path, header, mlp.init_weights(0))
    with pytest.raises(WeightFileError) as err:
        load_weights(path, mlp)
    assert str(err.value).startswith(f"{path}: {problem}")
    assert str(err.value).endswith("`xfbench zoo -f torch -m mlp` rebuilds it")


@pytest.mark.parametrize("text", ["[]", '"ok"', "\xff{", '{"schema": 1'])
def test_damaged_manifest_reads_as_no_build(tmp_path, text):
    folder = tmp_path / "torch" / "mlp"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_bytes(text.encode("latin-1"))
    assert read_manifest(folder) is None  # not an AttributeError or UnicodeDecodeError


def test_truncated_equivalence_output_is_named_with_its_fix(tmp_path):
    folder = tmp_path / "equivalence" / "mlp"
    folder.mkdir(parents=True)
    out = np.random.default_rng(0).standard_normal((359, 10)).astype(np.float32)
    for fw in ("torch", "mxnet", "tensorflow"):
        np.save(folder / f"init.{fw}.logits.npy", out)
        np.save(folder / f"torch@0123abcd.{fw}.logits.npy", out)
    truncated = folder / "torch@0123abcd.tensorflow.logits.npy"
    truncated.write_bytes(truncated.read_bytes()[:40])  # "EOF: reading array header"
    (folder / ".init.jax.logits.npy.123-abcd.tmp.npy").write_bytes(b"\x93NUMPY")  # a dead write

    with pytest.raises(EquivalenceFileError) as err:
        compare_equivalence(tmp_path, "mlp")
    message = str(err.value)
    assert message.startswith(
        f"{truncated}: damaged cross-framework output (not a readable .npy file: EOF: "
        "reading array header"
    )
    assert message.endswith(
        "; `xfbench zoo -f tensorflow,torch -m mlp --equivalence` records it again, or delete it"
    )

    problems: list[str] = []
    rows = compare_equivalence(tmp_path, "mlp", problems)
    assert [p.split(":")[0] for p in problems] == [str(truncated)]
    pairs = {(r["weights"], r["a"], r["b"]) for r in rows}
    assert ("torch@0123abcd", "mxnet", "torch") in pairs  # the rest is still compared
    assert not any("tensorflow" in (a, b) for w, a, b in pairs if w == "torch@0123abcd")
    assert len(pairs) == 4


@pytest.mark.parametrize("value", ["-1", "0"])
def test_zoo_threads_must_be_positive(tmp_path, value):
    artifacts = tmp_path / "artifacts"
    proc = xfbench(
        "zoo", "-f", "torch", "-m", "mlp", "--threads", value, "--artifacts", str(artifacts)
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"xfbench: error: --threads must be a positive number of threads, got {value}; use "
        "e.g. `--threads 2`, or leave it out for the frameworks' default (all cores)\n"
    )
    assert not artifacts.exists()  # refused before anything was created


# --- against the real framework: a damaged build is rebuilt, never reused or a crash


@pytest.fixture
def damaged_copy(adapter, test_artifacts, tmp_path):
    """A copy of a real, current ``mlp`` build of ``adapter`` (built once per session)
    in a fresh artifact folder, for a test to damage."""
    spec = get_spec("mlp")
    if spec.name not in adapter.models:
        pytest.skip(f"{adapter.name} declares no mlp")
    build_model(adapter, spec, test_artifacts, progress=False)
    artifacts = tmp_path / "artifacts"
    shutil.copytree(
        model_dir(test_artifacts, adapter.name, "mlp"), model_dir(artifacts, adapter.name, "mlp")
    )
    return artifacts, model_dir(artifacts, adapter.name, "mlp")


def zoo_rebuilds(adapter, artifacts: Path, damaged: Path, reason: str) -> None:
    """Run the zoo on a damaged build: it must rebuild it, say why, and keep the old."""
    proc = xfbench(
        "zoo", "-f", adapter.name, "-m", "mlp", "--no-progress", "--artifacts", str(artifacts)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert re.search(rf"^{adapter.name} +mlp .* rebuilt$", proc.stdout, re.M), proc.stdout
    note = f"{adapter.name}/mlp rebuilt: {damaged}: {reason}"
    assert note in proc.stdout, proc.stdout
    # The worker said so as it began (in its log: the console stays quiet by default).
    log = (artifacts / "logs" / f"zoo-{adapter.name}.log").read_text()
    assert f"xfbench: rebuilding {adapter.name}/mlp: {damaged}: {reason}" in log
    assert "rebuilding" not in proc.stderr
    folder = model_dir(artifacts, adapter.name, "mlp")
    manifest = read_manifest(folder)
    assert manifest["rebuild_reason"].startswith(f"{damaged}: {reason}")
    load_weights(folder / "weights.npz", get_spec("mlp"))
    check_onnx(folder / "model.onnx")
    # The damaged build is kept aside, and no temporary file is left anywhere.
    assert (folder.parent / "mlp.previous" / damaged.name).read_bytes() != b""
    assert not temp_leftovers(artifacts)


def test_garbled_onnx_is_rebuilt_not_reused(adapter, damaged_copy):
    artifacts, folder = damaged_copy
    onnx_path = folder / "model.onnx"
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(b"\xff" * 64 + data[64:])  # garbled, same size
    zoo_rebuilds(adapter, artifacts, onnx_path, "damaged, fails the ONNX check")


def test_weight_header_not_utf8_is_rebuilt(adapter, damaged_copy):
    artifacts, folder = damaged_copy
    weights = folder / "weights.npz"
    arrays = load_weights(weights, get_spec("mlp"))
    write_npz_with_header(weights, b"\xff\xfe not json", arrays)
    zoo_rebuilds(adapter, artifacts, weights, "damaged header, not UTF-8 JSON")


def test_manifest_not_an_object_is_rebuilt(adapter, damaged_copy):
    artifacts, folder = damaged_copy
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([json.loads(manifest.read_text())]))
    zoo_rebuilds(adapter, artifacts, manifest, "damaged, a JSON list and not an object")


def test_truncated_equivalence_output_does_not_stop_the_run(adapter, damaged_copy):
    artifacts, _ = damaged_copy
    spec = get_spec("mlp")
    written = equivalence_outputs(adapter, spec, artifacts, [adapter.name])
    own = written["init"]
    others = [fw for fw in ("torch", "tensorflow", "mxnet") if fw != adapter.name]
    # Another framework's output, recorded by an earlier run, and a third one truncated.
    shutil.copy(own, own.with_name(f"init.{others[0]}.logits.npy"))
    truncated = own.with_name(f"init.{others[1]}.logits.npy")
    truncated.write_bytes(own.read_bytes()[:40])
    own.write_bytes(own.read_bytes()[:40])  # this run's own output: recorded again

    proc = xfbench(
        "zoo", "-f", adapter.name, "-m", "mlp", "--equivalence", "--no-progress",
        "--artifacts", str(artifacts),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    head = (
        f"xfbench: warning: {truncated}: damaged cross-framework output (not a readable "
        ".npy file: EOF: reading array header"
    )
    tail = (
        f"; `xfbench zoo -f {others[1]} -m mlp --equivalence` records it again, or delete it "
        "(left out of the comparison)"
    )
    warning = re.escape(head) + "[^\n]*" + re.escape(tail)
    assert re.search(warning, proc.stderr), proc.stderr
    assert np.load(own).shape == (359, 10)
    rows = json.loads((artifacts / "equivalence.json").read_text())
    assert {(r["weights"], r["a"], r["b"]) for r in rows if r["weights"] == "init"} == {
        ("init", *sorted([adapter.name, others[0]]))
    }
    assert not temp_leftovers(artifacts)
