"""Run folders: created fresh, and marked incomplete until the run has finished.

``xfbench bench`` writes ``incomplete.json`` into its run folder before it starts any
work and removes it only when every stage has finished. So a run that was interrupted
(Ctrl-C, SIGTERM: the reason is written), killed outright (SIGKILL, a lost machine: the
marker written at the start stays) or is still running is never mistaken for a complete
one: its report says so at the top, and ``xfbench report`` without a run folder skips
it (name it to report it anyway).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

INCOMPLETE = "incomplete.json"
#: The marker's reason from the start of a run until it ends or is interrupted.
NOT_FINISHED = "the run did not finish: it is still running, or it was killed"


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder ``<root>/<time>-<label>``; never one that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        candidate = root / (f"{stamp}-{label}" + (f"-{n}" if n > 1 else ""))
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def mark_incomplete(run_dir: Path, reason: str = NOT_FINISHED, **extra: Any) -> None:
    """Write (or rewrite) the marker, atomically: a reader sees the old or the new one."""
    tmp = run_dir / f".{INCOMPLETE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"reason": reason, "t": time.time(), **extra}, indent=2) + "\n")
    os.replace(tmp, run_dir / INCOMPLETE)


def mark_complete(run_dir: Path) -> None:
    (run_dir / INCOMPLETE).unlink(missing_ok=True)


def incomplete_reason(run_dir: Path) -> str | None:
    """Why the run is incomplete, or None for a finished run."""
    path = run_dir / INCOMPLETE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        return str(info["reason"]) if isinstance(info, dict) and "reason" in info else NOT_FINISHED
    except (OSError, ValueError):
        return NOT_FINISHED
