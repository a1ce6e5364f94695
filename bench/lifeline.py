"""Worker processes end with the run that started them.

Every process the orchestrator starts (a zoo worker, a timing worker, a cold start)
calls :func:`watch_parent` first. On Linux it asks the kernel to SIGKILL it the moment
its parent dies (``prctl(PR_SET_PDEATHSIG)``: nothing polls, so nothing rides in a timed
call); elsewhere a daemon thread checks the parent a few times a second. So an
orchestrator killed with SIGKILL leaves no worker timing on, and a killed zoo's worker
does not go on to publish a build after the command failed. :func:`parent_alive` lets
a worker check once more right before an irreversible step (publishing a build).

Ctrl-C and SIGTERM at the orchestrator are handled there (``bench/cli.py``): it stops
its workers' process groups itself and marks the run incomplete.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: Set by the orchestrator in every worker's environment: its own pid.
PARENT_ENV = "XFBENCH_PARENT_PID"
#: The fallback watcher's period, in seconds.
POLL_S = 0.25
_PR_SET_PDEATHSIG = 1

_parent: int | None = None


def child_env() -> dict[str, str]:
    """What a worker's environment needs so that it can watch this process."""
    return {PARENT_ENV: str(os.getpid())}


def parent_alive() -> bool:
    """False once the process that called :func:`watch_parent` has lost its parent
    (always True where nothing is watched)."""
    return _parent is None or os.getppid() == _parent


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _poll(poll_s: float) -> None:
    while parent_alive():
        time.sleep(poll_s)
    _die()


def _kernel_watch() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent() -> None:
    """End this process when the orchestrator that started it ends. Does nothing in a
    process not started by the orchestrator (no :data:`PARENT_ENV`)."""
    global _parent
    expected = os.environ.get(PARENT_ENV, "")
    if _parent is not None or not expected.isdigit():
        return
    _parent = int(expected)
    if not _kernel_watch():
        threading.Thread(target=_poll, args=(POLL_S,), name="xfbench-lifeline", daemon=True).start()
    if not parent_alive():  # it died before we were watching
        _die()
