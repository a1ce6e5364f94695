"""Adding run folders to the history database (being written: issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def ingest_after_run(run_dir: Path, db: str | None, out: Path, say: Callable[[str], None]) -> None:
    """Add a just-finished run to the history; a failure is reported, never raised."""
    # Filled in by the history database work (issue 13); until then runs are not added.
    return None
