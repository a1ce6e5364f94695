"""What an environment's requirements resolve to, without installing anything.

``pip install --dry-run --ignore-installed --report`` resolves a set of requirements
against the package index (PyPI, plus whatever the host's pip configuration adds) and
writes the chosen distributions as JSON, downloading only metadata. This module runs it
for a ``pyproject.toml`` extra (one tox environment), reads the report, and says which
CUDA major the resolved set carries:

* CUDA 12 and older name their NVIDIA wheels with a ``-cuNN`` suffix
  (``nvidia-cuda-runtime-cu12 12.9.79``); CUDA 13 drops it (``nvidia-cuda-runtime
  13.0.96``), so there the version of a toolkit-versioned wheel is the CUDA major, while
  libraries with versions of their own (``nvidia-cufft 12.x``, ``nvidia-curand 10.x``
  inside CUDA 13) say nothing about it;
* other builds carry it in their name or local version label: ``jax-cuda13-plugin``,
  ``mxnet-cu112`` (CUDA 11.2), ``torch 2.5.1+cu121``, ``cupy-cuda12x``.

``tests/test_gpu_resolve.py`` resolves every GPU environment with it, and
``xfbench bench --plan --resolve`` prints :func:`summarize_environments`. Nothing here
imports a framework; ``packaging`` (present wherever pip, pytest or matplotlib is) reads
dependency markers exactly, and a plain reading of the names stands in without it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
#: The resolution of one environment downloads metadata only (5 to 30 s on PyPI).
DEFAULT_TIMEOUT = 600.0

#: Unsuffixed NVIDIA wheels whose version is the CUDA toolkit's (``nvidia-cuda-*`` too);
#: cuFFT, cuRAND, cuSOLVER, cuSPARSE, cuFile, cuDNN, NCCL... version themselves.
_TOOLKIT_VERSIONED = {
    "cuda-toolkit",
    "cuda-bindings",
    "cuda-python",
    "nvidia-cublas",
    "nvidia-nvjitlink",
    "nvidia-nvvm",
    "nvidia-nvtx",
    "nvidia-nvfatbin",
    "nvidia-nvptxcompiler",
    "nvidia-npp",
    "nvidia-nvjpeg",
    "nvidia-nvml-dev",
}
_MXNET = re.compile(r"^mxnet-cu(\d+)(?:mkl)?$")  # mxnet-cu112: major and minor, always
_JAX_PLUGIN = re.compile(r"^jax-cuda(\d+)-(?:plugin|pjrt)$")
_SUFFIX = re.compile(r"-cu(?:da)?(\d+)x?$")  # nvidia-cudnn-cu13, cupy-cuda12x, tensorrt-cu12
_LOCAL = re.compile(r"^cu(?:da)?(\d+)")  # torch 2.5.1+cu121, jaxlib 0.4.20+cuda12.cudnn89
_NETWORK = (
    "Retrying (Retry(",
    "connection broken",
    "Could not fetch URL",
    "NewConnectionError",
    "NameResolutionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
    "Network is unreachable",
)


class ResolveError(RuntimeError):
    """pip could not resolve the requirements; ``network`` says whether the index could
    not be reached (as opposed to a real conflict)."""

    def __init__(self, message: str, network: bool = False) -> None:
        super().__init__(message)
        self.network = network


@dataclass(frozen=True)
class Package:
    """One distribution of a resolved set."""

    name: str  #: canonical (PEP 503) name
    version: str
    url: str  #: where pip would download it from
    requested: bool  #: named by the requirements themselves (not only a dependency)
    requires: tuple[str, ...] = ()  #: the resolved distributions it depends on

    @property
    def local(self) -> str:
        """The local version label (``cpu`` of ``2.13.0+cpu``), or ``""``."""
        return self.version.partition("+")[2]

    @property
    def source(self) -> str:
        """``PyPI``, a local folder, or the host it comes from."""
        url = urlparse(self.url)
        if url.scheme == "file":
            return str(Path(unquote(url.path)).parent)
        if url.netloc in ("files.pythonhosted.org", "pypi.org"):
            return "PyPI"
        return url.netloc or self.url


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- requirements ------------------------------------------------------------------------
def extra_requirements(
    extra: str, pyproject: Path = PYPROJECT, with_project: bool = True
) -> list[str]:
    """The requirements of ``pyproject.toml``'s extra ``extra`` (an environment), after the
    project's own dependencies where ``with_project`` (tox installs both); an extra that
    names the project itself (``xfbench[test]``) is expanded."""
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    extras = project.get("optional-dependencies", {})
    if extra not in extras:
        raise KeyError(
            f"{pyproject} has no extra {extra!r}; its extras: {', '.join(sorted(extras))}"
        )
    own = canonical(project["name"])
    out = list(project.get("dependencies", [])) if with_project else []
    todo, seen = [extra], set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for req in extras.get(name, []):
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
            if m and canonical(m[1]) == own:
                todo += [e.strip() for e in (m[2] or "").split(",") if e.strip()]
            elif req not in out:
                out.append(req)
    return out


# -- resolution ----------------------------------------------------------------------------
def _pip_tail(text: str, lines: int = 8) -> str:
    """pip's last lines, without the host's notes about absent local index folders and
    with only the last of its network retries."""
    keep = [
        ln
        for ln in text.strip().splitlines()
        if ln.strip() and not re.match(r"WARNING: Location '.*' is ignored", ln)
    ]
    retries = [i for i, ln in enumerate(keep) if ln.startswith("WARNING: Retrying")]
    keep = [ln for i, ln in enumerate(keep) if i not in retries[:-1]]
    return "\n".join(keep[-lines:])


def resolve(
    requirements: Iterable[str],
    python: str | Path = sys.executable,
    timeout: float = DEFAULT_TIMEOUT,
    pip_args: Sequence[str] = (),
) -> dict[str, Package]:
    """Resolve ``requirements`` for ``python`` (its version, platform and pip
    configuration) with ``pip install --dry-run --ignore-installed --report``: canonical
    name -> :class:`Package`. Nothing is installed; wheels' metadata is downloaded.
    ``pip_args``: more options for pip (``--retries 1`` to give up soon offline; with
    ``0`` pip no longer says that the index could not be reached).

    Raises :class:`ResolveError` naming what failed and pip's last lines."""
    reqs = list(requirements)
    what = f"resolving {' '.join(reqs)} with {python} -m pip"
    with tempfile.TemporaryDirectory(prefix="xfbench-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [str(python), "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        cmd += ["--quiet", "--no-input", "--disable-pip-version-check"]
        cmd += [*pip_args, "--report", str(report), *reqs]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise ResolveError(f"{what}: no interpreter {python} ({exc})") from None
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr or ""
            out = err.decode(errors="replace") if isinstance(err, bytes) else err
            raise ResolveError(
                f"{what}: pip did not finish within {timeout:.0f} s; resolving needs the "
                f"package index (PyPI): is it reachable?\n{_pip_tail(out)}",
                network=True,
            ) from None
        output = proc.stdout + proc.stderr
        if proc.returncode or not report.exists():
            if "No module named pip" in output:
                raise ResolveError(
                    f"{what}: {python} has no pip (`{python} -m ensurepip` installs it)"
                )
            if "no such option: --report" in output:
                raise ResolveError(f"{what}: pip 22.2 or newer is needed for --report")
            network = any(s in output for s in _NETWORK)
            why = (
                "the package index could not be reached (resolving needs PyPI)"
                if network
                else "pip found no set of versions that satisfies them"
            )
            raise ResolveError(
                f"{what} failed (exit status {proc.returncode}): {why}; pip's last lines:\n"
                + _pip_tail(output),
                network=network,
            )
        data = json.loads(report.read_text())
    return _packages(data)


def _requirement(
    line: str, environment: Mapping[str, str], extras: set[str]
) -> tuple[str, set[str], bool]:
    """(canonical name, its extras, whether it applies here) of a ``Requires-Dist`` line
    of a distribution installed with ``extras``."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # the plain reading: markers other than `extra == "x"` hold
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?([^;]*);?(.*)", line)
        if not m:
            return "", set(), False
        named = set(re.findall(r"""extra\s*==\s*['"]([^'"]+)['"]""", m[4]))
        applies = not named or bool(named & {canonical(e) for e in extras})
        return canonical(m[1]), {e.strip() for e in (m[2] or "").split(",") if e}, applies
    req = Requirement(line)
    applies = req.marker is None or any(
        req.marker.evaluate({**environment, "extra": e}) for e in ("", *sorted(extras))
    )
    return canonical(req.name), set(req.extras), applies


def _packages(report: Mapping[str, Any]) -> dict[str, Package]:
    """The packages of a pip installation report, each with the resolved distributions
    its dependencies (markers and extras evaluated for the report's environment) name."""
    install = {canonical(i["metadata"]["name"]): i for i in report["install"]}
    environment = report.get("environment", {})
    extras = {n: set(i.get("requested_extras") or ()) for n, i in install.items()}
    deps: dict[str, set[str]] = {n: set() for n in install}
    todo = list(install)
    while todo:  # extras propagate: jax[cuda13] -> jax-cuda13-plugin[with-cuda] -> nvidia-*
        name = todo.pop()
        for line in install[name]["metadata"].get("requires_dist") or ():
            dep, dep_extras, applies = _requirement(line, environment, extras[name])
            if not applies or dep not in install:
                continue
            deps[name].add(dep)
            if not dep_extras <= extras[dep]:
                extras[dep] |= dep_extras
                todo.append(dep)
    return {
        n: Package(
            name=n,
            version=i["metadata"]["version"],
            url=i.get("download_info", {}).get("url", ""),
            requested=bool(i.get("requested")),
            requires=tuple(sorted(deps[n])),
        )
        for n, i in sorted(install.items())
    }


def resolve_environment(
    env: str,
    python: str | Path = sys.executable,
    timeout: float = DEFAULT_TIMEOUT,
    pip_args: Sequence[str] = (),
) -> dict[str, Package]:
    """The resolved set of the environment ``env`` (its extra and the project's own
    dependencies, as tox installs them)."""
    return resolve(extra_requirements(env), python, timeout, pip_args)


def _each(
    envs: Iterable[str], python: str | Path, timeout: float, pip_args: Sequence[str] = ()
) -> dict[str, dict[str, Package] | ResolveError]:
    envs = list(dict.fromkeys(envs))

    def one(env: str) -> dict[str, Package] | ResolveError:
        try:
            return resolve_environment(env, python, timeout, pip_args)
        except ResolveError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(envs)))) as pool:
        return dict(zip(envs, pool.map(one, envs), strict=True))


