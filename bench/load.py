"""Was the machine quiet? The CPU time other processes used while a case was timed.

A benchmark process sharing its cores with anything else (a second benchmark, a build,
a browser, a noisy neighbour on a VM host) runs slower by an amount no statistic of its
own rounds can reveal: every round is slowed alike (two earlier runs on the development
VM that overlapped other benchmark runs differed by up to 1.9x on the same build). So
every timed case records, next to its rounds, how much CPU the rest of the machine
used meanwhile:

* ``other_cpus``: CPUs kept busy by other processes, on average over the timed calls
  (the whole machine's busy time from ``/proc/stat`` minus this process's own CPU time,
  divided by the wall time). 0 is a quiet machine; 1.0 is one core's worth of
  competition.
* ``steal_cpus``: CPUs the hypervisor gave to other guests while this one wanted them
  (``steal`` in ``/proc/stat``). A host that runs the VM's CPUs slower for a while
  shows in neither (see the README, "A quiet machine").

Both are ``None`` where ``/proc/stat`` does not exist (not Linux). The kernel counts in
clock ticks (usually 10 ms), so a reading is good to about ``0.02 / wall`` CPUs: the
report compares them with :data:`BUSY_CPUS`, far above that for any timed case.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

#: A case timed while other processes used more than this many CPUs (on average), or
#: while the hypervisor stole as much, is marked as timed on a busy machine.
BUSY_CPUS = 0.25

_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy: float  # seconds of CPU the whole machine spent not idle (steal excluded)
    steal: float
    own: float  # seconds of CPU this process used (all its threads)


def _machine_seconds(stat: Path | None = None) -> tuple[float, float] | None:
    """(busy, steal) seconds of the whole machine since boot; ``None`` off Linux."""
    try:
        with (stat or _STAT).open() as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    # already inside user and nice.
    ticks += [0] * (8 - len(ticks))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def snapshot() -> Snapshot | None:
    machine = _machine_seconds()
    if machine is None:
        return None
    t = os.times()
    return Snapshot(time.perf_counter(), machine[0], machine[1], t.user + t.system)


def other_load(start: Snapshot | None, end: Snapshot | None) -> dict[str, float | None]:
    """``other_cpus`` and ``steal_cpus`` between two snapshots (see the module's text)."""
    if start is None or end is None or end.wall <= start.wall:
        return {"other_cpus": None, "steal_cpus": None}
    wall = end.wall - start.wall
    others = (end.busy - start.busy) - (end.own - start.own)
    return {
        "other_cpus": round(max(0.0, others) / wall, 3),
        "steal_cpus": round(max(0.0, end.steal - start.steal) / wall, 3),
    }


def busy(load: dict) -> bool:
    """Whether a case's recorded load marks it as timed on a busy machine."""
    return any((load.get(k) or 0.0) > BUSY_CPUS for k in ("other_cpus", "steal_cpus"))
