"""The thread policy, in one place: how many threads a run uses by default, what a
worker process is told before its framework loads, and which settings are recorded.

Every framework gets the same intra-op thread count, set before it starts its pools
(each adapter's ``set_threads`` does the framework's own part). The default is the
number of CPUs this process may actually use: its affinity mask, further capped by a
cgroup CPU quota (a container limited to 2 CPUs on a 64-core host must not run 64
threads). ``os.cpu_count()`` answers neither.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: Variables that change how idle OpenMP threads wait (spin or sleep) between parallel
#: regions: they move small-batch latencies by tens of microseconds, so every worker
#: records them (unset means the runtime's default).
WAIT_POLICY_ENV = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "KMP_AFFINITY", "GOMP_SPINCOUNT")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``);
    ``None`` where there is no quota or it cannot be read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def thread_env(threads: int) -> dict[str, str]:
    """The variables OpenMP, MKL and OpenBLAS read when a framework loads: a worker
    process gets them before any framework is imported."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def recorded_settings() -> dict[str, str]:
    """The wait-policy variables as this process sees them ("unset" where unset)."""
    return {k: os.environ.get(k, "unset") for k in WAIT_POLICY_ENV}
