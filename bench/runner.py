"""The benchmark orchestrator: one pytest-benchmark worker per framework and thread
count, each in its framework's own environment, with crash and hang isolation.

The worker appends a ``start`` and an ``end`` record per case to a JSON-lines log as it
goes (``bench/suites/conftest.py``). This process watches that log: a case running past
its time limit gets its worker killed and becomes a ``timeout`` row; a worker that dies
turns its in-flight case into an ``error`` row. Either way the worker is started again
without the cases already finished, so a crash loses at most the case that crashed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.envs import REPO_ROOT, interpreter_for
from bench.lifeline import child_env
from bench.matrix import Case, Timing
from bench.threads import thread_env

SUITES = REPO_ROOT / "bench" / "suites"


@dataclass
class WorkerPlan:
    """One timing process: a group (a framework's native modes, or ``onnxruntime`` for
    the exports of ``frameworks``) at one thread count, process number ``process``."""

    group: str
    threads: int
    models: list[str]
    devices: list[str]
    batch_sizes: list[int]
    timing: Timing
    artifacts: Path
    raw_dir: Path
    case_timeout: float
    expected: list[Case] = field(default_factory=list)
    python: Path | None = None  # default: found by bench.envs
    process: int = 1
    frameworks: list[str] = field(default_factory=list)  # the onnxruntime group's exporters
    phases: tuple[str, ...] = ("compile", "inference", "train_step", "peak")
    runtimes: tuple[str, ...] = ()  # only these modes (or onnxruntime); empty: all
    sweep: bool = False  # every mode of the non-reference model sizes (bench/matrix.py)

    @property
    def stem(self) -> str:
        return f"{self.group}-t{self.threads}-p{self.process}"

    @property
    def results(self) -> Path:
        return self.raw_dir / f"{self.stem}.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a results log (a torn last line is skipped)."""
    return LogTail(path).read_new()


class LogTail:
    """Reads a growing JSON-lines log incrementally: each call parses only the complete
    lines appended since the last one, so watching a worker costs nothing per poll
    however long its log grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # a torn last line waits for its newline
        self.offset += end
        records = []
        for line in chunk[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
        return records


class CaseTracker:
    """Which cases of a log have started and ended, updated from a :class:`LogTail`."""

    def __init__(self, path: Path) -> None:
        self.tail = LogTail(path)
        self.started: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, dict[str, Any]] = {}

    def update(self) -> None:
        for rec in self.tail.read_new():
            cid = rec.get("case_id")
            if rec.get("event") == "start" and cid:
                self.started[cid] = rec
                self.ended.pop(cid, None)  # restarted: its earlier end no longer counts
            elif rec.get("event") == "end" and cid:
                self.ended[cid] = rec

    def in_flight(self) -> dict[str, Any] | None:
        """The case that started and has not ended, if any."""
        open_ = [r for cid, r in self.started.items() if cid not in self.ended]
        return max(open_, key=lambda r: r.get("t", 0)) if open_ else None


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk: the line must survive the worker."""
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _worker_env(plan: WorkerPlan) -> dict[str, str]:
    return worker_env(plan.threads, plan.devices)


