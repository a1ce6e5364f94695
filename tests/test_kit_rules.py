"""The conformance kit's process rules catch what they claim to catch.

The kit checks, for every registered adapter, that importing the harness imports no
framework and that building and calling a model makes no network connection
(``bench/conformance.py``). Here each check meets an adapter that breaks its rule, added
through ``XFBENCH_ADAPTERS`` as a new framework would be, and must name it.
"""

from __future__ import annotations

import textwrap

import pytest

from bench import adapters
from bench.conformance import forbidden_modules, harness_imports, network_attempts

EAGER = textwrap.dedent(
    """
    import sklearn.neural_network  # at module level: what the import rule forbids

    from bench.adapters.clock_adapter import ClockAdapter


    class EagerAdapter(ClockAdapter):
        name = "eager"
        package = "sklearn"
    """
)
DOWNLOADING = textwrap.dedent(
    """
    import urllib.request

    from bench.adapters.clock_adapter import ClockAdapter


    class DownloadingAdapter(ClockAdapter):
        name = "downloading"

        def build(self, spec, device="cpu"):
            try:  # a framework fetching weights or data, its failure swallowed
                urllib.request.urlopen("http://xfbench-no-such-host.invalid/weights", timeout=5)
            except OSError:
                pass
            return super().build(spec, device)
    """
)


@pytest.fixture
def rule_breakers(monkeypatch, tmp_path):
    (tmp_path / "eager_adapter.py").write_text(EAGER)
    (tmp_path / "downloading_adapter.py").write_text(DOWNLOADING)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the kit's subprocesses
    monkeypatch.syspath_prepend(str(tmp_path))  # this process (the registry reads classes)
    monkeypatch.setenv(
        "XFBENCH_ADAPTERS",
        "eager=eager_adapter:EagerAdapter,downloading=downloading_adapter:DownloadingAdapter,"
        "clock=bench.adapters.clock_adapter:ClockAdapter",
    )
    adapters._entry_points.cache_clear()
    yield
    adapters._entry_points.cache_clear()


def test_forbidden_modules_come_from_the_registry(rule_breakers):
    forbidden = forbidden_modules()
    assert "sklearn" in forbidden  # the eager adapter's package
    assert {"torch", "tensorflow", "mxnet", "jax", "flax", "onnxruntime"} <= set(forbidden)
    assert "numpy" not in forbidden  # the clock adapter's package is the harness's own


def test_the_import_rule_names_an_adapter_that_imports_its_framework(rule_breakers):
    found = harness_imports()
    assert found == {"loading adapter 'eager' (eager_adapter:EagerAdapter)": ["sklearn"]}


def test_the_network_rule_sees_a_swallowed_download(rule_breakers):
    assert network_attempts("clock") == []
    attempts = network_attempts("downloading")
    assert attempts and "xfbench-no-such-host.invalid" in attempts[0], attempts
