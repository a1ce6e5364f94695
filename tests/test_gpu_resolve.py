"""The GPU environments resolve, to CUDA builds with one CUDA major each.

Every GPU environment (each adapter's ``environments["cuda"]`` and ONNX Runtime's) is
resolved with ``pip install --dry-run --report`` (bench/resolve.py): nothing is installed
and no GPU is needed, but the package index is. Where PyPI cannot be reached these tests
fail, since CI has it; ``XFBENCH_OFFLINE=1`` turns that into a skip. The reading of CUDA
majors is tested first, on hand-written sets, without the network.
"""

from __future__ import annotations

import os
import re
import stat
import sys

import pytest

from bench import resolve as R
from bench.adapters import adapter_class, framework_names
from bench.envs import CUDA_MAJOR, ORT_ENVIRONMENTS

#: GPU environment -> the framework whose adapter names it.
GPU_FRAMEWORKS = {
    adapter_class(n).environments["cuda"]: n
    for n in framework_names()
    if "cuda" in adapter_class(n).environments
}
ORT_GPU_ENV = ORT_ENVIRONMENTS["cuda"]
GPU_ENVS = [*GPU_FRAMEWORKS, ORT_GPU_ENV]
#: Frameworks whose CUDA major must be ONNX Runtime's: one driver floor for the three.
SAME_CUDA_AS_ORT = ("torch", "jax")


# -- the reading of a resolved set, without the network -----------------------------------
@pytest.mark.parametrize(
    "name, version, major",
    [
        # CUDA 12 and older: the -cuNN suffix names the major.
        ("nvidia-cuda-runtime-cu12", "12.9.79", 12),
        ("nvidia_cublas_cu11", "11.11.3.6", 11),
        ("nvidia-cudnn-cu12", "9.3.0.75", 12),
        ("nvidia-cufft-cu12", "11.4.1.4", 12),
        # CUDA 13: no suffix; toolkit-versioned wheels carry the major in their version...
        ("nvidia-cuda-runtime", "13.0.96", 13),
        ("nvidia-cuda-nvrtc", "13.5.37", 13),
        ("nvidia-cublas", "13.1.1.3", 13),
        ("nvidia-nvjitlink", "13.5.37", 13),
        ("cuda-toolkit", "13.0.3.0", 13),
        # ... libraries versioned on their own say nothing ...
        ("nvidia-cufft", "12.0.0.61", None),
        ("nvidia-curand", "10.4.0.35", None),
        ("nvidia-cusparse", "12.6.3.3", None),
        ("nvidia-cufile", "1.15.1.6", None),
        ("cuda-pathfinder", "1.9.1", None),
        # ... and cuDNN, NCCL and friends keep a -cu13 suffix.
        ("nvidia-cudnn-cu13", "9.20.0.48", 13),
        ("nvidia-nccl-cu13", "2.29.7", 13),
        ("nvidia-cusparselt-cu13", "0.8.1", 13),
        # Builds named after their CUDA.
        ("jax-cuda13-plugin", "0.10.2", 13),
        ("jax-cuda12-pjrt", "0.10.2", 12),
        ("mxnet-cu112", "1.9.1", 11),
        ("mxnet-cu92", "1.5.0", 9),
        ("mxnet-cu102mkl", "1.6.0", 10),
        ("cupy-cuda12x", "13.3.0", 12),
        ("torch", "2.5.1+cu121", 12),
        ("torch", "1.13.1+cu117", 11),
        ("jaxlib", "0.4.20+cuda12.cudnn89", 12),
        # Nothing about CUDA.
        ("torch", "2.13.0+cpu", None),
        ("torch", "2.13.0", None),
        ("mxnet", "1.9.1", None),
        ("onnxruntime-gpu", "1.31.1", None),
        ("nvidia-ml-py", "13.580.82", None),
        ("numpy", "2.4.6", None),
    ],
)
def test_cuda_major_of_a_distribution(name, version, major):
    assert R.cuda_major(name, version) == major