def resolve_environments(
    envs: Iterable[str],
    python: str | Path = sys.executable,
    timeout: float = DEFAULT_TIMEOUT,
    pip_args: Sequence[str] = (),
) -> dict[str, dict[str, Package]]:
    """:func:`resolve_environment` for each of ``envs``, in parallel. A failure raises
    :class:`ResolveError` naming every environment that failed (``network`` where any
    failed for want of the index)."""
    results = _each(envs, python, timeout, pip_args)
    failed = {env: r for env, r in results.items() if isinstance(r, ResolveError)}
    if failed:
        raise ResolveError(
            "\n\n".join(f"{env}: {exc}" for env, exc in failed.items()),
            network=any(exc.network for exc in failed.values()),
        )
    return {env: r for env, r in results.items() if not isinstance(r, ResolveError)}


# -- reading a resolved set ----------------------------------------------------------------
def _digits_major(digits: str, with_minor: bool = False) -> int:
    """``12`` -> 12; ``121`` or (``with_minor``) ``92`` -> 12, 9."""
    return int(digits[:-1]) if with_minor or len(digits) >= 3 else int(digits)


def cuda_major(name: str, version: str = "") -> int | None:
    """The CUDA major a distribution is built for, read from its name or version; None
    where it says nothing about CUDA (``nvidia-cufft 12.0`` in CUDA 13 included)."""
    name = canonical(name)
    if m := _MXNET.match(name):
        return _digits_major(m[1], with_minor=True)
    if m := _JAX_PLUGIN.match(name):
        return int(m[1])
    if m := _SUFFIX.search(name):
        return _digits_major(m[1])
    if name in _TOOLKIT_VERSIONED or name.startswith("nvidia-cuda-"):
        head = version.split(".")[0]
        return int(head) if head.isdigit() else None
    if m := _LOCAL.match(version.partition("+")[2]):
        return _digits_major(m[1], with_minor=not m[0].startswith("cuda"))
    return None


