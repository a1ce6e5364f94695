"""Finding (or creating) each framework's own Python environment.

Frameworks cannot share one interpreter (MXNet needs numpy<1.24, TensorFlow numpy>=1.26),
so every framework has a tox environment named after it, and ONNX Runtime one of its own
(``onnxruntime``), which runs every framework's export. The CLI runs each framework's
work with that environment's interpreter, found in this order:

1. under tox (``XFBENCH_TOX_WORKDIR`` set by tox.ini): ``tox run -e <fw> --notest``
   creates or refreshes the environment, then its interpreter is used;
2. the current interpreter, if it has the framework installed;
3. ``.tox/<fw>/bin/python`` of this checkout, if it exists.

Otherwise :class:`~bench.adapters.FrameworkNotInstalledError` says how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from bench.adapters import FrameworkNotInstalledError, install_hint, is_installed

#: The group (and CPU tox environment) that runs every ONNX export.
ORT_ENV = "onnxruntime"
#: ONNX Runtime's environments per device, like an adapter's ``environments``.
ORT_ENVIRONMENTS = {"cpu": ORT_ENV, "cuda": "onnxruntime-gpu"}

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


#: The CUDA major of each GPU environment's libraries, as its extra resolves on PyPI
#: (``tests/test_gpu_resolve.py`` checks it against a real resolution).
CUDA_MAJOR = {
    "torch-gpu": 13,
    "jax-gpu": 13,
    "onnxruntime-gpu": 13,
    "tensorflow-gpu": 12,
    "mxnet-gpu": 11,
}
#: The oldest NVIDIA Linux driver that runs each CUDA major (CUDA's minor-version
#: compatibility: 11.x from 450.80.02, 12.x from 525.60.13, 13.x from 580.65.06).
DRIVER_FLOOR = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


def driver_shortfall(env: str, driver_cuda: str) -> str | None:
    """Why the driver cannot run ``env``'s CUDA libraries, or None where it can (or
    where either is unknown). ``driver_cuda`` is the newest CUDA the driver supports, as
    nvidia-smi prints it (``12.4``)."""
    need = CUDA_MAJOR.get(env)
    try:
        have = int(driver_cuda.split(".")[0])
    except ValueError:
        return None
    if need is None or have >= need:
        return None
    return (
        f"the {env} environment's libraries are CUDA {need}, and this NVIDIA driver runs "
        f"CUDA {driver_cuda} at most; CUDA {need} needs driver {DRIVER_FLOOR[need]} or newer "
        "(update the driver; the other environments still run)"
    )


def environments(group: str) -> Mapping[str, str]:
    """Device -> tox environment of a worker group (a framework, or ``onnxruntime``),
    as the adapter declares it."""
    if group == ORT_ENV:
        return ORT_ENVIRONMENTS
    from bench.adapters import adapter_class

    return adapter_class(group).environments


def env_name(framework: str, devices: Collection[str] = ("cpu",)) -> str:
    """The tox environment of ``framework`` (or of ``onnxruntime``) for a run on
    ``devices``: its GPU environment (CUDA builds) when the run includes ``cuda`` and it
    has one; otherwise its CPU environment, where its GPU cases are ``unsupported``."""
    envs = environments(framework)
    return envs["cuda"] if "cuda" in devices and "cuda" in envs else envs["cpu"]


_PROVISIONED: set[tuple[str, str]] = set()


def usable(python: Path, env: str) -> Path:
    """``python`` if it can be started; otherwise the environment is broken (its
    interpreter deleted, a dangling link after a Python upgrade, no execute permission)
    and the error says how to recreate it."""
    if not python.exists():
        problem = "is missing" + (" (a dangling link)" if python.is_symlink() else "")
    elif not os.access(python, os.X_OK):
        problem = "is not executable"
    else:
        return python
    raise FrameworkNotInstalledError(
        f"the {env!r} environment is broken: its interpreter {python} {problem}; recreate "
        f"it with `tox -e {env} -r --notest`"
    )


def interpreter_for(framework: str, devices: Collection[str] = ("cpu",)) -> Path:
    """The interpreter that runs ``framework``'s worker."""
    env = env_name(framework, devices)
    toxwork = os.environ.get("XFBENCH_TOX_WORKDIR")
    if toxwork:
        if (toxwork, env) not in _PROVISIONED:  # once per run, not once per process
            tox = [sys.executable, "-m", "tox", "run", "-e", env, "--notest", "-q"]
            cfg = ["--workdir", toxwork, "-c", str(REPO_ROOT / "tox.ini")]
            log = Path(toxwork) / f"{env}-setup.log"  # tox's chatter, kept out of the console
            if not (Path(toxwork) / env).exists():
                print(f"xfbench: creating the {env} environment (once; minutes) ...", flush=True)
            t0 = time.perf_counter()
            with open(log, "w") as fh:
                code = subprocess.run([*tox, *cfg], stdout=fh, stderr=subprocess.STDOUT).returncode
            if code:
                tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
                print(f"xfbench: tox output for {env} ({log}):\n{tail}", file=sys.stderr)
                raise FrameworkNotInstalledError(
                    f"tox could not create or update the {env!r} environment (exit status "
                    f"{code}; its output is in {log}); fix what it names, or recreate it with "
                    f"`tox -e {env} -r --notest`"
                )
            seconds = time.perf_counter() - t0
            if seconds > 5:  # created or updated, not just checked
                print(f"xfbench: environment {env} set up in {seconds:.0f} s", flush=True)
            _PROVISIONED.add((toxwork, env))
        return usable(_env_python(Path(toxwork) / env), env)
    here = (
        importlib.util.find_spec("onnxruntime") is not None
        if framework == ORT_ENV
        else is_installed(framework)
    )
    if env == environments(framework)["cpu"] and here:
        return Path(sys.executable)
    candidate = _env_python(REPO_ROOT / ".tox" / env)
    if candidate.exists() or candidate.is_symlink():
        return usable(candidate, env)
    raise FrameworkNotInstalledError(
        f"no environment with framework {framework!r} found (not importable here and no "
        f"{candidate}); " + install_hint(env)
    )
