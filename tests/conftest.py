"""Shared fixtures and the skip logic of the whole suite.

Framework tests are marked ``framework`` and parametrized over the adapters chosen with
``--framework`` (default: every registered adapter whose framework is importable in
this interpreter). Each tox environment passes its own name, so a framework missing
from an environment is a skip that names the environment to use, never a silent pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.adapters import framework_names, get_adapter, install_hint, is_installed
from models.spec import MODEL_NAMES, get_spec


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--framework",
        action="append",
        default=[],
        help="run framework tests for these adapters (repeatable or comma-separated)",
    )


def selected_frameworks(config: pytest.Config) -> list[str]:
    chosen = [f for v in config.getoption("--framework") for f in v.split(",") if f]
    return chosen or [f for f in framework_names() if is_installed(f)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "framework" in metafunc.fixturenames:
        fws = selected_frameworks(metafunc.config)
        metafunc.parametrize("framework", fws or ["(none installed)"], scope="session")
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", MODEL_NAMES, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "framework" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.framework)


@pytest.fixture(scope="session")
def adapter(framework: str):
    if framework not in framework_names() or not is_installed(framework):
        pytest.skip(f"framework {framework!r} is not installed here; {install_hint(framework)}")
    return get_adapter(framework)


@pytest.fixture(scope="session")
def spec(adapter, model_name: str):
    if model_name not in adapter.models:
        pytest.skip(f"{adapter.name} declares no {model_name!r} model")
    return get_spec(model_name)


@pytest.fixture(scope="session")
def test_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the framework runs leave trained models for the cross-framework check."""
    shared = os.environ.get("XFBENCH_TEST_ARTIFACTS")
    return Path(shared) if shared else tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def built(adapter, spec, test_artifacts):
    """The real build of ``spec`` (reused from an earlier run while it is current)."""
    from bench.zoo import build_model

    return build_model(adapter, spec, test_artifacts, progress=False)
