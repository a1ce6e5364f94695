"""pytest-benchmark plumbing for the suites: options, the cases of this process, the
models and sessions under test, the timing loop, per-case memory, and the crash-proof
results log.

The runner (``bench/runner.py``) starts one pytest process per worker group (a
framework's native modes, or ``onnxruntime`` for every export), thread count and
process number, inside that group's environment. Every case appends a ``start`` and an
``end`` record to ``--xf-results`` (JSON lines, docs/results.md) as it goes, so a process
that dies loses only the case it was running; the runner restarts it without the
finished cases.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import load, testhooks
from bench.fingerprint import PERF_ENV
from bench.matrix import ORT, Case, Framework, Timing, native_cases, onnxruntime_cases, split_list
from bench.memory import peak_rss_bytes, reset_peak_rss
from bench.runner import append_record
from bench.threads import recorded_settings
from models.spec import is_size, parse_model_id

RESULTS_SCHEMA = "xfbench-case/2"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("xfbench")
    g.addoption("--xf-group", required=True, help="a framework, or onnxruntime")
    g.addoption("--xf-frameworks", default="", help="onnxruntime group: whose exports")
    g.addoption("--xf-models", default="cnn,lstm,mlp")
    g.addoption("--xf-devices", default="cpu")
    g.addoption("--xf-batch-sizes", default="1,32,256")
    g.addoption("--xf-threads", type=int, required=True)
    g.addoption("--xf-process", type=int, default=1, help="process number (order seed)")
    g.addoption("--xf-phases", default="compile,inference,train_step,peak")
    g.addoption("--xf-runtimes", default="", help="only these runtimes (default: all)")
    g.addoption("--xf-sweep", action="store_true", help="every mode of the extra sizes")
    g.addoption("--xf-timing", required=True, help="min_rounds,max_time,warmup_s,min_round_s")
    g.addoption("--xf-artifacts", type=Path, required=True)
    g.addoption("--xf-results", type=Path, required=True)
    g.addoption(
        "--xf-exclude",
        type=Path,
        default=None,
        help="file of case ids not to run (finished before a restart)",
    )


def timing_of(config: pytest.Config) -> Timing:
    min_rounds, max_time, warmup_s, min_round_s = config.getoption("--xf-timing").split(",")
    return Timing(int(min_rounds), float(max_time), float(warmup_s), float(min_round_s))


def group_cases(config: pytest.Config) -> list[Case]:
    """This process's cases, generated exactly as the orchestrator generated them."""
    group = config.getoption("--xf-group")
    models = split_list(config.getoption("--xf-models"))
    devices = split_list(config.getoption("--xf-devices"))
    sizes = [int(b) for b in split_list(config.getoption("--xf-batch-sizes"))]
    threads = config.getoption("--xf-threads")
    if group == ORT:
        fws = [Framework.of(f) for f in split_list(config.getoption("--xf-frameworks"))]
        cases = onnxruntime_cases(fws, models, devices, sizes, threads)
    else:
        sweep = config.getoption("--xf-sweep")
        cases = native_cases(Framework.of(group), models, devices, sizes, threads, sweep)
    phases = set(split_list(config.getoption("--xf-phases")))
    runtimes = set(split_list(config.getoption("--xf-runtimes")))
    return [
        c
        for c in cases
        if c.phase in phases and (not runtimes or c.runtime in runtimes or c.phase == "peak")
    ]


