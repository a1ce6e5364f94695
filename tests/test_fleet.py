"""The fleet (``xfbench fleet``, ``xfbench worker``) on a real Dask cluster on this machine.

A scheduler (``dask scheduler``) and two workers started with ``xfbench worker`` under
the names ``alpha`` and ``beta`` stand for two machines (each with a benchmark lock of
its own); the fleet's client is the real command line. The tasks time the known-clock
adapter (``bench/adapters/clock_adapter.py``: microseconds a case, no framework), whose
model cannot be trained, so the workers' runner is a driver that stands the zoo stage
down, as tests/test_faults_run.py does; everything else, from the Dask task to the
merged report, is the real code. The driver can also hold one group at its start until
the test says go, so that a worker can be killed while it times that group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_faults_run import _gone as gone_within

from bench.cli import main
from bench.weights import save_weights
from models.spec import get_spec

pytest.importorskip("distributed")  # the core environment's; not the frameworks'
pd = pytest.importorskip("pandas")

CLOCK = "clock=bench.adapters.clock_adapter:ClockAdapter"
REPO = Path(__file__).resolve().parent.parent
HELD = "clock"  # the group the driver holds (when asked to)
#: What a -f clock -m mlp -b 5 -t 1 --quick run times: the clock's own worker group, and
#: the onnxruntime group (clock exports nothing, so its cases end in errors).
CLOCK_CASES = {
    f"clock-mlp-{mode}-{phase}-cpu-b5-t1"
    for mode in ("sync", "async")
    for phase in ("compile", "inference")
} | {"clock-mlp-sync-train_step-cpu-b5-t1", "clock-gemm-sync-peak-cpu-b1024-t1"}
ORT_CASES = {"clock-mlp-onnxruntime-inference-cpu-b5-t1"}

#: The workers' runner: xfbench, with the zoo stood down, and the hold.
TASK_DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from bench.lifeline import watch_parent
    watch_parent()  # as bench/fleet_task.py's own entry does
    import bench.cli as cli
    cli.run_zoo = lambda *a, **k: ([], [])  # the clock adapter cannot be trained
    hold = os.environ.get("FLEET_TEST_HOLD", "")
    argv = sys.argv[1:]
    if hold and argv[argv.index("--only-group") + 1] == hold.split(":", 1)[0]:
        where = Path(hold.split(":", 1)[1])
        name = "".join(c if c.isalnum() else "-" for c in os.environ["XFBENCH_FLEET_WORKER"])
        (where / f"started-{name}").write_text(f"{os.getppid()} {os.getpid()}")
        while not (where / "release").exists():
            time.sleep(0.1)
    code = cli.main(argv)
    if os.environ.get("FLEET_TEST_CRASH", "-") == argv[argv.index("--only-group") + 1]:
        # A runner killed partway (the OOM killer, SIGTERM): its folder says unfinished.
        from bench.rundir import mark_incomplete
        out = Path(argv[argv.index("--out") + 1])
        (run,) = [d for d in out.iterdir() if d.is_dir()]
        mark_incomplete(run, "interrupted by SIGTERM during timing")
        code = 143
    bad = os.environ.get("FLEET_TEST_BADLINK", "")
    if bad and argv[argv.index("--only-group") + 1] == bad:
        # A run folder the client must refuse to unpack: a link out of it.
        out = Path(argv[argv.index("--out") + 1])
        (run,) = [d for d in out.iterdir() if d.is_dir()]
        (run / "escape").symlink_to("/etc/hostname")
    sys.exit(code)
    """
)
#: The client: the real command line, its workers' runner being the driver above.
CLIENT_DRIVER = textwrap.dedent(
    """
    import os, signal, sys, time
    import bench.cli as cli
    import bench.fleet as fleet
    cli.run_zoo = lambda *a, **k: ([], [])  # --local builds once: the clock has nothing
    fleet.TASK_RUNNER = [sys.executable, sys.argv[1]]
    if os.environ.get("FLEET_TEST_SIGINT") == "finish":
        # Ctrl-C as the first result is read, once every other group has finished too.
        real = fleet.Fleet._finish

        def finish(self, future, task):
            fleet.Fleet._finish = real
            deadline = time.time() + 60
            while time.time() < deadline and any(f.status != "finished" for f in self.running):
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
            return real(self, future, task)

        fleet.Fleet._finish = finish
    sys.exit(cli.main(sys.argv[2:]))
    """
)
TINY = ["-f", "clock", "-m", "mlp", "-b", "5", "-t", "1", "--quick", "--min-rounds", "3",
        "--max-time", "0.02", "--cold-starts", "0"]  # fmt: skip


