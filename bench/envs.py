"""Finding (or creating) each framework's own Python environment.

Frameworks cannot share one interpreter (MXNet needs numpy<1.24, TensorFlow numpy>=1.26),
so every framework has a tox environment named after it. The CLI runs each framework's
work with that environment's interpreter, found in this order:

1. under tox (``XFBENCH_TOX_WORKDIR`` set by tox.ini): ``tox run -e <fw> --notest``
   creates or refreshes the environment, then its interpreter is used;
2. the current interpreter, if it has the framework installed;
3. ``.tox/<fw>/bin/python`` of this checkout, if it exists.

Otherwise :class:`~bench.adapters.FrameworkNotInstalledError` says how to install it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

from bench.adapters import FrameworkNotInstalledError, install_hint, is_installed

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def env_name(framework: str, devices: Collection[str] = ("cpu",)) -> str:
    """The tox environment of ``framework``: ``<fw>`` for the CPU, ``<fw>-gpu`` (CUDA
    builds of the framework and onnxruntime-gpu) when a run includes the GPU."""
    return f"{framework}-gpu" if "cuda" in devices else framework


def interpreter_for(framework: str, devices: Collection[str] = ("cpu",)) -> Path:
    """The interpreter that runs ``framework``'s worker."""
    env = env_name(framework, devices)
    toxwork = os.environ.get("XFBENCH_TOX_WORKDIR")
    if toxwork:
        tox = [sys.executable, "-m", "tox", "run", "-e", env, "--notest", "-q"]
        subprocess.run([*tox, "--workdir", toxwork, "-c", str(REPO_ROOT / "tox.ini")], check=True)
        return _env_python(Path(toxwork) / env)
    if env == framework and is_installed(framework):
        return Path(sys.executable)
    candidate = _env_python(REPO_ROOT / ".tox" / env)
    if candidate.exists():
        return candidate
    raise FrameworkNotInstalledError(
        f"no environment with framework {framework!r} found (not importable here and no "
        f"{candidate}); " + install_hint(env)
    )
