"""One benchmark at a time on a machine.

Two benchmark runs on the same cores slow each other down by up to the number of
threads they share, evenly across every round, so neither run's statistics can show
it. ``xfbench bench`` therefore holds an exclusive lock on a file in the system's
temporary folder for as long as it runs; a second one stops at once and names the
first. The lock is an advisory ``flock``: the kernel releases it when the holder exits,
killed or not, so a crashed run never leaves a stale lock behind.

Other load (a build, a browser, another user's job) is not stopped by this; it is
measured instead (:mod:`bench.load`) and shown in the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "xfbench-bench.lock"


class BenchRunningError(RuntimeError):
    """Another benchmark holds the machine."""


def lock_path() -> Path:
    return Path(os.environ.get("XFBENCH_LOCK_DIR") or tempfile.gettempdir()) / LOCK_NAME


def _holder(f) -> str:
    f.seek(0)
    try:
        info = json.loads(f.read() or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict) or not info:
        return "another xfbench bench"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("t", 0)))
    return (
        f"another xfbench bench (pid {info.get('pid', '?')}, since {since}, "
        f"writing {info.get('run', '?')})"
    )


@contextlib.contextmanager
def machine_lock(run: Path, path: Path | None = None) -> Iterator[Path | None]:
    """Hold the machine's benchmark lock while the block runs; raise
    :class:`BenchRunningError` if another process holds it. Where locks are not
    available (no ``fcntl``, a lock file that cannot be opened) it yields ``None`` and
    the run goes on unguarded: a run must not fail over its guard."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield None
        return
    path = path or lock_path()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield None
        return
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchRunningError(
                f"{_holder(f)} is timing on this machine; two at once would slow both and "
                f"skew every number. Wait for it to finish (or stop it), then run again."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "t": time.time(), "run": str(run)}))
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