@pytest.fixture
def fleet_env(tmp_path) -> dict[str, str]:
    spec = get_spec("mlp")
    save_weights(
        tmp_path / "artifacts" / "clock" / "mlp" / "weights.npz", spec, spec.init_weights(0)
    )
    (tmp_path / "hold").mkdir()
    (tmp_path / "driver.py").write_text(TASK_DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFBENCH_", "DASK_"))}
    return {
        **env,
        "XFBENCH_ADAPTERS": CLOCK,
        "XFBENCH_LOCK_DIR": str(tmp_path),
        "XFBENCH_DB": f"sqlite:///{tmp_path / 'history.db'}",
        "FLEET_TEST_HOLD": f"{HELD}:{tmp_path / 'hold'}",
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture
def clock_here(monkeypatch):
    """The clock adapter registered in this process too (for in-process commands)."""
    from bench import adapters

    monkeypatch.setenv("XFBENCH_ADAPTERS", CLOCK)
    adapters._entry_points.cache_clear()
    yield
    adapters._entry_points.cache_clear()


class Cluster:
    """A scheduler and named workers in processes of their own, stopped at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str], allowed_failures: int) -> None:
        self.tmp, self.env = tmp_path, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []
        info = tmp_path / "scheduler.json"
        self.procs["scheduler"] = self._start(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            {**env, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)},
            "scheduler",
        )  # fmt: skip
        try:
            self.address = self._address(info)
        except BaseException:
            self.stop()  # the scheduler must not outlive a failed start
            raise

    @staticmethod
    def _address(info: Path, timeout: float = 60) -> str:
        """The scheduler's address from its file, which Dask writes with a plain open():
        on a loaded machine it can be read while still empty."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise AssertionError(f"the scheduler wrote no address to {info} in {timeout} s")

    def _start(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed by stop()
        self.logs.append(log)
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def worker(self, name: str) -> None:
        """``xfbench worker`` as a machine of its own (its own benchmark lock)."""
        lock = self.tmp / f"lock-{name}"
        lock.mkdir()
        self.procs[name] = self._start(
            [sys.executable, "-m", "bench", "worker", self.address, "--name", name],
            {**self.env, "XFBENCH_LOCK_DIR": str(lock)},
            name,
        )

    def wait_for(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=90)

    def lose(self, name: str) -> None:
        """The machine is gone: its worker and nanny, at once."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def cluster(tmp_path, fleet_env, request):
    made: list[Cluster] = []

    def make(
        allowed_failures: int, hold: str = "clock", workers=("alpha", "beta"), **extra: str
    ) -> Cluster:
        """Its workers' runners hold the group ``hold`` until the test releases it."""
        env = {**fleet_env, "FLEET_TEST_HOLD": f"{hold}:{tmp_path / 'hold'}", **extra}
        c = Cluster(tmp_path, env, allowed_failures)
        made.append(c)
        for name in workers:
            c.worker(name)
        c.wait_for(len(workers))
        return c

    yield make
    for c in made:
        c.stop()


def _client(tmp_path: Path, env: dict[str, str], *where: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", CLIENT_DRIVER, str(tmp_path / "driver.py"), "fleet", *where,
            *TINY, "--out", str(tmp_path / "reports"),
            "--artifacts", str(tmp_path / "artifacts")]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its LocalCluster and runners die with it at teardown
    )
    _CLIENTS.append(proc)
    return proc


#: Every fleet client a test started: one still running at the test's end (a
#: communicate() that timed out, a failed assertion) is killed with its process group.
_CLIENTS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_client_outlives_its_test():
    yield
    while _CLIENTS:
        proc = _CLIENTS.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _held(tmp_path: Path, client: subprocess.Popen, timeout: float = 120) -> tuple[str, int]:
    """The worker holding the clock group, and its runner's pid, once it is held."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert client.poll() is None, client.stdout.read()
        started = list((tmp_path / "hold").glob("started-*"))
        if started:
            _, runner = started[0].read_text().split()
            return started[0].name.removeprefix("started-"), int(runner)
        time.sleep(0.1)
    client.kill()
    raise AssertionError(f"the held group never started: {client.stdout.read()}")


def _gone(pid: int) -> bool:
    """The process has exited (or is a zombie) within 15 s."""
    return gone_within(pid, timeout=15)


def _fleet_dir(tmp_path: Path) -> Path:
    (folder,) = [d for d in (tmp_path / "reports").iterdir() if d.is_dir()]
    return folder


def _tasks(fleet: Path) -> dict[str, dict]:
    return {t["label"]: t for t in json.loads((fleet / "fleet.json").read_text())["tasks"]}


def test_a_lost_machine_costs_one_retry_and_every_group_arrives(tmp_path, fleet_env, cluster):
    c = cluster(allowed_failures=1)
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    victim, runner = _held(tmp_path, client)
    other = ({"alpha", "beta"} - {victim}).pop()
    c.lose(victim)
    assert _gone(runner), "the runner of the lost worker went on timing"
    (tmp_path / "hold" / "release").write_text("")  # the retry runs at once
    out, _ = client.communicate(timeout=180)
    print(out)  # the fleet's console: which worker ran what, and the retries
    assert client.returncode == 1, out  # the onnxruntime cases fail: clock exports nothing
    assert f"clock-cpu-t1 started on {other} (host " in out and f"lost on {victim})" in out, out

    fleet = _fleet_dir(tmp_path)
    tasks = _tasks(fleet)
    assert tasks["clock-cpu-t1"]["status"] == "ok", tasks
    assert [a["worker"] for a in tasks["clock-cpu-t1"]["attempts"]] == [victim, other]
    assert tasks["clock-cpu-t1"]["worker"] == other
    assert tasks["onnxruntime-cpu-t1"]["status"] == "ok"
    # Every group's run is in the fleet's folder, with a report of its own, and the
    # merged report holds every case.
    parts = sorted(p for p in (fleet / "parts").iterdir())
    assert len(parts) == 2 and all((p / "summary.csv").is_file() for p in parts)
    assert not list((fleet / "parts").glob(".incoming-*"))
    summary = pd.read_csv(fleet / "summary.csv")
    cases = summary[summary.phase != "cold_start"]
    assert set(cases.case_id) == CLOCK_CASES | ORT_CASES
    clock = cases[cases.case_id.isin(CLOCK_CASES)]
    assert set(clock.status) == {"ok", "unsupported"}, clock[["case_id", "status", "reason"]]
    assert set(clock.run) == {tasks["clock-cpu-t1"]["part"]}
    fp = json.loads(
        (fleet / "parts" / tasks["clock-cpu-t1"]["part"] / "fingerprint.json").read_text()
    )
    assert fp["fleet"]["task"]["attempts"] == [victim, other]
    assert fp["fleet"]["scheduler"] == c.address and fp["fleet"]["local"] is None
    assert fp["options"]["only_group"] == "clock" and fp["options"]["frameworks"] == ["clock"]
    assert not fp["options"]["allow_concurrent"]  # each machine's own lock was taken
    report = (fleet / "report.md").read_text()
    assert "## Fleet " in report and f"{victim} → {other}" in report
    assert "not comparable" not in report.split("## How to read")[0]
    assert "incomplete.json" not in {p.name for p in fleet.iterdir()}
    # `xfbench report` takes the fleet's folder for its parts.
    assert main(["report", str(fleet), "--output", str(tmp_path / "again")]) == 0
    assert set(pd.read_csv(tmp_path / "again" / "summary.csv").case_id) >= CLOCK_CASES


def test_retries_exhausted_make_error_rows_and_keep_the_rest(
    tmp_path, fleet_env, cluster, capsys, clock_here
):
    c = cluster(allowed_failures=0, hold="onnxruntime")
    # A GPU group, and no worker has a GPU: refused before anything is sent.
    started = time.time()
    code = main(
        ["fleet", "--scheduler", c.address, *TINY, "-d", "cuda", "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2 and time.time() - started < 30
    assert "no worker of the scheduler at" in err and "has a CUDA GPU" in err, err
    assert f"`xfbench worker {c.address}` on a GPU machine" in err
    assert "Traceback" not in err and not list((tmp_path / "x").glob("*"))  # nothing written

    # This time the machine timing ONNX Runtime's group is lost.
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    victim, runner = _held(tmp_path, client)
    c.lose(victim)
    assert _gone(runner), "the runner of the lost worker went on timing"
    (tmp_path / "hold" / "release").write_text("")
    out, _ = client.communicate(timeout=180)
    print(out)  # the fleet's console: which worker ran what, and the retries
    assert client.returncode == 1, out
    reason = f"worker {victim} was lost while timing this group (KilledWorker"
    assert f"onnxruntime-cpu-t1 FAILED: {reason}" in out, out

    fleet = _fleet_dir(tmp_path)
    tasks = _tasks(fleet)
    assert tasks["onnxruntime-cpu-t1"]["status"] == "failed"
    assert "allowed-failures = 0" in tasks["onnxruntime-cpu-t1"]["reason"]
    assert tasks["clock-cpu-t1"]["status"] == "ok"  # timed by the other machine
    summary = pd.read_csv(fleet / "summary.csv")
    cases = summary[summary.phase != "cold_start"]
    assert set(cases.case_id) == CLOCK_CASES | ORT_CASES  # every case, as a row
    lost = cases[cases.case_id.isin(ORT_CASES)]
    assert set(lost.status) == {"error"} and lost.reason.str.startswith(reason).all()
    not_timed = fleet / "parts" / tasks["onnxruntime-cpu-t1"]["part"]
    marker = json.loads((not_timed / "incomplete.json").read_text())  # kept out of history
    assert marker["reason"].startswith(f"this worker group was not timed: {reason}")
    kept = cases[cases.case_id.isin(CLOCK_CASES)]
    assert set(kept.status) == {"ok", "unsupported"}, kept[["case_id", "status", "reason"]]
    other = ({"alpha", "beta"} - {victim}).pop()
    clock_part = fleet / "parts" / tasks["clock-cpu-t1"]["part"]
    fp = json.loads((clock_part / "fingerprint.json").read_text())
    assert fp["fleet"]["task"]["worker"] == other
    report = (fleet / "report.md").read_text()
    top = report.split("## How to read")[0]
    assert "1 group(s) were not timed" in top and f"worker {victim} was lost" in top
    assert "This run is incomplete" not in top  # the fleet section says it, once


def _part_arrived(fleet_root: Path, client: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert client.poll() is None, client.stdout.read()
        parts = [p for p in fleet_root.glob("*/parts/*") if not p.name.startswith(".")]
        if parts and (parts[0] / "summary.csv").exists():
            return parts[0]
        time.sleep(0.1)
    client.kill()
    raise AssertionError(f"no part arrived: {client.stdout.read()}")


def test_an_interrupted_client_keeps_what_arrived_and_stops_the_rest(tmp_path, fleet_env, cluster):
    """Ctrl-C at the client: the parts that arrived are kept, the running group's runner
    is stopped on its worker (which lives on); then a group whose last worker is lost
    waits --wait-workers for another, and becomes error rows."""
    c = cluster(allowed_failures=1, hold="onnxruntime", workers=("alpha",))
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    _, runner = _held(tmp_path, client)  # the clock group came first, and is done
    part = _part_arrived(tmp_path / "reports", client)
    client.send_signal(signal.SIGINT)
    out, _ = client.communicate(timeout=60)
    print(out)
    assert client.returncode == 130, out
    assert _gone(runner), "the cancelled group's runner went on timing"
    assert c.procs["alpha"].poll() is None  # the worker itself is still there
    fleet = part.parent.parent
    assert json.loads((fleet / "incomplete.json").read_text())["reason"].startswith(
        "interrupted by Ctrl-C"
    )
    tasks = _tasks(fleet)
    assert tasks["clock-cpu-t1"]["status"] == "ok" and tasks["clock-cpu-t1"]["part"] == part.name
    assert tasks["onnxruntime-cpu-t1"]["status"] == "cancelled"
    summary = pd.read_csv(fleet / "summary.csv")  # the report of what finished
    assert set(summary.case_id) == CLOCK_CASES

    # Again, and the one machine is lost while it times ONNX Runtime's group: Dask
    # would retry it, but no worker is left.
    for f in (tmp_path / "hold").iterdir():
        f.unlink()
    shutil.rmtree(tmp_path / "reports")
    client = _client(tmp_path, fleet_env, "--scheduler", c.address, "--wait-workers", "2")
    _held(tmp_path, client)
    c.lose("alpha")
    out, _ = client.communicate(timeout=60)
    print(out)
    assert client.returncode == 1, out
    fleet = _fleet_dir(tmp_path)
    reason = _tasks(fleet)["onnxruntime-cpu-t1"]["reason"]
    assert reason.startswith("no worker was left in the fleet for 2 s (--wait-workers)"), reason
    summary = pd.read_csv(fleet / "summary.csv")
    assert set(summary[summary.case_id.isin(ORT_CASES)].status) == {"error"}
    assert not (fleet / "incomplete.json").exists()


def test_a_part_that_cannot_be_stored_fails_its_group_only(tmp_path, fleet_env, cluster):
    """A returned run folder the client refuses to unpack (a link out of it) is that
    group's failure, with the reason; the fleet goes on and reports the rest."""
    c = cluster(allowed_failures=0, hold="none", FLEET_TEST_BADLINK="onnxruntime")
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    out, _ = client.communicate(timeout=180)
    print(out)
    assert client.returncode == 1 and "Traceback" not in out, out
    fleet = _fleet_dir(tmp_path)
    tasks = _tasks(fleet)
    assert tasks["onnxruntime-cpu-t1"]["status"] == "failed", tasks
    reason = tasks["onnxruntime-cpu-t1"]["reason"]
    assert reason.startswith("its run folder could not be stored: "), reason
    assert "escape" in reason, reason
    assert tasks["clock-cpu-t1"]["status"] == "ok", tasks
    assert not list((fleet / "parts").glob(".incoming-*"))
    assert not (fleet / "incomplete.json").exists()
    summary = pd.read_csv(fleet / "summary.csv")  # the merged report, every case a row
    cases = summary[summary.phase != "cold_start"]
    assert set(cases.case_id) == CLOCK_CASES | ORT_CASES
    lost = cases[cases.case_id.isin(ORT_CASES)]
    assert set(lost.status) == {"error"} and lost.reason.str.startswith(reason).all()
    kept = cases[cases.case_id.isin(CLOCK_CASES)]
    assert set(kept.status) == {"ok", "unsupported"}, kept[["case_id", "status", "reason"]]


def test_a_lost_scheduler_fails_the_rest_and_reports_what_arrived(tmp_path, fleet_env, cluster):
    """The scheduler dies while a group is timed: that group (and any not yet sent) is
    an error row naming the lost connection, the fleet is marked incomplete with it,
    and the parts that arrived are reported."""
    c = cluster(allowed_failures=1, hold="onnxruntime", workers=("alpha",))
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    _held(tmp_path, client)  # the clock group came first
    part = _part_arrived(tmp_path / "reports", client)
    c.lose("scheduler")
    out, _ = client.communicate(timeout=90)
    print(out)
    assert client.returncode == 1 and "Traceback" not in out, out
    fleet = part.parent.parent
    tasks = _tasks(fleet)
    assert tasks["clock-cpu-t1"]["status"] == "ok", tasks
    reason = tasks["onnxruntime-cpu-t1"]["reason"]
    assert tasks["onnxruntime-cpu-t1"]["status"] == "failed", tasks
    assert reason.startswith(f"lost the connection to the scheduler {c.address}: "), reason
    marker = json.loads((fleet / "incomplete.json").read_text())
    assert marker["reason"].startswith(f"lost the connection to the scheduler {c.address}")
    summary = pd.read_csv(fleet / "summary.csv")
    cases = summary[summary.phase != "cold_start"]
    assert set(cases.case_id) == CLOCK_CASES | ORT_CASES
    assert set(cases[cases.case_id.isin(ORT_CASES)].status) == {"error"}


def test_ctrl_c_keeps_every_finished_group_and_the_one_being_stored(tmp_path, fleet_env, cluster):
    """Ctrl-C while a returned group is being stored, when another has finished but
    was not yet read: both are stored and recorded, the fleet marked interrupted."""
    c = cluster(allowed_failures=1, hold="none")
    client = _client(tmp_path, {**fleet_env, "FLEET_TEST_SIGINT": "finish"}, "--scheduler",
                     c.address)  # fmt: skip
    out, _ = client.communicate(timeout=180)
    print(out)
    assert client.returncode == 130 and "Traceback" not in out, out
    fleet = _fleet_dir(tmp_path)
    tasks = _tasks(fleet)
    assert {t["status"] for t in tasks.values()} == {"ok"}, tasks
    parts = json.loads((fleet / "fleet.json").read_text())["parts"]
    assert sorted(parts) == sorted(t["part"] for t in tasks.values())
    assert sorted(p.name for p in (fleet / "parts").iterdir()) == sorted(parts)  # no .incoming
    marker = json.loads((fleet / "incomplete.json").read_text())
    assert marker["reason"].startswith("interrupted by Ctrl-C")
    summary = pd.read_csv(fleet / "summary.csv")
    assert set(summary.case_id) == CLOCK_CASES | ORT_CASES


def test_a_group_past_group_timeout_is_stopped_and_fails(tmp_path, fleet_env, cluster):
    """A runner stuck at its start (held) is killed at --group-timeout; its cases are
    error rows naming the option, the other group is kept."""
    c = cluster(allowed_failures=1, hold="onnxruntime")
    client = _client(tmp_path, fleet_env, "--scheduler", c.address, "--group-timeout", "4")
    _, runner = _held(tmp_path, client)
    out, _ = client.communicate(timeout=120)
    print(out)
    assert client.returncode == 1 and "Traceback" not in out, out
    assert _gone(runner), "the runner went on past --group-timeout"
    tasks = _tasks(_fleet_dir(tmp_path))
    assert tasks["clock-cpu-t1"]["status"] == "ok", tasks
    assert tasks["onnxruntime-cpu-t1"]["status"] == "failed", tasks
    reason = tasks["onnxruntime-cpu-t1"]["reason"]
    assert "--group-timeout 4 s" in reason and "was stopped" in reason, reason
    summary = pd.read_csv(_fleet_dir(tmp_path) / "summary.csv")
    assert set(summary[summary.case_id.isin(ORT_CASES)].status) == {"error"}


def test_a_runner_killed_partway_is_a_partial_group(tmp_path, fleet_env, cluster):
    c = cluster(allowed_failures=1, hold="none", FLEET_TEST_CRASH="clock")
    client = _client(tmp_path, fleet_env, "--scheduler", c.address)
    out, _ = client.communicate(timeout=180)
    print(out)
    assert client.returncode == 1 and "Traceback" not in out, out
    fleet = _fleet_dir(tmp_path)
    task = _tasks(fleet)["clock-cpu-t1"]
    assert task["status"] == "partial", task
    assert "exit status 143" in task["reason"] and "during timing" in task["reason"], task
    assert (fleet / "parts" / task["part"] / "raw").is_dir()  # what it finished is kept
    report = (fleet / "report.md").read_text().split("## How to read")[0]
    assert "clock-cpu-t1" in report and "stopped partway" in report


def test_local_workers_share_the_machine_and_the_report_says_so_first(tmp_path, fleet_env):
    from bench.lock import BenchRunningError, machine_lock

    client = _client(tmp_path, fleet_env, "--local", "2")
    _held(tmp_path, client)
    # The fleet holds this machine's benchmark lock for its local workers.
    with (
        pytest.raises(BenchRunningError),
        machine_lock(tmp_path / "run", tmp_path / "xfbench-bench.lock"),
    ):
        pass
    (tmp_path / "hold" / "release").write_text("")
    out, _ = client.communicate(timeout=180)
    print(out)  # the fleet's console: which worker ran what, and the retries
    assert client.returncode == 1, out
    assert "building the models once for the 2 local workers" in out
    fleet = _fleet_dir(tmp_path)
    meta = json.loads((fleet / "fleet.json").read_text())
    assert meta["local"] == 2 and meta["scheduler"] is None and len(meta["workers"]) == 2
    assert {t["status"] for t in meta["tasks"]} == {"ok"}
    for part in (fleet / "parts").iterdir():
        fp = json.loads((part / "fingerprint.json").read_text())
        assert fp["options"]["allow_concurrent"] and fp["fleet"]["local"] == 2
    report = (fleet / "report.md").read_text()
    first = report.split("\n## ")[1]  # the first section, before any table of numbers
    assert (
        first.startswith("Fleet ")
        and "**Timings from workers sharing one machine are not comparable.**" in first
    )
    assert set(pd.read_csv(fleet / "summary.csv").case_id) == CLOCK_CASES | ORT_CASES


def test_an_unreachable_scheduler_is_an_error_in_bounded_time(capsys, tmp_path, clock_here):
    started = time.time()
    code = main(["fleet", "--scheduler", "tcp://127.0.0.1:1", *TINY, "--out", str(tmp_path)])
    took = time.time() - started
    err = capsys.readouterr().err
    assert code == 2 and took < 40, (code, took)  # 10 s by design; a loaded CI is slow
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err
    assert "dask scheduler --port 1" in err and "--local 2" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing was written
    # The worker's command says the same, at once.
    assert main(["worker", "tcp://127.0.0.1:1", "--name", "alpha"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--local", "0"], "--local needs 1 or more worker processes, got 0"),
        (["--local", "2", "--scheduler", "tcp://h:8786"], "--scheduler and --local exclude"),
        ([], "say where the fleet runs: --scheduler tcp://HOST:8786"),
        (["--scheduler", "http://head:8786"], "invalid scheduler address 'http://head:8786'"),
        (["--scheduler", "tcp://head"], "expected tcp://HOST:PORT"),
        (["--scheduler", "head:99999"], "invalid scheduler address"),
        (["--local", "1", "--group-timeout", "0"], "--group-timeout must be a number of sec"),
    ],
)
def test_bad_fleet_options_are_usage_errors(argv, said, capsys, clock_here):
    assert main(["fleet", *argv, *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xfbench: error: ") and said in err and "Traceback" not in err


def test_the_worker_command(capsys):
    assert main(["worker", "head:8786", "--name", "alpha", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-m distributed.cli.dask_worker tcp://head:8786 --name alpha --nworkers 1" in out
    assert "--nthreads 1 --resources slot=1" in out
    from bench.fingerprint import detect_gpus

    assert ("cuda=1" in out) == bool(detect_gpus())
    assert main(["worker"]) == 2 and "name the scheduler once" in capsys.readouterr().err


def test_dask_version_warnings_about_packages_no_task_uses_are_dropped():
    from bench.fleet import version_warning_matters

    def table(*rows: str) -> str:
        line = "+---------+--------+-----------+---------+"
        body = "\n".join(f"| {r:<7} | 3.1.1  | 3.1.1     | None    |" for r in rows)
        head = "| Package | Client | Scheduler | Workers |"
        return f"Mismatched versions found\n\n{line}\n{head}\n{line}\n{body}\n{line}"

    assert not version_warning_matters(table("pandas"))  # a `tox -e worker` has none
    assert not version_warning_matters(table("numpy", "lz4"))
    assert version_warning_matters(table("pandas", "msgpack"))  # the protocol: it matters
    assert version_warning_matters(table("dask"))
    assert version_warning_matters("something else entirely")


def test_only_group_times_one_group_and_builds_what_it_needs(
    tmp_path, monkeypatch, capsys, clock_here
):
    """``bench --only-group``: the onnxruntime group needs every framework's exports;
    a framework's group its own models (the real sklearn, built and timed)."""
    import bench.cli as cli

    monkeypatch.setenv("XFBENCH_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("XFBENCH_DB", f"sqlite:///{tmp_path / 'history.db'}")
    spec = get_spec("mlp")
    save_weights(tmp_path / "art" / "clock" / "mlp" / "weights.npz", spec, spec.init_weights(0))
    built: list[list[str]] = []
    real_zoo = cli.run_zoo

    def zoo(frameworks, *args, **kwargs):
        built.append(list(frameworks))
        return ([], []) if frameworks == ["clock"] else real_zoo(frameworks, *args, **kwargs)

    monkeypatch.setattr(cli, "run_zoo", zoo)
    common = ["-b", "1", "-t", "1", "--quick", "--min-rounds", "3", "--max-time", "0.02",
              "--cold-starts", "1", "--artifacts", str(tmp_path / "art")]  # fmt: skip
    assert (
        main(
            [
                "bench",
                "-f",
                "clock",
                "-m",
                "mlp",
                *common,
                "--only-group",
                "onnxruntime",
                "--out",
                str(tmp_path / "ort"),
            ]
        )
        == 2
    )  # fmt: skip  (clock exports nothing)
    assert built == [["clock"]]
    (run,) = (tmp_path / "ort").glob("*-cpu-quick")
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary.runtime) == {"onnxruntime"}  # its timed cases and cold start
    assert set(summary.phase) == {"inference", "cold_start"}

    assert main(["bench", "-f", "sklearn,clock", "-m", "mlp", *common, "--only-group",
                 "sklearn", "--out", str(tmp_path / "sk")]) == 0  # fmt: skip
    assert built[1] == ["sklearn"]  # the clock, which cannot be built, was not tried
    (run,) = (tmp_path / "sk").glob("*-cpu-quick")
    summary = pd.read_csv(run / "summary.csv")
    assert set(summary.framework) == {"sklearn"} and "onnxruntime" not in set(summary.runtime)
    assert set(summary.status) == {"ok"}, summary[["case_id", "status", "reason"]]
    assert set(summary.phase) == {"compile", "inference", "train_step", "peak", "cold_start"}
    fp = json.loads((run / "fingerprint.json").read_text())
    assert fp["options"]["only_group"] == "sklearn" and fp["build_failures"] == []
    assert [m["framework"] for m in json.loads((run / "models.json").read_text())] == ["sklearn"]

    capsys.readouterr()
    assert main(["bench", "-f", "clock", "-m", "mlp", *common, "--only-group", "torch"]) == 2
    assert "--only-group 'torch' is not a worker group of this run" in capsys.readouterr().err


def test_a_local_fleet_times_one_gpu_group_at_a_time():
    """--local workers all see this machine's one GPU: GPU groups take turns there; a
    remote fleet runs one per GPU machine."""
    from bench.fleet import gpu_slots

    three = [{"name": n, "resources": {"slot": 1, "cuda": 1}} for n in "abc"]
    assert gpu_slots(three, local=True) == 1
    assert gpu_slots(three, local=False) == 3
    assert gpu_slots([], local=True) == 0


def test_a_history_that_cannot_be_opened_stops_the_fleet_before_it_starts(
    capsys, tmp_path, clock_here
):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    started = time.time()
    db = f"postgresql://nobody@127.0.0.1:{closed}/x"
    code = main(["fleet", "--local", "2", *TINY, "--out", str(tmp_path / "r"), "--db", db])
    err = capsys.readouterr().err
    assert code == 2 and time.time() - started < 30, (code, err)
    assert "cannot open the results history" in err and "before the run starts" in err
    assert not [d for d in (tmp_path / "r").iterdir() if d.is_dir()]  # no fleet folder