# Hand-written resolved sets in both naming schemes (as pip resolved them).
CUDA13_SET = {
    "onnxruntime-gpu": "1.31.1",
    "numpy": "2.4.6",
    "nvidia-cuda-runtime": "13.5.37",
    "nvidia-cuda-nvrtc": "13.5.37",
    "nvidia-cudnn-cu13": "9.28.1.4",
    "nvidia-cufft": "12.5.0.14",
    "nvidia-curand": "10.4.5.25",
}
CUDA12_SET = {
    "tensorflow": "2.21.0",
    "nvidia-cuda-runtime-cu12": "12.9.79",
    "nvidia-cudnn-cu12": "9.28.0.42",
    "nvidia-cufft-cu12": "11.4.1.4",
    "nvidia-nccl-cu12": "2.32.3",
}


def test_cuda_majors_of_resolved_sets():
    assert R.cuda_majors(CUDA13_SET) == {
        13: [
            "nvidia-cuda-nvrtc 13.5.37",
            "nvidia-cuda-runtime 13.5.37",
            "nvidia-cudnn-cu13 9.28.1.4",
        ]
    }
    assert list(R.cuda_majors(CUDA12_SET)) == [12]
    assert sorted(R.cuda_majors({**CUDA12_SET, **CUDA13_SET})) == [12, 13]
    assert R.cuda_majors({"mxnet-cu112": "1.9.1", "numpy": "1.23.5"}) == {11: ["mxnet-cu112 1.9.1"]}
    assert R.cuda_majors({"torch": "2.13.0+cpu", "numpy": "2.4.6"}) == {}
    assert R.cuda_wheels(CUDA13_SET) == sorted(n for n in CUDA13_SET if n.startswith("nvidia-"))


def _dist(name, version, requires=(), requested=False, extras=None, url=None):
    item = {
        "metadata": {"name": name, "version": version, "requires_dist": list(requires)},
        "download_info": {"url": url or f"https://files.pythonhosted.org/x/{name}.whl"},
        "requested": requested,
    }
    if extras:
        item["requested_extras"] = extras
    return item


# A pip installation report in miniature: extras propagate (jax[cuda13] ->
# jax-cuda13-plugin[with-cuda] -> the CUDA wheels), markers are evaluated.
REPORT = {
    "version": "1",
    "environment": {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"},
    "install": [
        _dist(
            "jax",
            "0.10.2",
            ["numpy>=2.0", 'jax-cuda13-plugin[with-cuda]==0.10.2; extra == "cuda13"'],
            requested=True,
            extras=["cuda13"],
            url="file:///opt/pypi/files/jax-0.10.2-py3-none-any.whl",
        ),
        _dist(
            "jax-cuda13-plugin",
            "0.10.2",
            [
                'nvidia-cuda-runtime>=13.0.48; sys_platform == "linux" and extra == "with-cuda"',
                'nvidia-cudnn-cu13<10,>=9.12; sys_platform == "win32" and extra == "with-cuda"',
            ],
        ),
        _dist("nvidia-cuda-runtime", "13.5.37"),
        _dist("nvidia_cudnn_cu13", "9.28.1.4"),  # not the plugin's (win32 only): torch's
        _dist("numpy", "2.4.6", requested=True),
        _dist(
            "torch", "2.13.0", ["numpy", 'nvidia-cudnn-cu13==9.28.1.4; platform_system == "Linux"']
        ),
    ],
}


def test_reads_a_pip_report():
    packages = R._packages(REPORT)
    assert packages["jax"].requires == ("jax-cuda13-plugin", "numpy")
    assert packages["jax-cuda13-plugin"].requires == ("nvidia-cuda-runtime",)
    assert packages["torch"].requires == ("numpy", "nvidia-cudnn-cu13")
    assert packages["jax"].requested and not packages["jax-cuda13-plugin"].requested
    assert packages["jax"].source == "/opt/pypi/files"
    assert packages["numpy"].source == "PyPI"
    assert set(R.dependencies(packages, "jax")) == {
        "jax",
        "jax-cuda13-plugin",
        "nvidia-cuda-runtime",
        "numpy",
    }
    line = R.summarize(packages, ["jax[cuda13]>=0.10", "numpy"])
    assert line.startswith("jax 0.10.2 (from /opt/pypi/files), numpy 2.4.6; CUDA 13 (2 CUDA")
    mixed = {**packages, "nvidia-cublas-cu12": R.Package("nvidia-cublas-cu12", "12.9", "", False)}
    assert "MIXED CUDA 12 + 13" in R.summarize(mixed)


def test_reads_an_extra_from_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "xfbench"\ndependencies = ["numpy>=1.23"]\n'
        '[project.optional-dependencies]\nonnx = ["onnx>=1.16"]\n'
        'gpu = ["torch===2.13.0", "xfbench[onnx]"]\n'
    )
    assert R.extra_requirements("gpu", pyproject) == ["numpy>=1.23", "torch===2.13.0", "onnx>=1.16"]
    assert R.extra_requirements("gpu", pyproject, with_project=False)[0] == "torch===2.13.0"
    with pytest.raises(KeyError, match="no extra 'nope'; its extras: gpu, onnx"):
        R.extra_requirements("nope", pyproject)
    for env in GPU_ENVS:  # every GPU environment is an extra of the real pyproject
        assert R.extra_requirements(env, with_project=False)


