"""Atomic file writes: every artifact is written under a temporary name in its own
folder, flushed to disk, then renamed over the real name with :func:`os.replace`.

A reader therefore sees the old file or the new one, never half of one: a write that
is interrupted (a crash, Ctrl-C, a full disk) leaves at most a hidden temporary file,
``.<name>.<pid>-<random>.tmp<suffix>``, which no reader looks at.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``, hidden, ending in ``path``'s suffix
    (``np.save`` appends ``.npy`` to a name that does not end in it)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


def is_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file of an unfinished (or interrupted) write."""
    return path.name.startswith(".") and ".tmp" in path.name


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path for a library that writes to a path (``onnx.save``,
    ``np.save``, an exporter); when the block ends normally the file it wrote replaces
    ``path``; when the block raises, the temporary file is removed and ``path`` is left
    as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{path}: the writer left no file at {tmp}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "xb") as fh:
        fh.write(data)


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode(encoding))


#: Leftovers of a write or build whose process was killed outright (SIGKILL, a lost
#: machine): ``.<name>.<pid>-<hex>.tmp…`` files, ``.<name>.<pid>-<hex>.partial`` report
#: folders and ``<model>.staging-<pid>`` build folders. The pid says whose they are.
_LEFTOVER = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.(?:tmp|partial)|\.staging-(\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporaries in ``folder`` whose writing process no longer exists (a
    live one's are left alone: it may still be writing). Returns what was removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER.search(entry.name)
        if not m or _alive(int(m.group(1) or m.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
