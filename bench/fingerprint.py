"""The environment fingerprint recorded with every result.

Machine facts (CPU model, cores, memory, GPU, driver, CUDA) come from the orchestrator;
each worker adds its framework's library versions and the thread settings it ran with.
Nothing here imports a framework.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.threads import available_cpus, recorded_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Variables that change how fast the frameworks' kernels run.
PERF_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "TF_ENABLE_ONEDNN_OPTS",
    "MXNET_OMP_MAX_THREADS",
    "MXNET_CPU_WORKER_NTHREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "PJRT_NPROC",
    "XLA_FLAGS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "NVIDIA_TF32_OVERRIDE",
    "MXNET_CUDA_ALLOW_TENSOR_CORE",
    "TF_FORCE_GPU_ALLOW_GROWTH",
)


@dataclass(frozen=True)
class Gpu:
    name: str
    driver: str
    memory_mib: int
    cuda: str


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores, phys = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            phys = value.strip()
        elif key.strip() == "core id":
            cores.add((phys, value.strip()))
    return len(cores) or None


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def parse_nvidia_smi(csv_text: str, cuda: str) -> list[Gpu]:
    """Rows of ``nvidia-smi --query-gpu=name,driver_version,memory.total
    --format=csv,noheader,nounits``."""
    gpus = []
    for line in csv_text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0]:
            try:
                memory = int(float(parts[2]))
            except ValueError:
                memory = 0
            gpus.append(Gpu(name=parts[0], driver=parts[1], memory_mib=memory, cuda=cuda))
    return gpus


def parse_cuda_version(smi_banner: str) -> str:
    """The ``CUDA Version: 12.4`` that plain ``nvidia-smi`` prints (the driver's)."""
    marker = "CUDA Version:"
    if marker in smi_banner:
        return smi_banner.split(marker, 1)[1].split()[0].strip(" |")
    return "unknown"


def visible_gpus(gpus: list[Gpu], mask: str | None) -> list[Gpu]:
    """The GPUs a CUDA program sees under ``CUDA_VISIBLE_DEVICES=mask``, in its order.
    nvidia-smi ignores the mask and lists GPUs in PCI bus order, which is the order CUDA
    numbers them in only under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: the benchmark's workers
    run with it (bench/runner.py). CUDA stops at the first index that names no GPU; a
    mask of UUIDs is not resolved here (the list is left as nvidia-smi gives it)."""
    if mask is None:
        return gpus
    out = []
    for part in (p.strip() for p in mask.split(",")):
        if not part.isdigit():
            if part.startswith(("GPU-", "MIG-")):
                return gpus
            break
        if int(part) >= len(gpus):
            break
        out.append(gpus[int(part)])
    return out


def detect_gpus(respect_mask: bool = True) -> list[Gpu]:
    """NVIDIA GPUs through nvidia-smi that this process's CUDA programs may use (see
    :func:`visible_gpus`); empty without a driver, a GPU, or with none visible."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        query = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        banner = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = parse_nvidia_smi(query.stdout, parse_cuda_version(banner))
    if not respect_mask:
        return gpus
    return visible_gpus(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def git_commit() -> dict[str, Any]:
    """The checked-out commit, whether the tree differs from it, and the commit's
    committer date in UTC (``commit_time``): the results history orders a machine's runs
    by it, since a run's own start time says when it ran, not which code it measured."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "commit_time": commit_time_utc(git("show", "-s", "--format=%cI", "HEAD")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None, "commit_time": None}


def commit_time_utc(iso: str) -> str | None:
    """git's strict ISO 8601 date (``%cI``, in the committer's own offset) in UTC, as
    ``2026-11-26T07:07:46+00:00``; None for anything else."""
    from datetime import UTC, datetime

    try:
        return datetime.fromisoformat(iso.strip()).astimezone(UTC).isoformat()
    except ValueError:
        return None


def machine() -> dict[str, Any]:
    """What the orchestrator records once per run."""
    gpus = detect_gpus()
    return {
        "host": socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "available_cpus": available_cpus(),  # affinity and cgroup quota: the default threads
        "physical_cores": physical_cores(),
        "memory_gib": memory_gib(),
        "gpus": [g.__dict__ for g in gpus],
        "git": git_commit(),
        "env": {k: os.environ[k] for k in PERF_ENV if k in os.environ},
        "thread_settings": recorded_settings(),
    }