def _fake_python(tmp_path, output: str, code: int = 1) -> str:
    """An interpreter whose `-m pip` prints ``output`` and exits with ``code``."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for pip")
def test_resolution_errors_say_what_failed(tmp_path):
    with pytest.raises(R.ResolveError, match="has no pip"):
        R.resolve(["torch"], _fake_python(tmp_path, "/x/python: No module named pip"))
    offline = (
        "WARNING: Location 'file:///opt/pypi/simple/torch/' is ignored: it is neither a file\n"
        "WARNING: Retrying (Retry(total=1)) after connection broken by 'NameResolutionError'\n"
        "WARNING: Retrying (Retry(total=0)) after connection broken by 'NameResolutionError'\n"
        "ERROR: No matching distribution found for torch===2.13.0"
    )
    with pytest.raises(R.ResolveError, match="could not be reached") as err:
        R.resolve(["torch===2.13.0"], _fake_python(tmp_path, offline))
    assert err.value.network
    assert "No matching distribution found" in str(err.value)
    assert "is ignored" not in str(err.value)  # the host's noise is left out,
    assert str(err.value).count("Retrying") == 1  # and all but the last retry
    conflict = "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/"
    with pytest.raises(R.ResolveError, match="no set of versions") as err:
        R.resolve(["a", "b"], _fake_python(tmp_path, conflict))
    assert not err.value.network
    with pytest.raises(R.ResolveError, match="no interpreter"):
        R.resolve(["torch"], tmp_path / "missing" / "python")
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 10\n")
    slow.chmod(0o755)
    with pytest.raises(R.ResolveError, match="did not finish within 1 s") as err:
        R.resolve(["torch"], slow, timeout=1)
    assert err.value.network


def test_gpu_environments_are_the_adapters():
    assert R.gpu_environments() == GPU_ENVS
    assert set(GPU_FRAMEWORKS) >= {"torch-gpu", "tensorflow-gpu", "mxnet-gpu", "jax-gpu"}


# -- the real resolutions (PyPI) ----------------------------------------------------------
@pytest.fixture(scope="module")
def resolved() -> dict[str, dict[str, R.Package]]:
    """Every GPU environment resolved (in parallel: about a minute on PyPI)."""
    offline_ok = os.environ.get("XFBENCH_OFFLINE") == "1"
    # Where offline is allowed, pip retries once (its retry warning is what tells an
    # unreachable index from a conflict) instead of five times with back-off.
    try:
        return R.resolve_environments(GPU_ENVS, pip_args=["--retries", "1"] if offline_ok else [])
    except R.ResolveError as exc:
        error = exc
    if error.network and offline_ok:
        pytest.skip(f"XFBENCH_OFFLINE=1: PyPI cannot be reached to resolve {GPU_ENVS}")
    pytest.fail(
        "the GPU environments must resolve; this needs the package index (PyPI), which "
        "CI has (set XFBENCH_OFFLINE=1 to skip where it cannot be reached):\n" + str(error),
        pytrace=False,
    )


def _framework_build(env: str, packages: dict[str, R.Package]) -> R.Package:
    """The framework's distribution in ``env``: its canonical name or a build alias."""
    cls = adapter_class(GPU_FRAMEWORKS[env])
    canonical = cls.distributions[0]
    names = [R.canonical(n) for n in (canonical, *cls.distribution_aliases.get(canonical, ()))]
    found = [packages[n] for n in names if n in packages]
    assert len(found) == 1, f"{env}: expected one of {names}, resolved {sorted(packages)}"
    return found[0]


