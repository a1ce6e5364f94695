"""One task of ``xfbench fleet``, as a Dask worker runs it on its machine.

A task is one worker group of the benchmark (a framework's native cases, or ONNX
Runtime's for every export) on one device at one thread count. The worker runs its own
checkout's runner, unchanged, as a subprocess::

    python -m bench.fleet_task bench --fleet-part --only-group GROUP -d DEVICE [-t T] ...

(``__main__`` below: the ``xfbench`` command line, after asking the kernel to end it
with this worker), so the runner's isolation, environments, machine lock and run folder
are the same as ``xfbench bench``'s. :func:`run_group` returns that run folder as a
gzipped tar, with the host, the worker and the runner's exit status; the client
(bench/fleet.py) writes it into the fleet's folder as soon as it arrives.

If the worker process dies (a lost machine), the runner dies with it (its parent-death
signal) and Dask reschedules the task elsewhere. If the client cancels the task
(Ctrl-C, or the client itself died), the runner is killed within a second: a Dask
worker cannot stop a running task, so the task watches for it.

Importing this module imports neither Dask nor a framework: the client imports it too.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.envs import REPO_ROOT

#: The runner's environment names the Dask worker that started it.
WORKER_ENV = "XFBENCH_FLEET_WORKER"
#: How often a running task checks whether its client still wants it, in seconds.
POLL_S = 1.0
#: The lines of the runner's console output a failed task reports.
TAIL_LINES = 12


def run_group(task: dict[str, Any]) -> dict[str, Any]:
    """Run one worker group with this machine's runner; return its run folder.

    ``task``: ``label``, ``argv`` (the ``xfbench`` arguments without ``--out``),
    ``topic`` (the Dask event topic the start is announced on), ``runner`` (the
    command that runs ``xfbench``: None for this worker's ``python -m bench.fleet_task``;
    tests pass their own driver) and ``timeout_s`` (``--group-timeout``: past it the
    runner's process group is killed and the status is ``timeout``)."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    name = str(worker.name)
    host = socket.gethostname()
    with contextlib.suppress(Exception):  # an announcement, not a condition of the task
        worker.log_event(
            task["topic"],
            {
                "event": "start",
                "key": str(key),
                "label": task["label"],
                "worker": name,
                "address": worker.address,
                "host": host,
                "pid": os.getpid(),
                "t": time.time(),
            },
        )
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="xfbench-fleet-"))
    try:
        runner = task.get("runner") or [sys.executable, "-m", "bench.fleet_task"]
        argv = [*runner, *task["argv"], "--out", str(scratch / "runs")]
        log = scratch / "console.log"
        from bench.lifeline import child_env

        env = {**os.environ, **child_env(), WORKER_ENV: name}
        cancelled = timed_out = False
        limit = float(task.get("timeout_s") or 0) or None
        with open(log, "w") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a cancel stops its children too
            )
            try:
                while True:
                    try:
                        proc.wait(timeout=POLL_S)
                        break
                    except subprocess.TimeoutExpired:
                        if _unwanted(worker, key):
                            cancelled = True
                            _kill(proc)
                        elif limit is not None and time.time() - started > limit:
                            timed_out = True  # --group-timeout: a stuck runner
                            _kill(proc)
            except BaseException:
                _kill(proc)
                raise
        runs = sorted(d for d in (scratch / "runs").glob("*") if d.is_dir())
        payload = _pack(runs[-1], log) if runs and not (cancelled or timed_out) else None
        status = "cancelled" if cancelled else "timeout" if timed_out else "finished"
        return {
            "label": task["label"],
            "status": status,
            "returncode": proc.returncode,
            "worker": name,
            "address": worker.address,
            "host": host,
            "run_name": runs[-1].name if runs else None,
            "payload": payload,
            "log_tail": log.read_text(errors="replace").splitlines()[-TAIL_LINES:],
            "elapsed_s": round(time.time() - started, 1),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unwanted(worker: Any, key: Any) -> bool:
    """Whether the scheduler has cancelled this task (its client cancelled it or is
    gone); False where this Dask has no such state to read."""
    try:
        ts = worker.state.tasks.get(key)
    except AttributeError:
        return False
    return ts is None or ts.state in ("cancelled", "released", "forgotten")


def _kill(proc: subprocess.Popen) -> None:
    """The runner and its process group; its own workers follow it (their parent-death
    signal, bench/lifeline.py)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _pack(run_dir: Path, log: Path) -> bytes:
    """``run_dir`` (with the runner's console output as ``fleet-console.log``) as a
    gzipped tar whose one top folder is the run's name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name)
        tar.add(log, arcname=f"{run_dir.name}/fleet-console.log")
    return buffer.getvalue()


def worker_facts() -> dict[str, Any]:
    """What the client records of each worker machine (``client.run``): host, CPUs,
    GPUs, the checkout's commit."""
    from bench.fingerprint import detect_gpus, git_commit
    from bench.threads import available_cpus

    return {
        "host": socket.gethostname(),
        "cpus": available_cpus(),
        "gpus": [g.name for g in detect_gpus()],
        "commit": git_commit().get("commit"),
        "python": sys.version.split()[0],
        "checkout": str(REPO_ROOT),
    }


def main(argv: list[str] | None = None) -> int:
    """``xfbench`` for a task: ended by the kernel when the Dask worker that started it
    dies (a lost machine leaves nothing timing)."""
    from bench.lifeline import watch_parent

    watch_parent()
    from bench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
