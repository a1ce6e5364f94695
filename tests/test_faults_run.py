"""Faults of a running benchmark, through the real command line and real processes:
Ctrl-C, SIGTERM and SIGKILL at the orchestrator, a broken framework environment, an
unwritable output folder, a second run, and the test hooks staying out of users' way.

The runs time the known-clock adapter (``bench/adapters/clock_adapter.py``), whose cases
cost microseconds and need no framework; a case told to hang (the ``XFBENCH_FAULT`` test
hook) keeps the run busy until the test interrupts it. The clock adapter cannot be
trained, so the driver stands the zoo stage down (it builds nothing); everything after
it, from the worker processes to the report, is the real code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.adapters import FrameworkNotInstalledError
from bench.cli import UsageError, latest_run, main, writable_dir
from bench.rundir import INCOMPLETE, NOT_FINISHED, incomplete_reason, mark_incomplete
from bench.weights import save_weights
from models.spec import get_spec

CLOCK = "clock=bench.adapters.clock_adapter:ClockAdapter"
HANG = "clock-mlp-async-inference-cpu-b100-t1"  # the last batch size: earlier cases finish
REPO = Path(__file__).resolve().parent.parent

DRIVER = textwrap.dedent(
    """
    import sys
    import bench.cli as cli
    cli.run_zoo = lambda *a, **k: ([], [])  # the clock adapter cannot be trained
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.fixture
def clock_env(tmp_path, monkeypatch) -> dict[str, str]:
    spec = get_spec("mlp")
    weights = tmp_path / "artifacts" / "clock" / "mlp" / "weights.npz"
    save_weights(weights, spec, spec.init_weights(0))
    return {
        **os.environ,
        "XFBENCH_ADAPTERS": CLOCK,
        "XFBENCH_TEST_HOOKS": "1",
        "XFBENCH_FAULT": f"hang:{HANG}",
        "XFBENCH_LOCK_DIR": str(tmp_path),  # not the machine's lock: tests may overlap
        "PYTHONPATH": str(REPO),
    }