class Context:
    """Everything a case needs, built lazily and kept for the whole process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.group: str = config.getoption("--xf-group")
        self.threads: int = config.getoption("--xf-threads")
        self.artifacts: Path = config.getoption("--xf-artifacts")
        self.timing = timing_of(config)
        self.adapter: Any = None
        if self.group != ORT:
            from bench.adapters import get_adapter

            self.adapter = get_adapter(self.group)
        self._models: dict[tuple[str, str, str], Any] = {}
        self._forwards: dict[tuple[str, str, str], Callable[[Any], Any]] = {}
        self._sessions: dict[tuple[str, str, str], Any] = {}
        # The CPU references of cases on other devices, apart from the cases' own models
        # and sessions: a CPU case of the same process still builds, compiles and first
        # calls its own, and none of its numbers includes work done for a check.
        self._reference_models: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
        self._references: dict[tuple[str, str, str, int], np.ndarray] = {}

    def weights_path(self, framework: str, model: str) -> Path:
        return self.artifacts / framework / model / "weights.npz"

    def onnx_path(self, framework: str, model: str) -> Path:
        return self.artifacts / framework / model / "model.onnx"

    def load_native(self, model: str, device: str) -> Any:
        """A fresh model with the zoo's trained weights."""
        from bench.weights import load_weights
        from models.spec import get_spec

        spec = get_spec(model)
        m = self.adapter.build(spec, device)
        self.adapter.set_weights(m, load_weights(self.weights_path(self.group, model), spec))
        return m

    def native(self, model: str, mode: str, device: str) -> Any:
        """The model one mode runs: a model of its own per mode, so that no mode's
        compilation or graph caching can change what another mode runs."""
        key = (model, mode, device)
        if key not in self._models:
            self._models[key] = self.load_native(model, device)
        return self._models[key]

    def forward(self, model: str, mode: str, device: str) -> tuple[Callable[[Any], Any], bool]:
        """The mode's forward function, and whether it was created by this call."""
        key = (model, mode, device)
        created = key not in self._forwards
        if created:
            self._forwards[key] = self.adapter.forward(self.native(model, mode, device), mode)
        return self._forwards[key], created

    def onnx_session(self, framework: str, model: str, device: str) -> Any:
        from bench.ort import make_session

        key = (framework, model, device)
        if key not in self._sessions:
            path = self.onnx_path(framework, model)
            self._sessions[key] = make_session(path, device, self.threads)
        return self._sessions[key]

    def native_cpu_reference(self, model: str, batch_size: int) -> np.ndarray:
        """What a native case on another device must reproduce: the same model (the
        zoo's weights) on the CPU, in the adapter's first mode, on the same batch
        (``sample_batch``). A model of its own, kept for the other batch sizes."""
        from models.spec import get_spec

        key = (self.group, model, "native", batch_size)
        if key not in self._references:
            a = self.adapter
            if model not in self._reference_models:
                cpu_model = self.load_native(model, "cpu")
                self._reference_models[model] = (cpu_model, a.forward(cpu_model, a.modes[0]))
            cpu_model, fwd = self._reference_models[model]
            x, _ = sample_batch(get_spec(model), batch_size)
            y = fwd(a.to_device(cpu_model, x))
            a.wait(y)
            self._references[key] = np.asarray(a.to_numpy(y), dtype=np.float32)
        return self._references[key]

    def onnx_cpu_reference(self, framework: str, model: str, batch_size: int) -> np.ndarray:
        """What an ONNX Runtime case on another device must reproduce: a CPU session of
        the same export on the same batch. The session is dropped once it has answered,
        so that no idle thread pool of it sits beside the timed GPU session."""
        from bench.ort import OrtRunner, make_session
        from models.spec import get_spec

        key = (framework, model, ORT, batch_size)
        if key not in self._references:
            session = make_session(self.onnx_path(framework, model), "cpu", self.threads)
            x, _ = sample_batch(get_spec(model), batch_size)
            runner = OrtRunner(session, x, "cpu")
            self._references[key] = np.asarray(runner.to_numpy(runner()), dtype=np.float32)
        return self._references[key]


def pytest_configure(config: pytest.Config) -> None:
    # Thread pools are sized before the framework first runs: the runner also exports
    # OMP_NUM_THREADS & co. into this process's environment before Python starts.
    from bench.lifeline import watch_parent

    watch_parent()  # a killed orchestrator takes this worker with it
    group = config.getoption("--xf-group")
    threads = config.getoption("--xf-threads")
    if group == ORT:
        from bench.ort import ort_info

        versions, exporter, settings = ort_info()
        modes: dict[str, Any] = {}
    else:
        from bench.adapters import get_adapter

        adapter = get_adapter(group)
        adapter.set_threads(threads)
        # The builds really installed (torch 2.13.0+cpu, mxnet-cu112 1.9.1), not the
        # build key's canonical versions.
        versions, exporter, settings = adapter.builds(), adapter.exporter, {}
        modes = {
            "modes": list(adapter.modes),
            "train_modes": list(adapter.train_modes),
            "mode_notes": dict(adapter.mode_notes),
        }
    append_record(
        config.getoption("--xf-results"),
        {
            "schema": RESULTS_SCHEMA,
            "event": "worker",
            "group": group,
            "framework": group,
            "process": config.getoption("--xf-process"),
            "pid": os.getpid(),
            "t": time.time(),
            "threads": threads,
            "versions": versions,
            "exporter": exporter,
            "python": platform.python_version(),
            "executable": sys.executable,
            "env": {
                **{k: os.environ[k] for k in PERF_ENV if k in os.environ},
                **recorded_settings(),
            },
            "settings": settings,
            **modes,
        },
    )


