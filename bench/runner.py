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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.envs import REPO_ROOT, interpreter_for
from bench.matrix import Case, Timing, thread_env

SUITES = REPO_ROOT / "bench" / "suites"


@dataclass
class WorkerPlan:
    framework: str
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

    @property
    def stem(self) -> str:
        return f"{self.framework}-t{self.threads}"

    @property
    def results(self) -> Path:
        return self.raw_dir / f"{self.stem}.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a results log (a torn last line is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk: the line must survive the worker."""
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _worker_env(plan: WorkerPlan) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            **thread_env(plan.threads),
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONHASHSEED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "cuda" in plan.devices:
        # Strict float32 on the GPU for every framework (TF32 off), like onnxruntime's
        # use_tf32=0: otherwise frameworks that default to TF32 would win by rounding.
        env.update({"MXNET_CUDA_ALLOW_TENSOR_CORE": "0", "NVIDIA_TF32_OVERRIDE": "0"})
    return env


def _command(plan: WorkerPlan, python: Path, part: int, exclude: Path) -> list[str]:
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
        f"--xf-framework={plan.framework}",
        f"--xf-threads={plan.threads}",
        f"--xf-models={','.join(plan.models)}",
        f"--xf-devices={','.join(plan.devices)}",
        f"--xf-batch-sizes={','.join(map(str, plan.batch_sizes))}",
        f"--xf-artifacts={plan.artifacts}",
        f"--xf-results={plan.results}",
        f"--xf-exclude={exclude}",
        f"--benchmark-json={plan.raw_dir / f'{plan.stem}.part{part}.json'}",
        "--benchmark-save-data",
        "--benchmark-sort=name",
        "--benchmark-columns=median,iqr,min,max,rounds",
        *plan.timing.pytest_args(),
    ]


def _tee(stream: IO[str], log: IO[str], echo: bool) -> None:
    for line in stream:
        log.write(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def _in_flight(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The case that started and has not ended, if any."""
    ended = {r["case_id"] for r in records if r.get("event") == "end"}
    started = [r for r in records if r.get("event") == "start" and r["case_id"] not in ended]
    return started[-1] if started else None


def _failure_record(case_id: str, plan: WorkerPlan, status: str, reason: str) -> dict:
    case = next((c for c in plan.expected if c.id == case_id), None)
    fields = (
        case.as_dict()
        if case
        else {"case_id": case_id, "framework": plan.framework, "threads": plan.threads}
    )
    return {
        "schema": "xfbench-case/1",
        "event": "end",
        **fields,
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


def run_worker(plan: WorkerPlan, echo: bool = True, poll_s: float = 0.2) -> list[dict]:
    """Run every case of ``plan``; return the ``end`` records (one per case)."""
    plan.raw_dir.mkdir(parents=True, exist_ok=True)
    python = plan.python or interpreter_for(plan.framework, plan.devices)
    exclude = plan.raw_dir / f"{plan.stem}.exclude"
    log_path = plan.raw_dir / f"{plan.stem}.log"
    max_parts = max(1, len(plan.expected)) + 1
    for part in range(1, max_parts + 1):
        done = {r["case_id"] for r in read_records(plan.results) if r.get("event") == "end"}
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
            while proc.poll() is None:
                time.sleep(poll_s)
                current = _in_flight(read_records(plan.results))
                if current and time.time() - current["t"] > plan.case_timeout:
                    timed_out = current["case_id"]
                    _stop(proc)
            tee.join(timeout=5)
            proc.stdout.close()
        records = read_records(plan.results)
        current = _in_flight(records)
        if timed_out:
            append_record(
                plan.results,
                _failure_record(
                    timed_out,
                    plan,
                    "timeout",
                    f"exceeded the case time limit of {plan.case_timeout:g} s; worker killed",
                ),
            )
            continue
        if current is not None:
            code = proc.returncode
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            append_record(
                plan.results,
                _failure_record(
                    current["case_id"], plan, "error", f"worker died during this case ({how})"
                ),
            )
            continue
        if proc.returncode not in (0, 1, 5):  # 1: some cases failed (recorded); 5: none left
            ended = {r["case_id"] for r in records if r.get("event") == "end"}
            tail = log_path.read_text().strip().splitlines()[-5:]
            for case in plan.expected:
                if case.id not in ended:
                    append_record(
                        plan.results,
                        _failure_record(
                            case.id,
                            plan,
                            "error",
                            f"worker could not run (exit status {proc.returncode}): "
                            + " | ".join(tail),
                        ),
                    )
        break
    exclude.unlink(missing_ok=True)
    ends = [r for r in read_records(plan.results) if r.get("event") == "end"]
    # A case restarted after a crash could appear twice; the last word counts.
    return list({r["case_id"]: r for r in ends}.values())
