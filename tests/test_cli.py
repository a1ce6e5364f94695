"""The command line's validation and the promise that the harness imports no framework."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import bench.envs
from bench.adapters import FrameworkNotInstalledError, framework_names, is_installed
from bench.cli import main

FRAMEWORKS = framework_names()


def test_unknown_framework_lists_valid_ones(capsys):
    assert main(["zoo", "-f", "caffe"]) == 2
    err = capsys.readouterr().err
    assert "unknown framework 'caffe'" in err
    assert f"valid frameworks: {', '.join(FRAMEWORKS)}" in err


def test_unknown_model_lists_valid_ones(capsys):
    assert main(["zoo", "-f", "torch", "-m", "cnn,resnet"]) == 2
    assert "unknown model 'resnet'; valid models: cnn, lstm, mlp" in capsys.readouterr().err


def test_missing_framework_environment_says_how_to_install(monkeypatch, tmp_path):
    missing = [fw for fw in FRAMEWORKS if not is_installed(fw)]
    if not missing:
        pytest.skip("every framework is installed in this interpreter")
    monkeypatch.delenv("XFBENCH_TOX_WORKDIR", raising=False)
    monkeypatch.setattr(bench.envs, "REPO_ROOT", tmp_path)  # no .tox/ beside it
    with pytest.raises(FrameworkNotInstalledError, match=rf"tox -e {missing[0]} --notest"):
        bench.envs.interpreter_for(missing[0])


def test_missing_environment_becomes_error_rows_not_a_crash(monkeypatch, tmp_path, capsys):
    missing = [fw for fw in FRAMEWORKS if not is_installed(fw)]
    if not missing:
        pytest.skip("every framework is installed in this interpreter")
    monkeypatch.delenv("XFBENCH_TOX_WORKDIR", raising=False)
    monkeypatch.setattr(bench.envs, "REPO_ROOT", tmp_path)
    code = main(["zoo", "-f", missing[0], "-m", "mlp", "--artifacts", str(tmp_path / "a")])
    assert code == 1
    assert re.search(rf"^{missing[0]} +mlp +ERROR: no environment", capsys.readouterr().out, re.M)


def test_importing_the_harness_imports_no_framework():
    code = (
        "import sys, bench, bench.cli, bench.zoo, bench.worker, bench.envs, bench.data, "
        "bench.weights, models.spec, models.reference\n"
        "from bench.adapters import framework_names, _entry_points\n"
        "[_entry_points()[f].load() for f in framework_names()]\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'mxnet', 'keras', 'onnxruntime', "
        "'jax', 'flax', 'sklearn', 'skl2onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for fw in FRAMEWORKS:
        assert fw in out