@pytest.mark.parametrize("env", list(GPU_FRAMEWORKS))
def test_framework_is_a_cuda_build(resolved, env):
    packages = resolved[env]
    summary = f"{env} resolves to: {R.summarize(packages)}"
    fw = GPU_FRAMEWORKS[env]
    build = _framework_build(env, packages)
    assert not build.local.startswith("cpu"), f"{build.name} {build.version} is a CPU build"
    own = R.dependencies(packages, build.name)  # the framework and what it pulls in
    assert R.cuda_majors(own), f"{build.name} {build.version} pulls no CUDA build\n{summary}"
    if fw in ("torch", "tensorflow"):
        assert R.cuda_wheels(own), f"{build.name} pulls no NVIDIA CUDA wheels\n{summary}"
    if fw == "jax":
        plugins = [n for n in own if re.fullmatch(r"jax-cuda\d+-plugin", n)]
        assert plugins, f"jax pulls no jax-cudaNN-plugin\n{summary}"
    if fw == "mxnet":
        assert re.fullmatch(r"mxnet-cu\d+", build.name), f"{build.name}: not a CUDA build"
    # The framework's own ONNX Runtime is the CPU build: the GPU one is onnxruntime-gpu's.
    assert "onnxruntime" in packages, summary
    assert "onnxruntime-gpu" not in packages, summary


def test_onnxruntime_gpu_has_its_cuda_wheels(resolved):
    packages = resolved[ORT_GPU_ENV]
    summary = R.summarize(packages)
    assert "onnxruntime-gpu" in packages, summary
    assert "onnxruntime" not in packages, summary  # the two share `import onnxruntime`
    own = R.dependencies(packages, "onnxruntime-gpu")
    assert "nvidia-cuda-runtime" in own or any(
        n.startswith("nvidia-cuda-runtime-cu") for n in own
    ), summary
    assert any(n.startswith("nvidia-cudnn") for n in own), summary


@pytest.mark.parametrize("env", GPU_ENVS)
def test_one_cuda_major_per_environment(resolved, env):
    majors = R.cuda_majors(resolved[env])
    assert len(majors) == 1, f"{env} mixes CUDA majors: {majors}"
    assert next(iter(majors)) == CUDA_MAJOR[env], (
        f"{env} resolves to CUDA {next(iter(majors))}, bench/envs.py's CUDA_MAJOR says "
        f"{CUDA_MAJOR[env]}: {majors}"
    )


def test_onnxruntime_gpu_shares_torch_and_jax_cuda_major(resolved):
    def major(env: str) -> int:
        (m,) = R.cuda_majors(resolved[env])
        return m

    envs = {fw: env for env, fw in GPU_FRAMEWORKS.items()}
    ort = major(ORT_GPU_ENV)
    for fw in SAME_CUDA_AS_ORT:
        assert major(envs[fw]) == ort, (
            f"{envs[fw]} is CUDA {major(envs[fw])} and {ORT_GPU_ENV} CUDA {ort}: one CUDA "
            "major keeps one driver floor"
        )