def _version(p: Package | str) -> str:
    return p.version if isinstance(p, Package) else p


def cuda_majors(packages: Mapping[str, Package | str]) -> dict[int, list[str]]:
    """CUDA major -> the distributions (``name version``) that say so, of a resolved set
    (name -> :class:`Package` or version). More than one key: the set mixes majors."""
    out: dict[int, list[str]] = {}
    for name, p in sorted(packages.items()):
        major = cuda_major(name, _version(p))
        if major is not None:
            out.setdefault(major, []).append(f"{canonical(name)} {_version(p)}")
    return out


def cuda_wheels(packages: Mapping[str, Package | str]) -> list[str]:
    """The NVIDIA CUDA library wheels (``nvidia-*``, ``cuda-*``) of a resolved set."""
    return sorted(n for n in map(canonical, packages) if n.startswith(("nvidia-", "cuda-")))


def dependencies(packages: Mapping[str, Package], root: str) -> dict[str, Package]:
    """``root`` and everything it pulls in, directly or not."""
    out: dict[str, Package] = {}
    todo = [canonical(root)]
    while todo:
        name = todo.pop()
        if name in packages and name not in out:
            out[name] = packages[name]
            todo += packages[name].requires
    return out


def summarize(packages: Mapping[str, Package], requirements: Iterable[str] = ()) -> str:
    """One line: the requested distributions (with their source where not PyPI), the CUDA
    major(s) and the CUDA wheels of a resolved set."""
    names = [canonical(re.split(r"[\s\[<>=!~;(@]", r.strip(), maxsplit=1)[0]) for r in requirements]
    shown = [n for n in dict.fromkeys(names) if n in packages] or [
        n for n, p in packages.items() if p.requested
    ]

    def label(n: str) -> str:
        p = packages[n]
        # Where pip found it, where that was not PyPI (a local index or wheel folder).
        return f"{n} {p.version}" + ("" if p.source == "PyPI" else f" (from {p.source})")

    majors = cuda_majors(packages)
    if not majors:
        cuda = "no CUDA (CPU builds)"
    elif len(majors) == 1:
        cuda = f"CUDA {next(iter(majors))}"
    else:
        cuda = "MIXED CUDA " + " + ".join(map(str, sorted(majors)))
    wheels = cuda_wheels(packages)
    libs = ", ".join(f"{n.removeprefix('nvidia-')} {packages[n].version}" for n in wheels)
    return (
        f"{', '.join(label(n) for n in shown)}; {cuda}"
        + (f" ({len(wheels)} CUDA wheels: {libs})" if wheels else "")
        + f"; {len(packages)} packages"
    )


def summarize_environments(
    envs: Iterable[str], python: str | Path = sys.executable, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, str]:
    """Environment -> :func:`summarize` of its resolution (resolved in parallel), or
    ``NOT RESOLVED: <why>`` where pip could not resolve it."""
    out = {}
    for env, r in _each(envs, python, timeout).items():
        if isinstance(r, ResolveError):
            out[env] = "NOT RESOLVED: " + " | ".join(str(r).splitlines())
        else:
            out[env] = summarize(r, extra_requirements(env, with_project=False))
    return out


def gpu_environments() -> list[str]:
    """Every GPU environment: each adapter's ``environments["cuda"]`` and ONNX Runtime's."""
    from bench.adapters import adapter_class, framework_names
    from bench.envs import ORT_ENVIRONMENTS

    envs = [adapter_class(n).environments.get("cuda") for n in framework_names()]
    return [*dict.fromkeys(e for e in envs if e), ORT_ENVIRONMENTS["cuda"]]


if __name__ == "__main__":  # python -m bench.resolve [ENV ...]: the GPU environments
    for env, line in summarize_environments(sys.argv[1:] or gpu_environments()).items():
        print(f"{env}: {line}")
