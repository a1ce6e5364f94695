"""Resident memory of this process, from Linux's /proc (``None`` elsewhere)."""

from __future__ import annotations

from pathlib import Path


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """The resident-set high-water mark since the process started or the last reset."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def rss_bytes() -> int | None:
    """The resident set now."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024
