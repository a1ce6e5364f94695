"""pytest-benchmark plumbing for the suites: options, the case matrix, the models and
sessions under test, per-case memory, and the crash-proof results log.

The runner (``bench/runner.py``) starts one pytest process per framework and thread
count, inside that framework's environment. Every case appends a ``start`` and an
``end`` record to ``--xf-results`` (JSON lines) as it goes, so a process that dies
loses only the case it was running; the runner restarts it without the finished cases.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.fingerprint import PERF_ENV
from bench.matrix import Case, generate_cases, split_list
from bench.runner import append_record

RESULTS_SCHEMA = "xfbench-case/1"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("xfbench")
    g.addoption("--xf-framework", required=True)
    g.addoption("--xf-models", default="cnn,lstm,mlp")
    g.addoption("--xf-devices", default="cpu")
    g.addoption("--xf-batch-sizes", default="1,32,256")
    g.addoption("--xf-threads", type=int, required=True)
    g.addoption("--xf-phases", default="cold_start,inference,train_step")
    g.addoption("--xf-artifacts", type=Path, required=True)
    g.addoption("--xf-results", type=Path, required=True)
    g.addoption(
        "--xf-exclude",
        type=Path,
        default=None,
        help="file of case ids not to run (finished before a restart)",
    )


class Context:
    """Everything a case needs, built lazily and kept for the whole process."""

    def __init__(self, config: pytest.Config) -> None:
        from bench.adapters import get_adapter

        self.config = config
        self.framework: str = config.getoption("--xf-framework")
        self.threads: int = config.getoption("--xf-threads")
        self.artifacts: Path = config.getoption("--xf-artifacts")
        self.results: Path = config.getoption("--xf-results")
        self.adapter = get_adapter(self.framework)
        self._eager = self.adapter.eager_variant()
        self._models: dict[tuple[str, str, str], Any] = {}
        self._sessions: dict[tuple[str, str], Any] = {}

    def adapter_for(self, runtime: str):
        return self._eager if runtime == "native-eager" else self.adapter

    def weights_path(self, model: str) -> Path:
        return self.artifacts / self.framework / model / "weights.npz"

    def onnx_path(self, model: str) -> Path:
        return self.artifacts / self.framework / model / "model.onnx"

    def load_native(self, model: str, runtime: str, device: str) -> Any:
        from bench.weights import load_weights
        from models.spec import get_spec

        spec = get_spec(model)
        adapter = self.adapter_for(runtime)
        m = adapter.build(spec, device)
        adapter.set_weights(m, load_weights(self.weights_path(model), spec))
        return m

    def native(self, model: str, runtime: str, device: str) -> Any:
        key = (model, runtime, device)
        if key not in self._models:
            self._models[key] = self.load_native(model, runtime, device)
        return self._models[key]

    def onnx_session(self, model: str, device: str) -> Any:
        from bench.ort import make_session

        key = (model, device)
        if key not in self._sessions:
            self._sessions[key] = make_session(self.onnx_path(model), device, self.threads)
        return self._sessions[key]


def pytest_configure(config: pytest.Config) -> None:
    # Thread pools are sized before the framework first runs: the runner also exports
    # OMP_NUM_THREADS & co. into this process's environment before Python starts.
    from bench.adapters import get_adapter

    adapter = get_adapter(config.getoption("--xf-framework"))
    adapter.set_threads(config.getoption("--xf-threads"))
    append_record(
        config.getoption("--xf-results"),
        {
            "event": "worker",
            "framework": adapter.name,
            "pid": os.getpid(),
            "t": time.time(),
            "threads": config.getoption("--xf-threads"),
            "versions": adapter.versions(),
            "exporter": adapter.exporter,
            "python": platform.python_version(),
            "executable": sys.executable,
            "env": {k: os.environ[k] for k in PERF_ENV if k in os.environ},
        },
    )


@pytest.fixture(scope="session")
def ctx(pytestconfig: pytest.Config) -> Context:
    return Context(pytestconfig)


def _selected_cases(config: pytest.Config, phase: str) -> list[Case]:
    from bench.adapters import get_adapter

    fw = config.getoption("--xf-framework")
    adapter = get_adapter(fw)
    return generate_cases(
        frameworks=[fw],
        models=[m for m in split_list(config.getoption("--xf-models")) if m in adapter.models],
        devices=split_list(config.getoption("--xf-devices")),
        batch_sizes=[int(b) for b in split_list(config.getoption("--xf-batch-sizes"))],
        threads=[config.getoption("--xf-threads")],
        eager={fw: adapter.eager_variant() is not None},
        phases=(phase,),
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        phase = metafunc.definition.get_closest_marker("phase").args[0]
        cases = _selected_cases(metafunc.config, phase)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    exclude_file = config.getoption("--xf-exclude")
    if exclude_file is None or not exclude_file.exists():
        return
    done = set(exclude_file.read_text().split())
    keep = [i for i in items if i.callspec.id not in done]
    config.hook.pytest_deselected(items=[i for i in items if i.callspec.id in done])
    items[:] = keep


# -- memory ------------------------------------------------------------------------------
def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- the results log ---------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    case: Case | None = getattr(item, "callspec", None) and item.callspec.params.get("case")
    if case is None:
        return
    item.config._xf_rss_scope = "case" if reset_peak_rss() else "process"
    append_record(
        item.config.getoption("--xf-results"),
        {"event": "start", "case_id": case.id, "t": time.time(), "pid": os.getpid()},
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    case: Case | None = getattr(item, "callspec", None) and item.callspec.params.get("case")
    if case is None:
        return report
    finished = call.when == "call" or (call.when == "setup" and not report.passed)
    if not finished:
        return report
    bench = item.funcargs.get("benchmark")
    stats = bench.stats if bench is not None else None
    extra = dict(bench.extra_info) if bench is not None else {}
    if report.passed:
        status, reason = "ok", ""
    elif report.skipped:
        reason = str(call.excinfo.value.msg) if call.excinfo else "skipped"
        status = "unsupported" if reason.startswith("unsupported") else "skipped"
    else:
        status = "error"
        reason = call.excinfo.exconly().strip().splitlines()[-1][:500] if call.excinfo else ""
    peak = peak_rss_bytes()
    extra.update(
        {"peak_rss_bytes": peak, "peak_rss_scope": getattr(item.config, "_xf_rss_scope", "process")}
    )
    if bench is not None:
        bench.extra_info.update(extra)
    record = {
        "schema": RESULTS_SCHEMA,
        "event": "end",
        **case.as_dict(),
        "status": status,
        "reason": reason,
        "t": time.time(),
        "pid": os.getpid(),
        "extra_info": extra,
        "stats": stats.as_dict(include_data=True)["stats"] if stats else None,
    }
    append_record(item.config.getoption("--xf-results"), record)
    return report


def sample_batch(spec, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch_size`` training images (the same in every framework)."""
    from bench.data import as_model_input, load_digits

    d = load_digits()
    n = len(d.x_train)
    idx = np.arange(batch_size) % n
    return as_model_input(spec, d.x_train[idx]), d.y_train[idx]