def worker_env(threads: int, devices: list[str]) -> dict[str, str]:
    """The environment of a timing or cold-start process: thread counts before any
    framework loads, quiet TensorFlow logs, and on GPUs strict float32 and TensorFlow
    taking GPU memory as it needs it."""
    env = dict(os.environ)
    env.update(
        {
            **thread_env(threads),
            **child_env(),  # the worker dies with this process (bench/lifeline.py)
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONHASHSEED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "cuda" in devices:
        # Strict float32 on the GPU for every framework (TF32 off), like onnxruntime's
        # use_tf32=0: otherwise frameworks that default to TF32 would win by rounding.
        env.update({"MXNET_CUDA_ALLOW_TENSOR_CORE": "0", "NVIDIA_TF32_OVERRIDE": "0"})
        # TensorFlow otherwise reserves almost all of every GPU's memory when its runtime
        # starts, starving any other GPU user in its process; with growth on it takes
        # what it uses. Its adapter asks for the same before the runtime starts
        # (set_memory_growth); this documented override holds even where other code
        # started TensorFlow first, and is recorded with each worker (PERF_ENV).
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        # CUDA numbers GPUs fastest first by default, nvidia-smi in PCI bus order: with
        # this, CUDA_VISIBLE_DEVICES=1 is the GPU the fingerprint records
        # (bench/fingerprint.py: visible_gpus).
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def _command(plan: WorkerPlan, python: Path, part: int, exclude: Path) -> list[str]:
    t = plan.timing
    return [
        str(python),
        "-m",
        "pytest",
        "-c",
        str(SUITES / "pytest.ini"),
        "--rootdir",
        str(REPO_ROOT),
        str(SUITES),
        "-q",
        f"--xf-group={plan.group}",
        f"--xf-frameworks={','.join(plan.frameworks)}",
        f"--xf-threads={plan.threads}",
        f"--xf-process={plan.process}",
        f"--xf-models={','.join(plan.models)}",
        f"--xf-devices={','.join(plan.devices)}",
        f"--xf-batch-sizes={','.join(map(str, plan.batch_sizes))}",
        f"--xf-phases={','.join(plan.phases)}",
        f"--xf-runtimes={','.join(plan.runtimes)}",
        *(["--xf-sweep"] if plan.sweep else []),
        f"--xf-timing={t.min_rounds},{t.max_time},{t.warmup_s},{t.min_round_s}",
        f"--xf-artifacts={plan.artifacts}",
        f"--xf-results={plan.results}",
        f"--xf-exclude={exclude}",
        f"--benchmark-json={plan.raw_dir / f'{plan.stem}.part{part}.json'}",
        "--benchmark-save-data",
        "--benchmark-sort=name",
        "--benchmark-columns=median,iqr,min,max,rounds",
    ]


def _tee(stream: IO[str], log: IO[str], echo: bool) -> None:
    for line in stream:
        log.write(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def _failure_record(case_id: str, plan: WorkerPlan, status: str, reason: str) -> dict:
    case = next((c for c in plan.expected if c.id == case_id), None)
    fields = (
        case.as_dict()
        if case
        else {"case_id": case_id, "framework": plan.group, "threads": plan.threads}
    )
    return {
        "schema": "xfbench-case/2",
        "event": "end",
        **fields,
        "process": plan.process,
        "calls_per_round": 1,
        "status": status,
        "reason": reason,
        "t": time.time(),
        "stats": None,
        "extra_info": {},
    }


def failure_records(plan: WorkerPlan, status: str, reason: str) -> list[dict]:
    """Rows for every case of a worker that could not start at all (also logged)."""
    plan.raw_dir.mkdir(parents=True, exist_ok=True)
    records = [_failure_record(c.id, plan, status, reason) for c in plan.expected]
    for r in records:
        append_record(plan.results, r)
    return records


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_worker(
    plan: WorkerPlan,
    echo: bool = True,
    poll_s: float = 0.2,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Run every case of ``plan``; return the ``end`` records (one per case).
    ``on_progress`` is called with the number of cases ended so far whenever it grows
    (a progress bar follows the worker's log)."""
    plan.raw_dir.mkdir(parents=True, exist_ok=True)
    python = plan.python or interpreter_for(plan.group, plan.devices)
    exclude = plan.raw_dir / f"{plan.stem}.exclude"
    log_path = plan.raw_dir / f"{plan.stem}.log"
    tracker = CaseTracker(plan.results)
    max_parts = max(1, len(plan.expected)) + 1
    for part in range(1, max_parts + 1):
        tracker.update()
        done = set(tracker.ended)
        exclude.write_text("\n".join(sorted(done)) + "\n")
        if plan.expected and all(c.id in done for c in plan.expected):
            break
        with open(log_path, "a") as log:
            proc = subprocess.Popen(
                _command(plan, python, part, exclude),
                cwd=REPO_ROOT,
                env=_worker_env(plan),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: a kill takes its children
            )
            tee = threading.Thread(target=_tee, args=(proc.stdout, log, echo), daemon=True)
            tee.start()
            timed_out = None
            try:
                while proc.poll() is None:
                    time.sleep(poll_s)
                    tracker.update()
                    if on_progress is not None:
                        on_progress(len(tracker.ended))
                    current = tracker.in_flight()
                    if current and time.time() - current["t"] > plan.case_timeout:
                        timed_out = current["case_id"]
                        _stop(proc)
            except BaseException:  # Ctrl-C, SIGTERM: the worker's whole group goes too
                _stop(proc)
                raise
            tee.join(timeout=5)
            proc.stdout.close()
        tracker.update()
        current = tracker.in_flight()
        if timed_out:
            _end(
                plan,
                tracker,
                timed_out,
                "timeout",
                f"exceeded the case time limit of {plan.case_timeout:g} s; worker killed",
            )
            continue
        if current is not None:
            code = proc.returncode
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            _end(
                plan, tracker, current["case_id"], "error", f"worker died during this case ({how})"
            )
            continue
        if proc.returncode not in (0, 1, 5):  # 1: some cases failed (recorded); 5: none left
            tail = log_path.read_text().strip().splitlines()[-5:]
            for case in plan.expected:
                if case.id not in tracker.ended:
                    _end(
                        plan,
                        tracker,
                        case.id,
                        "error",
                        f"worker could not run (exit status {proc.returncode}): "
                        + " | ".join(tail),
                    )
        break
    exclude.unlink(missing_ok=True)
    tracker.update()
    return list(tracker.ended.values())


def _end(plan: WorkerPlan, tracker: CaseTracker, case_id: str, status: str, reason: str) -> None:
    append_record(plan.results, _failure_record(case_id, plan, status, reason))
    tracker.update()
