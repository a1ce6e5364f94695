"""Shared fixtures and the skip logic of the whole suite.

Framework tests are marked ``framework`` and parametrized over the adapters chosen with
``--framework`` (default: every registered adapter whose framework is importable in
this interpreter), using the conformance kit's own selection and fixtures
(``bench/conformance.py``). Each tox environment passes its own name, so a framework
missing from an environment is a skip that names the environment to use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import conformance
from bench.conformance import adapter, spec  # noqa: F401 - fixtures for every test module


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--framework",
        action="append",
        default=[],
        help="run framework tests for these adapters (repeatable or comma-separated)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if hasattr(metafunc.module, "pytest_generate_tests"):
        return  # a module that imported the kit parametrizes itself
    conformance.pytest_generate_tests(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "framework" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.framework)


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
