"""``xfbench history`` and ``xfbench history ingest`` (being written: issue 13)."""

from __future__ import annotations

from typing import Any


def add_parsers(sub: Any) -> None:
    """Register ``history`` (and its ``ingest``/``report`` actions) on the CLI."""
