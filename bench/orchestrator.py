"""Runs the timing and cold-start processes of a benchmark run, in a fair order.

* **Timing**: every worker group (each framework's native modes; ``onnxruntime`` for
  every export) is run in ``repeat`` independent processes, interleaved: process 1 of
  every group, then process 2 of every group (in a rotated order), and so on, so that a
  slow minute of the machine hits every framework rather than one. The spread between
  processes is what a user re-running the benchmark sees; the report puts intervals on
  it.
* **Cold starts**: ``cold_starts`` fresh processes per framework x model x runtime (the
  framework's default mode, and ONNX Runtime), interleaved the same way, each importing
  the framework and loading only that model (``bench/coldstart.py``).

Nothing here imports a framework: processes are started with each group's own
interpreter (``bench/envs.py``) and their results read back from files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.adapters import FrameworkNotInstalledError
from bench.envs import ORT_ENV, driver_shortfall, env_name, interpreter_for
from bench.matrix import (
    ORT,
    Case,
    Framework,
    Timing,
    cold_start_cases,
    native_cases,
    onnxruntime_cases,
)
from bench.runner import WorkerPlan, append_record, failure_records, run_worker, worker_env

COLD_SCHEMA = "xfbench-cold/1"


@dataclass
class RunPlan:
    frameworks: list[str]
    models: list[str]
    devices: list[str]
    batch_sizes: list[int]
    threads: list[int]
    timing: Timing
    repeat: int
    cold_starts: int
    artifacts: Path
    raw_dir: Path
    case_timeout: float
    onnxruntime: bool = True  # time every export under ONNX Runtime, in its own process
    phases: tuple[str, ...] = ("compile", "inference", "train_step", "peak")
    python: Path | None = None  # one interpreter for every group (tests); default: bench.envs
    #: The newest CUDA the GPU's driver runs (nvidia-smi's ``CUDA Version``), if known.
    driver_cuda: str | None = None
    sweep: bool = False  # every mode of the non-reference sizes, not only the default one
    #: Time only this worker group (a framework, or ``onnxruntime``) and cold-start only
    #: its runtimes: one task of a fleet (``xfbench fleet``, bench/fleet.py).
    only_group: str | None = None
    infos: list[Framework] = field(init=False)

    def __post_init__(self) -> None:
        self.infos = [Framework.of(f) for f in self.frameworks]

    def worker_plans(self, process: int) -> list[WorkerPlan]:
        """The timing processes of round ``process``, in that round's (rotated) order."""
        plans = []
        for t in self.threads:
            groups: list[tuple[str, list[Case], list[str]]] = [
                (
                    fw.name,
                    native_cases(fw, self.models, self.devices, self.batch_sizes, t, self.sweep),
                    [],
                )
                for fw in self.infos
            ]
            if self.onnxruntime:
                cases = onnxruntime_cases(
                    self.infos, self.models, self.devices, self.batch_sizes, t
                )
                groups.append((ORT, cases, self.frameworks))
            for group, cases, exporters in groups:
                cases = [c for c in cases if c.phase in self.phases]
                if not cases or self.only_group not in (None, group):
                    continue
                plans.append(
                    WorkerPlan(
                        group,
                        t,
                        self.models,
                        self.devices,
                        self.batch_sizes,
                        self.timing,
                        self.artifacts,
                        self.raw_dir,
                        self.case_timeout,
                        cases,
                        python=self.python,
                        process=process,
                        frameworks=exporters,
                        phases=self.phases,
                        sweep=self.sweep,
                    )
                )
        shift = (process - 1) % max(1, len(plans))
        return plans[shift:] + plans[:shift]

    def gpu_blocked(self, group: str, devices: Collection[str]) -> str | None:
        """Why ``group`` cannot run on ``devices`` at all, before its environment is
        installed: a run on the GPU alone whose environment needs a newer driver than
        this machine's (its cases are then ``unsupported`` with this reason). Runs that
        include the CPU go ahead: its GPU cases find out for themselves."""
        if set(devices) != {"cuda"} or not self.driver_cuda:
            return None
        return driver_shortfall(env_name(group, devices), self.driver_cuda)

    def cold_cases(self) -> list[Case]:
        cases = [
            c
            for t in self.threads
            for c in cold_start_cases(self.infos, self.models, self.devices, t)
        ]
        cases = cases if self.onnxruntime else [c for c in cases if c.runtime != ORT]
        return [c for c in cases if self.only_group in (None, c.group)]

    def count(self) -> dict[str, int]:
        """Processes and timed cases, for the plan the CLI prints."""
        plans = self.worker_plans(1)
        return {
            "groups": len(plans),
            "timing_processes": len(plans) * self.repeat,
            "cases": sum(len(p.expected) for p in plans),
            "cold_processes": len(self.cold_cases()) * self.cold_starts,
        }

    def estimate_s(self) -> float:
        """A rough time for the timing and cold starts, from the matrix alone: each case
        costs its warm-up and timing window plus about 0.35 s of set-up and recording
        (measured on the development VM), each process about 6 s to start, each cold
        start about 1.5 s. Building missing models comes on top."""
        counts = self.count()
        per_case = self.timing.max_time + self.timing.warmup_s + 0.35
        return (
            counts["timing_processes"] * 6.0
            + counts["cases"] * self.repeat * per_case
            + counts["cold_processes"] * 1.5
        )


