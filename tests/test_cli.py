"""The command line's validation and the promise that the harness imports no framework."""

from __future__ import annotations

import re

import pytest

import bench.envs
from bench.adapters import FrameworkNotInstalledError, framework_names, is_installed
from bench.cli import main
from bench.conformance import harness_imports

FRAMEWORKS = framework_names()


def test_unknown_framework_lists_valid_ones(capsys):
    assert main(["zoo", "-f", "caffe"]) == 2
    err = capsys.readouterr().err
    assert "unknown framework 'caffe'" in err
    assert f"valid frameworks: {', '.join(FRAMEWORKS)}" in err


def test_unknown_model_lists_valid_ones(capsys):
    assert main(["zoo", "-f", "torch", "-m", "cnn,vgg"]) == 2
    assert "unknown model 'vgg'; valid models: cnn, lstm, mlp, resnet" in capsys.readouterr().err


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
    # The conformance kit's check (each framework's env runs it too), here in the core
    # env, which has scikit-learn and no other framework.
    found = harness_imports()
    assert not found, f"importing the harness imported a framework: {found}"


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for fw in FRAMEWORKS:
        assert fw in out