@pytest.fixture(scope="session")
def ctx(pytestconfig: pytest.Config) -> Context:
    return Context(pytestconfig)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        phase = metafunc.definition.get_closest_marker("phase").args[0]
        cases = [c for c in group_cases(metafunc.config) if c.phase == phase]
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


#: The order of the phases in a process: a mode's first call (``compile``) comes right
#: before its timed calls at the same batch size.
_PHASE_RANK = {"compile": (0, 0), "inference": (0, 1), "train_step": (1, 0), "peak": (2, 0)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out finished cases, then order the rest: inference (each batch size's
    first calls, then its timed calls) from the smallest batch size to the largest,
    then the training steps likewise, then the GEMM. Within each of those groups the
    order is shuffled, seeded by the process number, so that no case always runs first
    or after the same neighbour.

    Why smallest first: a large batch leaves some frameworks in a state that slows
    every later small call in the process (measured: MXNet's batch-1 CNN took 0.13 ms
    in a process that had run only batch 1 and 32, and 0.7 to 0.95 ms after one batch
    of 256, in both of its modes). Running small batches first gives every framework
    the same, clean order; the large batch pays nothing for the small ones before it.
    The model sizes follow the same rule by their work: the sizes smaller than the
    reference (``cnn@x0.25``) right after the reference batch-1 cases, before any large
    call; the larger ones (``cnn@x16``) last of all. Shuffled among the batch-1 cases,
    the large sizes made MXNet's reference CNN at batch 1 read 0.905 ms where it reads
    0.127 ms without them (hybrid mode, one process each); placed after the batch-256
    cases, the small sizes read 0.6 to 0.8 ms in MXNet.
    """
    exclude_file = config.getoption("--xf-exclude")
    done = (
        set(exclude_file.read_text().split()) if exclude_file and exclude_file.exists() else set()
    )
    # A phase with no cases in this process has pytest's empty-parameter-set item: dropped.
    items[:] = [i for i in items if _case_of(i) is not None]
    if done:
        config.hook.pytest_deselected(items=[i for i in items if i.callspec.id in done])
    keep = [i for i in items if i.callspec.id not in done]
    rng = random.Random(config.getoption("--xf-process"))
    groups: dict[tuple[int, int, int], list[pytest.Item]] = {}
    for item in keep:
        case = _case_of(item)
        stage, within = _PHASE_RANK[case.phase]
        after = 0
        if is_size(case.model):  # by their work: see the docstring
            if parse_model_id(case.model)[1] < 1:
                after = 1  # after the reference cases of the same batch size
            else:
                stage = max(r[0] for r in _PHASE_RANK.values()) + 1
        groups.setdefault((stage, case.batch_size, after, within), []).append(item)
    items[:] = []
    for key in sorted(groups):
        rng.shuffle(groups[key])
        items += groups[key]


# -- timing ------------------------------------------------------------------------------
def _slowdown(case: Case, call: Callable[[], Any]) -> Callable[[], Any]:
    """Test hook (:mod:`bench.testhooks`): ``XFBENCH_SLOWDOWN=1.2:<case id>`` makes
    every timed call of that case take 1.2 times as long (busy waiting after the real
    call), so the regression tests compare real runs with a known, real slowdown."""
    factor, _, target = testhooks.hook("XFBENCH_SLOWDOWN").partition(":")
    if target != case.id:
        return call
    k = float(factor)

    def slowed() -> Any:
        t0 = time.perf_counter()
        y = call()
        end = t0 + (time.perf_counter() - t0) * k
        while time.perf_counter() < end:
            pass
        return y

    return slowed


def time_calls(benchmark: Any, case: Case, timing: Timing, call: Callable[[], Any]) -> Any:
    """Warm ``call`` up for about ``timing.warmup_s`` (a first call and then twice at
    least), size the rounds
    from the warm calls' median, then time it with pytest-benchmark; returns the last
    result. ``calls_per_round`` goes to the results record, and so does the CPU other
    processes used meanwhile (:mod:`bench.load`)."""
    call = _slowdown(case, call)
    call()  # a first call (compilation, lazy set-up) is no measure of the steady state
    times, spent = [], 0.0
    while len(times) < 2 or spent < timing.warmup_s:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
        if len(times) >= 1000:
            break
    rounds, calls = timing.plan(float(np.median(times)))
    benchmark.extra_info["calls_per_round"] = calls
    benchmark.extra_info["warmup_calls"] = len(times)
    before = load.snapshot()
    y = benchmark.pedantic(call, rounds=rounds, iterations=calls, warmup_rounds=0)
    benchmark.extra_info.update(load.other_load(before, load.snapshot()))
    return y


# -- the results log ---------------------------------------------------------------------


def _case_of(item: pytest.Item) -> Case | None:
    """The item's case; ``None`` for a phase with no cases here (pytest's empty set)."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("case") if callspec else None
    return case if isinstance(case, Case) else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    case = _case_of(item)
    if case is None:
        return
    item.config._xf_rss_scope = "case" if reset_peak_rss() else "process"
    append_record(
        item.config.getoption("--xf-results"),
        {
            "event": "start",
            "case_id": case.id,
            "process": item.config.getoption("--xf-process"),
            "t": time.time(),
            "pid": os.getpid(),
        },
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    case = _case_of(item)
    if case is None:
        return report
    finished = call.when == "call" or (call.when == "setup" and not report.passed)
    if not finished:
        return report
    bench = item.funcargs.get("benchmark")
    stats = getattr(bench, "stats", None)
    stats = stats if hasattr(stats, "as_dict") else None  # not timed: pytest-benchmark's NOT_SET
    extra = dict(bench.extra_info) if bench is not None else {}
    if report.passed:
        status, reason = "ok", ""
    elif report.skipped:
        reason = str(call.excinfo.value.msg) if call.excinfo else "skipped"
        status = "unsupported" if reason.startswith("unsupported") else "skipped"
    else:
        status = "error"
        reason = call.excinfo.exconly().strip().splitlines()[-1][:500] if call.excinfo else ""
    extra.update(
        {
            "peak_rss_bytes": peak_rss_bytes(),
            "peak_rss_scope": getattr(item.config, "_xf_rss_scope", "process"),
        }
    )
    record = {
        "schema": RESULTS_SCHEMA,
        "event": "end",
        **case.as_dict(),
        "process": item.config.getoption("--xf-process"),
        "status": status,
        "reason": reason,
        "t": time.time(),
        "pid": os.getpid(),
        "calls_per_round": extra.pop("calls_per_round", 1),
        "extra_info": extra,
        "stats": stats.as_dict(include_data=True)["stats"] if stats else None,
    }
    append_record(item.config.getoption("--xf-results"), record)
    return report


def sample_batch(spec: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch_size`` training images (the same in every framework), as the
    model reads them (a generator: as many latent vectors), and their labels."""
    from bench.data import as_model_input, load_digits

    d = load_digits()
    idx = np.arange(batch_size) % len(d.x_train)
    return as_model_input(spec, d.x_train[idx]), d.y_train[idx]


#: The training-step cases cycle through the training split in this seeded order.
TRAIN_ORDER_SEED = 1234


def train_batches(spec: Any, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training split, shuffled once with a fixed seed and cut into full batches:
    the same sequence of batches in every framework."""
    from bench.data import load_digits, train_batch

    d = load_digits()
    order = np.random.RandomState(TRAIN_ORDER_SEED).permutation(len(d.x_train))
    n = max(1, len(order) // batch_size)
    return [  # the GAN's: real images and noise, new noise for every batch
        tuple(
            np.ascontiguousarray(a)
            for a in train_batch(spec, d.x_train[idx], d.y_train[idx], TRAIN_ORDER_SEED + i)
        )
        for i, idx in enumerate(order[i * batch_size : (i + 1) * batch_size] for i in range(n))
    ]
