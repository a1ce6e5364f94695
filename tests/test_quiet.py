"""A quiet machine: the load meter sees other processes (and not the benchmark's own
work), and a second benchmark cannot start while one is timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import load
from bench.cli import main
from bench.lock import BenchRunningError, machine_lock

needs_proc = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat (Linux)")

SPIN = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass\n"


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@needs_proc
def test_another_process_spinning_is_seen_and_our_own_work_is_not():
    before = load.snapshot()
    time.sleep(0.5)
    if load.busy(load.other_load(before, load.snapshot())):
        pytest.skip("the machine is busy with other work: the meter cannot be checked now")
    # One other process keeps a CPU busy for the whole window: about 1.0 CPU elsewhere.
    other = subprocess.Popen([sys.executable, "-c", SPIN.format(s=3.0)])
    try:
        time.sleep(0.3)  # let it start
        before = load.snapshot()
        time.sleep(1.5)
        seen = load.other_load(before, load.snapshot())
    finally:
        other.wait()
    assert seen["other_cpus"] is not None and seen["other_cpus"] > 0.6, seen
    assert load.busy(seen)
    # This process spinning is its own work, not the machine's load.
    before = load.snapshot()
    spin(1.5)
    own = load.other_load(before, load.snapshot())
    assert own["other_cpus"] < 0.6, own


def test_load_without_proc_stat_is_none(monkeypatch, tmp_path):
    monkeypatch.setattr(load, "_STAT", tmp_path / "missing")
    assert load.snapshot() is None
    assert load.other_load(None, None) == {"other_cpus": None, "steal_cpus": None}
    assert not load.busy({"other_cpus": None, "steal_cpus": None})


def test_machine_stat_line_parsed(tmp_path):
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {hz} 0 {hz} 500 7 0 0 {3 * hz} 0 0\ncpu0 1 2 3\n")
    assert load._machine_seconds(stat) == (2.0, 3.0)
    stat.write_text("intr 1 2 3\n")
    assert load._machine_seconds(stat) is None


def test_a_second_bench_is_refused_and_names_the_first(tmp_path):
    path = tmp_path / "bench.lock"
    with machine_lock(tmp_path / "reports", path) as held:
        assert held == path
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["run"].endswith("reports")
        refused = pytest.raises(BenchRunningError, match=rf"pid {os.getpid()}.*Wait for it")
        with refused, machine_lock(tmp_path / "other", path):
            pass
    # Released: the next one gets it.
    with machine_lock(tmp_path / "other", path) as held:
        assert held == path


def test_a_killed_bench_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "bench.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from bench.lock import machine_lock\n"
            f"with machine_lock(Path('x'), Path({str(path)!r})):\n"
            "    print('held', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = pytest.raises(BenchRunningError, match=f"pid {holder.pid}")
        with refused, machine_lock(Path("y"), path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with machine_lock(Path("y"), path) as held:  # the kernel released it
        assert held == path


def test_bench_command_refuses_to_run_beside_another(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XFBENCH_LOCK_DIR", str(tmp_path))
    from bench.lock import lock_path

    with machine_lock(tmp_path / "first", lock_path()):
        code = main(
            ["bench", "-f", "torch", "--out", str(tmp_path / "r"), "--artifacts", str(tmp_path)]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "another xfbench bench" in err and f"pid {os.getpid()}" in err
    assert not (tmp_path / "r").exists()  # nothing started, no run folder