def _start(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    argv = [
        "bench", "-f", "clock", "-m", "mlp", "-b", "5,100", "-t", "1", "--quick",
        "--min-rounds", "3", "--max-time", "0.02", "--cold-starts", "0", "--quiet",
        "--out", str(tmp_path / "reports"), "--artifacts", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the test signals this run alone, as a terminal would
    )


def _records(run: Path) -> list[dict]:
    out = []
    for f in sorted((run / "raw").glob("clock-*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def _wait_for_hang(tmp_path: Path, proc: subprocess.Popen, timeout: float = 60) -> tuple[Path, int]:
    """The run folder and the timing worker's pid, once the hanging case has started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        for run in (tmp_path / "reports").glob("*-cpu*"):
            recs = _records(run)
            if any(r.get("event") == "start" and r.get("case_id") == HANG for r in recs):
                worker = next(r for r in recs if r.get("event") == "worker")
                return run, worker["pid"]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the hanging case never started")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and ") Z " in Path(f"/proc/{pid}/stat").read_text():
            return True  # dead, waiting to be reaped by init
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "Ctrl-C (SIGINT)"), (signal.SIGTERM, "SIGTERM")]
)
def test_an_interrupted_run_stops_its_workers_and_is_marked_incomplete(
    tmp_path, clock_env, signum, said
):
    proc = _start(tmp_path, clock_env)
    run, worker = _wait_for_hang(tmp_path, proc)
    # Twice, as a Ctrl-C under tox arrives (from the terminal and forwarded by tox): the
    # second must not cut the report short.
    proc.send_signal(signum)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, out
    assert _gone(worker), "the timing worker outlived the interrupted run"
    reason = incomplete_reason(run)
    assert reason and reason.startswith(f"interrupted by {said} during timing 1/"), reason
    assert f"{run} is marked incomplete" in out
    # Its report says so first, and that a test hook was at work.
    report = (run / "report.md").read_text()
    top = report[: report.index("## How to read this report")]
    assert "**This run is incomplete:**" in top and said in top
    assert "**Test hooks were active in" in top and f"XFBENCH_FAULT=hang:{HANG}" in top
    # What finished is kept, and "latest run" does not pick the incomplete one.
    finished = [r for r in _records(run) if r.get("event") == "end" and r["status"] == "ok"]
    assert finished and HANG not in {r["case_id"] for r in finished}
    with pytest.raises(UsageError, match=r"no finished run .* name one to report it anyway"):
        latest_run(tmp_path / "reports")


def test_a_killed_orchestrator_takes_its_workers_with_it(tmp_path, clock_env):
    """SIGKILL leaves the orchestrator no chance to clean up: the workers watch it."""
    proc = _start(tmp_path, clock_env)
    run, worker = _wait_for_hang(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(worker), "the timing worker outlived the killed run"
    assert incomplete_reason(run) == NOT_FINISHED  # the marker written at the start


def test_latest_run_skips_incomplete_runs_unless_named(tmp_path, capsys):
    older, newer = tmp_path / "20260101-000000-a", tmp_path / "20260101-000001-b"
    for d in (older, newer):
        (d / "raw").mkdir(parents=True)
    os.utime(older, (1, 1))
    mark_incomplete(newer, "interrupted by SIGTERM during timing 2/6")
    assert latest_run(tmp_path) == older
    out = capsys.readouterr().out  # which run, and which were passed over, and why
    assert f"reporting the newest finished run, {older}" in out
    assert f"skipped {newer.name}: interrupted by SIGTERM during timing 2/6" in out
    (older / INCOMPLETE).write_text("{not json")  # a damaged marker still means incomplete
    assert incomplete_reason(older) == NOT_FINISHED
    with pytest.raises(UsageError, match=r"2 incomplete .*xfbench report"):
        latest_run(tmp_path)


def test_a_broken_environment_names_the_fix(tmp_path, monkeypatch):
    from bench import envs

    monkeypatch.delenv("XFBENCH_TOX_WORKDIR", raising=False)
    monkeypatch.setattr(envs, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(envs, "is_installed", lambda fw: False)
    python = tmp_path / ".tox" / "mxnet" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(tmp_path / "python3.10-that-was-removed")
    with pytest.raises(FrameworkNotInstalledError, match=r"dangling link.*`tox -e mxnet -r"):
        envs.interpreter_for("mxnet")
    python.unlink()
    python.write_text("#!/bin/sh\n")
    python.chmod(0o644)
    with pytest.raises(FrameworkNotInstalledError, match=r"is not executable.*-r --notest"):
        envs.interpreter_for("mxnet")


def test_an_unwritable_output_folder_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XFBENCH_LOCK_DIR", str(tmp_path))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UsageError, match=r"cannot write the run folders to .*--out"):
        writable_dir(blocker / "reports", "run folders", "--out")
    code = main(["bench", "-f", "sklearn", "-m", "mlp", "--out", str(blocker / "reports")])
    assert code == 2
    assert "choose another folder with --out" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/raw"))
    code = main(["zoo", "-f", "sklearn", "--artifacts", str(blocker / "artifacts")])
    assert code == 2
    assert "cannot write the trained models to" in capsys.readouterr().err


def test_a_second_run_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    from bench.lock import machine_lock

    monkeypatch.setenv("XFBENCH_LOCK_DIR", str(tmp_path))
    with machine_lock(tmp_path / "first-run"):
        assert main(["bench", "-f", "sklearn", "-m", "mlp", "--out", str(tmp_path)]) == 2
        assert "is timing on this machine" in capsys.readouterr().err
        # Allowed, it gets past the lock to the next check (an output folder that
        # cannot be made: under a file).
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        argv = ["bench", "-f", "sklearn", "-m", "mlp", "--out", str(blocker / "reports")]
        code = main([*argv, "--allow-concurrent"])
        err = capsys.readouterr().err
        assert code == 2 and "--allow-concurrent" in err and "cannot write the run" in err
    # Options are checked before the lock is even looked at: sklearn has no cnn.
    with machine_lock(tmp_path / "first-run"):
        assert main(["bench", "-f", "sklearn", "-m", "cnn"]) == 2
        assert "nothing to time" in capsys.readouterr().err


def test_test_hooks_act_only_when_the_test_suite_enables_them(tmp_path, clock_env):
    """A stray XFBENCH_FAULT in a user's shell is ignored, and the run says so."""
    env = {**clock_env, "XFBENCH_TEST_HOOKS": ""}
    proc = _start(tmp_path, env)
    out, _ = proc.communicate(timeout=120)
    assert "XFBENCH_FAULT is set but ignored" in out
    # The console: progress with cases done and time left, a summary, the answers; no
    # pytest-benchmark tables (they are in the workers' logs; --verbose shows them).
    assert "; 13/13 cases" in out and "left" in out
    assert "xfbench: finished in 0 min" in out and "13 measurements" in out
    assert "xfbench: fastest: mlp at batch 5: fastest clock " in out
    assert "Name (time in" not in out and "passed in" not in out
    assert "expected time: about" in out and "an estimate from the matrix" in out
    # The run folder (before the second run below), and beside it the results history the
    # finished run was added to.
    (run,) = [d for d in (tmp_path / "reports").iterdir() if d.is_dir()]
    assert (tmp_path / "reports" / "history.db").is_file()
    assert "xfbench: added to the history" in out, out[-2000:]
    ends = {r["case_id"]: r for r in _records(run) if r.get("event") == "end"}
    assert ends[HANG]["status"] == "ok"
    assert incomplete_reason(run) is None
    assert json.loads((run / "fingerprint.json").read_text())["test_hooks"] == {}
    report = (run / "report.md").read_text()
    assert "Test hooks were active" not in report and "incomplete" not in report

    # The next run of the same plan quotes how long this one took.
    again = _start(tmp_path, env)
    out, _ = again.communicate(timeout=120)
    assert f"as the last run of this plan on this host took ({run.name};" in out, out

    # A model the bench could not build: the report names the recorded cause.
    fp = json.loads((run / "fingerprint.json").read_text())
    fp["build_failures"] = [{"framework": "clock", "model": "mlp", "reason": "env broken"}]
    (run / "fingerprint.json").write_text(json.dumps(fp))
    assert main(["report", str(run), "--output", str(tmp_path / "again")]) == 0
    top = (tmp_path / "again" / "report.md").read_text().split("## How to read")[0]
    assert "**No built model** in" in top and "`clock`: `env broken`" in top


def test_leftovers_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    from bench.atomic import remove_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = os.getpid()
    names = {
        f".weights.npz.{dead.pid}-ab12.tmp.npz": False,  # a killed writer's: removed
        f"cnn.staging-{dead.pid}": False,
        f".report.{dead.pid}-cd34.partial": False,
        f".weights.npz.{mine}-ab12.tmp.npz": True,  # a live process's: kept
        f"mlp.staging-{mine}": True,
        "weights.npz": True,  # not a leftover at all
        "cnn.previous": True,
    }
    for name in names:
        if "staging" in name or "partial" in name or "previous" in name:
            (tmp_path / name).mkdir()
            (tmp_path / name / "inside").write_text("x")
        else:
            (tmp_path / name).write_text("x")
    removed = {p.name for p in remove_leftovers(tmp_path)}
    assert removed == {n for n, keep in names.items() if not keep}
    assert {p.name for p in tmp_path.iterdir()} == {n for n, keep in names.items() if keep}
