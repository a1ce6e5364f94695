"""``xfbench bench --plan``: what a run would do, read before an hour is spent on it.

It prints the environments each worker group would use (with the packages their extras
ask for, and optionally what those resolve to on PyPI), the cases per group, the guards
that keep the numbers honest, and the expected time. It installs, builds and times
nothing, takes no lock and needs no GPU: on a machine without one it says where a GPU
run would stop. Everything printed is read from the code that the run itself uses (the
adapters' environments, the matrix, the worker environment, the driver check), so the
plan cannot drift from the run.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.envs import CUDA_MAJOR, DRIVER_FLOOR, REPO_ROOT, env_name, environments
from bench.matrix import ORT
from bench.resolve import extra_requirements

#: The guards of a GPU run, each with where it lives (so a reader can check it).
GPU_GUARDS = (
    "refused before any framework environment is created where nvidia-smi lists no "
    "visible GPU (bench/cli.py)",
    "a group whose CUDA libraries need a newer driver than this one is `unsupported` "
    "with the reason, its environment not installed (bench/envs.py: driver_shortfall)",
    "every native result is checked to live on the GPU, read off the result itself "
    "(Adapter.output_device), and to match the same model on the CPU "
    "(bench/suites/bench_models.py)",
    "ONNX Runtime: the CUDA provider required and checked first in the session, CPU "
    "fallback of single nodes disabled (session.disable_cpu_ep_fallback), TF32 off, "
    "inputs and outputs bound on the GPU; CUDA/cuDNN wheels loaded by "
    "onnxruntime.preload_dlls() (bench/ort.py)",
    "strict float32 everywhere (TF32 off: the worker environment above, torch's "
    "fp32 precision, JAX's matmul precision), convolution autotuning on in every "
    "framework (torch: cudnn.benchmark), TensorFlow's memory growth on "
    "(bench/adapters/)",
    "mxnet: a build that cannot run kernels on this GPU (its CUDA 11.2 build on a recent "
    "card) gives `unsupported` rows with the reason (bench/adapters/mxnet_adapter.py)",
)
#: Those of every run.
COMMON_GUARDS = (
    "one benchmark at a time on this machine (a lock; --allow-concurrent lifts it)",
    "each worker group in a process of its own, in its own environment; a crash or a "
    "hang costs one case (--case-timeout), never the run",
)


def _env_state(env: str) -> str:
    toxwork = os.environ.get("XFBENCH_TOX_WORKDIR") or str(REPO_ROOT / ".tox")
    return "present" if os.path.isdir(os.path.join(toxwork, env)) else "to be created"


def render(
    m: dict[str, Any],
    plan: Any,
    gpus: list[dict[str, Any]],
    *,
    worker_env: Callable[[int, list[str]], dict[str, str]],
    expected_time: str,
    resolved: dict[str, str] | None = None,
) -> str:
    """The plan of a ``RunPlan`` as text. ``gpus``: what nvidia-smi lists (may be
    empty); ``resolved``: environment -> a summary of its resolved packages."""
    devices = m["devices"]
    lines = [f"xfbench plan (nothing is installed, built or timed): devices {','.join(devices)}"]
    if "cuda" in devices:
        if gpus:
            for g in gpus:
                lines.append(
                    f"GPU: {g['name']}, driver {g['driver']} (runs CUDA {g['cuda']} at most), "
                    f"{g['memory_mib']} MiB"
                )
        else:
            lines.append(
                "GPU: none found (nvidia-smi missing or lists none): a run would stop here, "
                "before creating any framework environment; `tox -e bench-cpu` runs on the CPU"
            )
    groups = [*m["frameworks"], ORT]
    lines.append("")
    lines.append("Environments (tox; created on first use, from the pyproject.toml extra):")
    for group in groups:
        env = env_name(group, devices)
        note = ""
        if "cuda" in devices and "cuda" not in environments(group):
            note = "  [no GPU build: its cuda cases are reported unsupported]"
        elif env in CUDA_MAJOR:
            major = CUDA_MAJOR[env]
            note = f"  [CUDA {major}, NVIDIA driver >= {DRIVER_FLOOR[major]}]"
            reason = plan.gpu_blocked(group, devices)
            if reason:
                note += f"  [unsupported here: {reason}]"
        lines.append(f"  {group:<11} {env:<16} {_env_state(env):<13}{note}")
        lines.append(f"      {', '.join(extra_requirements(env, with_project=False))}")
        if resolved is not None and env in resolved:
            lines.append(f"      resolves to: {resolved[env]}")
    plans = plan.worker_plans(1)
    counts = plan.count()
    lines.append("")
    lines.append(
        f"Cases: {counts['cases']} in {counts['groups']} worker groups x {plan.repeat} "
        f"process(es) ({counts['timing_processes']} timing processes), then "
        f"{counts['cold_processes']} cold-start processes"
    )
    for wp in plans:
        phases = Counter(c.phase for c in wp.expected)
        by_phase = ", ".join(f"{phase} {n}" for phase, n in sorted(phases.items()))
        lines.append(
            f"  {wp.group:<11} {wp.threads} thread(s): {len(wp.expected)} cases ({by_phase})"
        )
    lines.append(
        f"  models {','.join(m['models'])}; batch sizes {','.join(map(str, m['batch_sizes']))}"
    )
    lines.append("")
    lines.append("Guards:")
    base = worker_env(plan.threads[0], ["cpu"])
    env = worker_env(plan.threads[0], devices)
    every = {k: v for k, v in base.items() if os.environ.get(k) != v and not k.startswith("XF")}
    gpu_only = {k: v for k, v in env.items() if base.get(k) != v}

    def listed(values: dict[str, str]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))

    lines.append(f"  - every worker's environment sets {listed(every)}")
    if gpu_only:
        lines.append(f"  - and on the GPU {listed(gpu_only)}")
    if plan.repeat > 1:
        lines.append(
            f"  - each case timed in {plan.repeat} interleaved processes; the report gives "
            "intervals and flags cases whose processes disagree or whose machine was busy"
        )
    else:
        lines.append(
            "  - each case timed in one process: no interval across processes, so the "
            "numbers are provisional (--repeat 3 adds processes)"
        )
    chosen = set(m["frameworks"])
    gpu = [g for g in GPU_GUARDS if g.split(":")[0] not in {"mxnet"} - chosen]
    for guard in (*COMMON_GUARDS, *(gpu if "cuda" in devices else ())):
        lines.append(f"  - {guard}")
    lines.append("")
    lines.append(expected_time)
    return "\n".join(lines)