Progress = Callable[[str], None]


def run_timing(
    plan: RunPlan,
    echo: bool = False,
    progress: Progress = print,
    on_cases: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Every timing process of the run; returns every ``end`` record. ``on_cases(done,
    total)`` follows every case as it ends (the CLI's progress bar on a terminal)."""
    records: list[dict[str, Any]] = []
    total = plan.repeat * len(plan.worker_plans(1))
    all_cases = plan.repeat * plan.count()["cases"]
    n, cases_done, t0 = 0, 0, time.time()
    for process in range(1, plan.repeat + 1):
        for wp in plan.worker_plans(process):
            n += 1
            progress(
                f"timing {n}/{total}: {wp.group} ({len(wp.expected)} cases, "
                f"{wp.threads} thread{'s' if wp.threads > 1 else ''}, "
                f"process {process}/{plan.repeat})"
            )
            started = time.time()
            follow = None
            if on_cases is not None:
                base = cases_done

                def follow(ended: int, base: int = base) -> None:
                    on_cases(base + ended, all_cases)

            blocked = plan.gpu_blocked(wp.group, wp.devices)
            try:
                if blocked:
                    got = failure_records(wp, "unsupported", blocked)
                else:
                    got = run_worker(wp, echo=echo, on_progress=follow)
            except (FrameworkNotInstalledError, subprocess.CalledProcessError) as exc:
                got = failure_records(wp, "error", str(exc))
            records += got
            cases_done += len(wp.expected)
            if on_cases is not None:
                on_cases(cases_done, all_cases)
            bad = sum(r["status"] not in ("ok", "unsupported") for r in got)
            progress(
                f"  done in {time.time() - started:.0f} s"
                + (f", {bad} case(s) failed" if bad else "")
                + f"; {cases_done}/{all_cases} cases"
                + _time_left(time.time() - t0, cases_done, all_cases)
            )
    return records


def _time_left(spent: float, done: int, total: int) -> str:
    """``, about 3 min left``: the rate so far, over what remains (the cases of one
    framework take about as long in every process, and the order repeats)."""
    if not done or done >= total:
        return ""
    left = spent / done * (total - done)
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"


def run_cold_starts(plan: RunPlan, progress: Progress = print) -> list[dict]:
    """``cold_starts`` fresh processes per cold case, interleaved; returns their records
    (also appended to ``raw/coldstart.jsonl``)."""
    cases = plan.cold_cases()
    out = plan.raw_dir / "coldstart.jsonl"
    plan.raw_dir.mkdir(parents=True, exist_ok=True)
    records = []
    if cases and plan.cold_starts:
        progress(f"cold starts: {len(cases)} models x {plan.cold_starts} fresh processes")
    t0, total = time.time(), len(cases) * plan.cold_starts
    for process in range(1, plan.cold_starts + 1):
        shift = (process - 1) % max(1, len(cases))
        for case in cases[shift:] + cases[:shift]:
            rec = cold_start(plan, case, process)
            append_record(out, rec)
            records.append(rec)
        failed = sum(r["status"] != "ok" for r in records)
        progress(
            f"  round {process}/{plan.cold_starts} done"
            + (f", {failed} failed so far" if failed else "")
            + _time_left(time.time() - t0, len(records), total)
        )
    return records


def cold_start(plan: RunPlan, case: Case, process: int) -> dict[str, Any]:
    """One fresh process for ``case``; a crash or a hang becomes its status."""
    group = ORT_ENV if case.runtime == ORT else case.framework
    base = {
        "schema": COLD_SCHEMA,
        "event": "cold",
        **case.as_dict(),
        "process": process,
        "t": time.time(),
    }
    blocked = plan.gpu_blocked(group, [case.device])
    if blocked:
        return {**base, "status": "unsupported", "reason": blocked}
    try:
        python = plan.python or interpreter_for(group, plan.devices)
    except (FrameworkNotInstalledError, subprocess.CalledProcessError) as exc:
        return {**base, "status": "error", "reason": str(exc)}
    with tempfile.TemporaryDirectory(prefix="xfbench-cold-") as tmp:
        result_file = Path(tmp) / "cold.json"
        cmd = [
            str(python),
            "-m",
            "bench.coldstart",
            f"--framework={case.framework}",
            f"--model={case.model}",
            f"--runtime={case.runtime}",
            f"--device={case.device}",
            f"--threads={case.threads}",
            f"--artifacts={plan.artifacts}",
            f"--batch-sizes={','.join(map(str, plan.batch_sizes))}",
            f"--result-file={result_file}",
        ]
        from bench.envs import REPO_ROOT

        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                env=worker_env(case.threads, plan.devices),
                capture_output=True,
                text=True,
                timeout=plan.case_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {
                **base,
                "status": "timeout",
                "reason": f"exceeded the case time limit of {plan.case_timeout:g} s",
            }
        process_s = time.perf_counter() - t0
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
            result = {
                "status": "error",
                "reason": f"cold-start process exited with status {proc.returncode}: {tail}",
            }
    if result.get("status") != "ok" and proc.stderr:
        sys.stderr.write(proc.stderr[-2000:])
    return {**base, **result, "process_s": process_s}
