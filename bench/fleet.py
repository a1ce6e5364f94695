"""``xfbench fleet`` and ``xfbench worker``: the benchmark matrix across machines, through
Dask distributed.

The machines of a fleet each run one Dask worker (``xfbench worker``: one process, one
thread, the resource ``slot=1``, and ``cuda=1`` where it has a CUDA GPU), all joined to
one scheduler (``dask scheduler``). ``xfbench fleet --scheduler ADDRESS`` sends every
worker group of the run (a framework's native cases, or ONNX Runtime's for every export;
per device and thread count) as one task that needs ``slot=1`` (GPU groups also
``cuda=1``), so a machine times one group at a time and never competes with itself.
Each task runs the machine's own runner (bench/fleet_task.py) and returns its run folder;
the client writes it under ``<out>/<time>-<host>-fleet/parts/`` as soon as it arrives,
with its own report, adds it to the results history, and at the end writes one report
over every part (several hosts), so nothing finished is lost when a later task fails or
the client is interrupted.

* **Placement.** The client submits no more tasks than the fleet has free slots (GPU
  groups first, to GPU machines). Dask would otherwise queue every task at once on the
  workers, and a lost machine would count against every task queued on it, not only
  the one it was timing.
* **Lost machines.** A task whose worker dies is rescheduled by Dask until it has been
  lost ``distributed.scheduler.allowed-failures`` + 1 times (a setting of the scheduler:
  ``--local`` sets 1); then, or when the runner itself fails, its cases become error
  rows that say why (``worker alpha was lost twice while timing this group
  (KilledWorker) ...``), and the other groups' results are kept.
* **--local N** starts N worker processes on this machine. They time at the same time
  on the same cores, so the report says, first, that their timings are not comparable.
  The fleet holds this machine's benchmark lock (bench/lock.py) for all of them and
  their runs skip it (``--allow-concurrent``): the lock exists to keep a second
  benchmark off a machine, and here the concurrency is the point and is reported. The
  models are built once, before any worker starts, so that no two workers build the same
  model into the shared artifacts folder at once.

Nothing here imports Dask until a command needs it, nor any framework.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8786
#: How long the client tries to reach the scheduler, in seconds.
CONNECT_TIMEOUT_S = 10
#: How long the client waits for a first worker before saying there is none.
FIRST_WORKER_WAIT_S = 15
#: Retries of a task whose worker was lost, for --local (a scheduler's own setting
#: otherwise; Dask's default is 3).
LOCAL_ALLOWED_FAILURES = 1
#: The command that runs ``xfbench`` on the workers: None for each worker's own
#: ``python -m bench.fleet_task``. For tests only (a driver that stands the zoo down).
TASK_RUNNER: list[str] | None = None
#: --group-timeout's default, in seconds.
DEFAULT_GROUP_TIMEOUT_S = 4 * 3600.0
#: How long the client waits for a finished group's result to reach it, in seconds.
RESULT_TIMEOUT_S = 300
FLEET_SCHEMA = "xfbench-fleet/1"
FLEET_FILE = "fleet.json"
PARTS = "parts"


class ConnectionLost(Exception):
    """The client lost its scheduler: Dask has cancelled every group it had sent."""


def _usage_error(message: str) -> Exception:
    from bench.cli import UsageError

    return UsageError(message)


# --------------------------------------------------------------------------- parsers


def add_parsers(sub: Any) -> None:
    """Register ``fleet`` and ``worker`` on the CLI."""
    from bench.cli import DEFAULT_ARTIFACTS, _compare_options, matrix_options

    fleet = sub.add_parser(
        "fleet",
        help="time the matrix across machines (Dask distributed): one worker group per "
        "task, one task per machine at a time",
        description="Send every worker group of the run (a framework's native cases, or "
        "ONNX Runtime's, per device and thread count) to the machines of a Dask fleet, "
        "write each returned run folder as it arrives, then one report over all of them.",
    )
    where = fleet.add_argument_group("where it runs (one of)")
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="the Dask scheduler the machines' `xfbench worker`s joined, e.g. "
        f"tcp://head-node:{DEFAULT_PORT}",
    )
    where.add_argument(
        "--local",
        type=int,
        default=None,
        metavar="N",
        help="N worker processes on this machine, to try the fleet (their timings are not "
        "comparable: they share the cores)",
    )
    matrix_options(fleet)
    fleet.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="where the fleet's folder goes (default: reports/)",
    )
    fleet.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="trained models: with --local, the folder the local workers share (default "
        f"{DEFAULT_ARTIFACTS}); with --scheduler, a folder on each worker machine (default: "
        "each worker's own, its checkout's artifacts/ or its $XFBENCH_ARTIFACTS)",
    )
    fleet.add_argument(
        "--wait-workers",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long groups wait when no worker left in the fleet can run them (all "
        "lost, or the last GPU machine lost) before they become error rows (default 600)",
    )
    fleet.add_argument(
        "--group-timeout",
        type=float,
        default=DEFAULT_GROUP_TIMEOUT_S,
        metavar="SECONDS",
        help="the longest one worker group may run on its machine, environments and model "
        "builds included; past it the runner is killed and the group's cases become error "
        f"rows (default {DEFAULT_GROUP_TIMEOUT_S:g}: 4 hours)",
    )
    _compare_options(fleet)
    fleet.add_argument(
        "--verbose",
        action="store_true",
        help="Dask's own log messages, and the runners' output in each part's "
        "fleet-console.log in full",
    )
    fleet.add_argument(
        "--db",
        default=None,
        help="the results history database every part is added to (any SQLAlchemy URL); "
        "default: $XFBENCH_DB, else sqlite:///<--out>/history.db",
    )
    fleet.set_defaults(func=cmd_fleet)

    worker = sub.add_parser(
        "worker",
        help="run this machine's Dask worker for `xfbench fleet`",
        description="Start this machine's Dask worker (`dask worker`, with a nanny): one "
        "process, one thread, resources slot=1 and, where a CUDA GPU is found, cuda=1. "
        "Run it in an xfbench checkout (`tox -e worker -- ADDRESS` also installs Dask and "
        "creates each framework's environment on first use).",
    )
    worker.add_argument("address", nargs="?", default=None, help="the scheduler's address")
    worker.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help=f"the scheduler's address, e.g. tcp://head-node:{DEFAULT_PORT}",
    )
    worker.add_argument(
        "--name",
        default=None,
        help="the worker's name in the fleet (default: this machine's host name); unique",
    )
    worker.add_argument(
        "--dry-run",
        action="store_true",
        help="print the `dask worker` command and stop",
    )
    worker.set_defaults(func=cmd_worker)


# --------------------------------------------------------------------------- helpers


def scheduler_address(text: str | None, option: str = "--scheduler") -> str:
    """``tcp://HOST:PORT`` (``HOST:PORT`` means tcp), or a :class:`UsageError`."""
    given = (text or "").strip()
    address = given if "://" in given else f"tcp://{given}"
    match = re.fullmatch(r"(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", address)
    if not given or not match or not 0 < int(match[3]) < 65536:
        raise _usage_error(
            f"invalid scheduler address {given!r} for {option}: expected tcp://HOST:PORT, "
            f"e.g. tcp://head-node:{DEFAULT_PORT} (the port `dask scheduler` listens on, "
            f"{DEFAULT_PORT} by default)"
        )
    return address


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise _usage_error(
            f"the fleet needs Dask distributed ({exc}): install it with "
            "`pip install -e '.[fleet]'` (tox's worker and fleet environments have it)"
        ) from None
    return distributed


def _quiet_dask(verbose: bool) -> None:
    """Dask logs connection retries, worker restarts and closing comms as warnings and
    errors; the fleet says what matters itself."""
    if not verbose:
        names = [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
        for name in ("distributed", "tornado", *names):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _unreachable(address: str, why: Any) -> Exception:
    return _usage_error(
        f"cannot reach the Dask scheduler at {address} ({why}): start one there "
        f"(`dask scheduler --port {address.rsplit(':', 1)[-1]}` on that machine), check "
        "the host name, the port and that a firewall lets it through, or try the fleet on "
        "this machine alone with `--local 2`"
    )


def gpu_slots(gpu_workers: list[dict[str, Any]], local: bool) -> int:
    """How many GPU groups may run at once: one per GPU worker, but one in all for a
    ``--local`` fleet, whose workers share this machine's GPU (each would take the same
    card, and their memory together may not fit)."""
    return min(len(gpu_workers), 1) if local else len(gpu_workers)


def fleet_parts(folder: Path) -> list[Path]:
    """The run folders of a fleet's folder (``xfbench report`` takes either); any other
    folder stands for itself."""
    folder = Path(folder)
    if (folder / FLEET_FILE).is_file() and (folder / PARTS).is_dir():
        parts = sorted(d for d in (folder / PARTS).iterdir() if (d / "raw").is_dir())
        return parts or [folder]
    return [folder]


@dataclass(frozen=True)
class Task:
    """One worker group on one device at one thread count (None: the worker's CPUs)."""

    group: str
    device: str
    threads: int | None

    @property
    def label(self) -> str:
        return f"{self.group}-{self.device}" + (f"-t{self.threads}" if self.threads else "")

    @property
    def resources(self) -> dict[str, int]:
        return {"slot": 1, **({"cuda": 1} if self.device == "cuda" else {})}


def fleet_tasks(args: argparse.Namespace, m: dict[str, Any]) -> list[Task]:
    """Every worker group of the run, per device and thread count, GPU groups first.
    Without -t each machine times at its own CPU count (``threads`` None)."""
    from bench.cli import run_plan

    threads: list[int | None] = list(m["threads"]) if args.threads else [None]
    tasks = []
    for device in m["devices"]:
        plan = run_plan(
            _with(args, artifacts=Path("artifacts")), {**m, "devices": [device]}, Path()
        )
        groups = list(dict.fromkeys(wp.group for wp in plan.worker_plans(1)))
        tasks += [Task(g, device, t) for t in threads for g in groups]
    return sorted(tasks, key=lambda t: t.device != "cuda")


def _with(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def task_argv(
    args: argparse.Namespace, m: dict[str, Any], task: Task, local: bool, artifacts: Path | None
) -> list[str]:
    """The ``xfbench`` arguments of ``task`` on its worker (``--out`` is the worker's)."""
    argv = [
        "bench",
        "--fleet-part",
        "--only-group",
        task.group,
        "-d",
        task.device,
        "-f",
        ",".join(m["frameworks"]),
        "--no-progress",
        "--case-timeout",
        repr(args.case_timeout),
    ]
    if args.model:  # else the worker's default models, which are the client's
        from bench.cli import _split

        argv += ["-m", ",".join(_split(args.model))]
    if task.threads:
        argv += ["-t", str(task.threads)]
    if args.batch_size:
        argv += ["-b", ",".join(map(str, m["batch_sizes"]))]
    argv += ["--quick"] if args.quick else []
    argv += ["--sweep"] if args.sweep else []
    for option, value in (
        ("--min-rounds", args.min_rounds),
        ("--max-time", args.max_time),
        ("--repeat", args.repeat),
        ("--cold-starts", args.cold_starts),
    ):
        if value is not None:
            argv += [option, str(value)]
    if artifacts is not None:
        argv += ["--artifacts", str(artifacts)]
    if local:  # the fleet holds this machine's lock for all its local workers
        argv.append("--allow-concurrent")
    if args.verbose:
        argv.append("--verbose")
    return argv


def _check_options(args: argparse.Namespace) -> None:
    if args.scheduler is None and args.local is None:
        raise _usage_error(
            "say where the fleet runs: --scheduler tcp://HOST:8786 (the Dask scheduler the "
            "machines' `xfbench worker`s joined) or --local N (N worker processes on this "
            "machine, to try it)"
        )
    if args.scheduler is not None and args.local is not None:
        raise _usage_error(
            "--scheduler and --local exclude each other: a fleet runs on a scheduler's "
            "workers or on local worker processes, not both"
        )
    if args.local is not None and args.local < 1:
        raise _usage_error(f"--local needs 1 or more worker processes, got {args.local}")
    if args.scheduler is not None:
        args.scheduler = scheduler_address(args.scheduler)
    if not (args.group_timeout > 0 and args.group_timeout < float("inf")):
        raise _usage_error(
            f"--group-timeout must be a number of seconds, more than 0, got {args.group_timeout}"
        )
    if not (args.wait_workers >= 0 and args.wait_workers < float("inf")):
        raise _usage_error(
            f"--wait-workers must be a number of seconds, 0 or more, got {args.wait_workers}"
        )


# --------------------------------------------------------------------------- xfbench fleet


def cmd_fleet(args: argparse.Namespace) -> int:
    from bench.cli import parse_matrix, writable_dir

    _check_options(args)  # every option is checked before anything connects or starts
    # -t is for the workers' machines: a remote fleet's are checked there, not here.
    m = parse_matrix(args, here=args.local is not None)
    tasks = fleet_tasks(args, m)
    _distributed()
    _quiet_dask(args.verbose)
    out = writable_dir(args.out.resolve(), "run folders", "--out")
    from bench.history.ingest import check_history

    check_history(args.db, out)  # as bench does: a bad --db stops the fleet before it starts
    if args.local is None:
        client = _connect(args.scheduler)
        try:
            return Fleet(args, m, tasks, client, out, args.scheduler, None).run()
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
    return _run_local(args, m, tasks, out)


#: Packages Dask compares between client and workers that no task of the fleet uses:
#: a worker from `tox -e worker` has no pandas, and that is no mismatch worth a warning.
UNUSED_ON_WORKERS = frozenset({"pandas", "numpy", "lz4"})


def _connect(address: str) -> Any:
    """A client of the scheduler at ``address``, or a :class:`UsageError` within
    :data:`CONNECT_TIMEOUT_S`. Dask's version check is passed on unless it names only
    packages the tasks do not use."""
    import warnings

    from distributed import Client

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise _unreachable(address, exc) from None
    for w in caught:
        if version_warning_matters(str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return client


def version_warning_matters(text: str) -> bool:
    """False for Dask's "Mismatched versions found" table when it names only packages
    the fleet's tasks do not use (:data:`UNUSED_ON_WORKERS`); True for anything else."""
    if not text.startswith("Mismatched versions found"):
        return True
    packages = set(re.findall(r"^\| (\S+)\s+\|", text, flags=re.M)) - {"Package"}
    return not packages or not packages <= UNUSED_ON_WORKERS


def _run_local(args: argparse.Namespace, m: dict[str, Any], tasks: list[Task], out: Path) -> int:
    from bench.cli import DEFAULT_ARTIFACTS, writable_dir
    from bench.fingerprint import detect_gpus
    from bench.lock import machine_lock

    gpu = bool(detect_gpus())
    if any(t.device == "cuda" for t in tasks) and not gpu:
        raise _usage_error(
            "no CUDA GPU found on this machine, so no --local worker can time the cuda "
            "groups: leave cuda out of -d here, or run `xfbench worker` on a GPU machine "
            "and the fleet with --scheduler"
        )
    artifacts = writable_dir(
        (args.artifacts or DEFAULT_ARTIFACTS).resolve(),
        "trained models",
        "--artifacts (or XFBENCH_ARTIFACTS)",
    )
    with machine_lock(out):
        _build_once(args, m, artifacts)
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}):
            cluster = LocalCluster(
                n_workers=args.local,
                threads_per_worker=1,
                processes=True,
                resources={"slot": 1, **({"cuda": 1} if gpu else {})},
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=0,  # the frameworks run in the runner's processes, not here
                silence_logs=logging.WARNING if args.verbose else logging.CRITICAL,
            )
        try:
            with Client(cluster, set_as_default=False) as client:
                fleet = Fleet(args, m, tasks, client, out, cluster.scheduler_address, args.local)
                fleet.artifacts = artifacts
                return fleet.run()
        finally:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)


def _build_once(args: argparse.Namespace, m: dict[str, Any], artifacts: Path) -> None:
    """--local: build (or reuse) every model before the workers start, so that no two
    of them build one model into the shared artifacts folder at the same moment."""
    from bench import cli

    print(f"xfbench: fleet: building the models once for the {args.local} local workers")
    zoo, equivalence = cli.run_zoo(
        m["frameworks"],
        m["models"],
        artifacts,
        progress=False,
        devices=tuple(m["devices"]),
        verbose=args.verbose,
    )
    if zoo:
        print(cli.format_summary(zoo, equivalence, artifacts), flush=True)


class Fleet:
    """One fleet run: the client's side, from the workers' check to the merged report."""

    def __init__(
        self,
        args: argparse.Namespace,
        m: dict[str, Any],
        tasks: list[Task],
        client: Any,
        out: Path,
        address: str,
        local: int | None,
    ) -> None:
        self.args, self.m, self.tasks, self.client = args, m, tasks, client
        self.out, self.address, self.local = out, address, local
        self.artifacts: Path | None = args.artifacts
        self.topic = f"xfbench-fleet-{uuid.uuid4().hex[:12]}"
        self.names: dict[str, str] = {}  # worker address -> name
        self.facts: dict[str, dict[str, Any]] = {}  # worker address -> worker_facts()
        self.workers: list[dict[str, Any]] = []  # as the fleet started
        self.starts: dict[str, list[dict[str, Any]]] = {}  # task key -> start events
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}  # task label -> what became of it
        self.parts: list[Path] = []
        self.running: dict[Any, Task] = {}  # the futures submitted and not yet stored
        self.fleet_dir = Path()

    # ---- console

    def say(self, line: str) -> None:
        print(f"xfbench: {line}", flush=True)

    def _name(self, address: str | None, fallback: Any = None) -> str:
        if address in self.names:
            return self.names[address]
        return str(fallback if fallback not in (None, "") else address)

    # ---- the workers

    def _worker_info(self) -> dict[str, dict[str, Any]]:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # Dask before n_workers
            info = self.client.scheduler_info()
        workers = info.get("workers", {}) or {}
        for address, w in workers.items():
            name = w.get("name", address)
            self.names[address] = f"local-{name}" if self.local else str(name)
        return workers

    def _check_workers(self) -> None:
        """A worker, one that offers ``slot``, a ``cuda`` one for GPU groups, and every
        worker able to run xfbench tasks; else a :class:`UsageError` naming the fix."""
        try:
            self.client.wait_for_workers(1, timeout=FIRST_WORKER_WAIT_S)
        except (TimeoutError, OSError):
            raise _usage_error(
                f"the Dask scheduler at {self.address} has no worker (waited "
                f"{FIRST_WORKER_WAIT_S} s): start `xfbench worker {self.address}` (or `tox -e "
                f"worker -- {self.address}`) on each machine, then run the fleet again"
            ) from None
        workers = self._worker_info()
        slots = [a for a, w in workers.items() if (w.get("resources") or {}).get("slot", 0) >= 1]
        if not slots:
            raise _usage_error(
                f"no worker of the scheduler at {self.address} offers the resource slot=1 "
                f"({', '.join(self.names.values())}): start the machines' workers with "
                f"`xfbench worker {self.address}`, which gives each one slot=1 (a machine "
                "times one group at a time)"
            )
        gpu_tasks = [t.label for t in self.tasks if t.device == "cuda"]
        cuda = [a for a in slots if (workers[a].get("resources") or {}).get("cuda", 0) >= 1]
        if gpu_tasks and not cuda:
            raise _usage_error(
                f"no worker of the scheduler at {self.address} has a CUDA GPU (the resource "
                f"cuda=1), so nothing can time the GPU groups ({', '.join(gpu_tasks)}): run "
                f"`xfbench worker {self.address}` on a GPU machine (it offers cuda=1 where "
                "nvidia-smi finds a GPU), or leave cuda out of -d"
            )
        from bench.fleet_task import worker_facts

        try:
            facts = self.client.run(worker_facts, workers=slots, on_error="return")
        except TypeError:  # Dask before on_error
            facts = self.client.run(worker_facts, workers=slots)
        broken = {a: f for a, f in facts.items() if isinstance(f, BaseException)}
        if broken:
            address, exc = next(iter(broken.items()))
            raise _usage_error(
                f"worker {self._name(address)} ({address}) cannot run xfbench tasks "
                f"({type(exc).__name__}: {exc}): start it with `xfbench worker` in an xfbench "
                "checkout"
            )
        self.facts = facts
        self.workers = [
            {
                "name": self._name(a),
                "address": a,
                "resources": workers[a].get("resources") or {},
                **facts[a],
            }
            for a in slots
        ]

    # ---- the run

    def run(self) -> int:
        from bench.cli import make_report
        from bench.fingerprint import git_commit
        from bench.rundir import mark_complete, mark_incomplete, new_run_dir

        self._check_workers()
        label = f"{socket.gethostname()}-fleet" + ("-quick" if self.args.quick else "")
        self.fleet_dir = new_run_dir(self.out, label)
        (self.fleet_dir / PARTS).mkdir()
        mark_incomplete(self.fleet_dir)
        self.started = time.time()
        for task in self.tasks:
            self.records[task.label] = {
                "label": task.label,
                "group": task.group,
                "device": task.device,
                "threads": task.threads,
                "status": "pending",
            }
        self._save()
        where = f"{self.local} local worker processes" if self.local else self.address
        self.say(f"fleet run folder {self.fleet_dir}")
        self.say(
            f"fleet: {len(self.tasks)} worker groups ({', '.join(t.label for t in self.tasks)}) "
            f"on {where}, one group per worker at a time"
        )
        mine = git_commit().get("commit")
        for w in self.workers:
            gpus = f", GPU {', '.join(w['gpus'])}" if w.get("gpus") else ""
            self.say(f"fleet:   worker {w['name']}: host {w['host']}, {w['cpus']} CPUs{gpus}")
            if w.get("commit") not in (None, "unknown", mine):
                self.say(
                    f"fleet: warning: worker {w['name']} runs commit {str(w['commit'])[:12]}, "
                    f"this checkout {str(mine)[:12]}: its groups are timed with other code"
                )
        if self.local:
            self.say(
                f"fleet: the {self.local} local workers share this machine's cores: their "
                "timings are not comparable (the report says so first)"
            )
        try:
            self._drive()
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", 2)
            name = "Ctrl-C (SIGINT)" if signum == 2 else "SIGTERM"
            self._salvage()
            self._cancel_all(f"the fleet client was interrupted by {name}")
            mark_incomplete(self.fleet_dir, f"interrupted by {name}", signal=int(signum))
            self._save()
            self.say(
                f"interrupted by {name}: the groups still running were cancelled (their "
                f"runners stopped); {len(self.parts)} finished part(s) are kept in "
                f"{self.fleet_dir / PARTS}; writing the report of what finished"
            )
            self._report_incomplete()
            return 128 + int(signum)
        except ConnectionLost as exc:
            reason = str(exc)
            self.say(f"fleet: {reason}")
            for task in self.tasks:  # still pending, or sent and now cancelled by Dask
                if self.records[task.label]["status"] in ("pending", "submitted"):
                    key = self.records[task.label].get("key")
                    self._fail(task, reason, self._attempts(key) if key else None)
            self.running.clear()
            mark_incomplete(self.fleet_dir, reason)
            self._save()
            self.say(
                f"fleet: {len(self.parts)} part(s) are kept in {self.fleet_dir / PARTS}; "
                "writing the report of what arrived"
            )
            self._report_incomplete()
            return 1
        except Exception as exc:  # the fleet's own fault: what arrived is still reported
            reason = f"the fleet client stopped on an error: {type(exc).__name__}: {exc}"
            self._cancel_all(reason)
            mark_incomplete(self.fleet_dir, reason)
            self._save()
            self.say(
                f"fleet: {reason}; the groups still running were cancelled; "
                f"{len(self.parts)} finished part(s) are kept in {self.fleet_dir / PARTS}"
            )
            self._report_incomplete()
            return 1
        mark_complete(self.fleet_dir)
        self.finished = time.time()
        self._save()
        failed = [r for r in self.records.values() if r["status"] != "ok"]
        minutes, seconds = divmod(round(self.finished - self.started), 60)
        self.say(
            f"fleet: finished in {minutes} min {seconds} s: {len(self.records) - len(failed)} "
            f"of {len(self.records)} groups timed"
            + (f"; failed: {', '.join(r['label'] for r in failed)}" if failed else "")
        )
        report_status = make_report(self.parts, self.fleet_dir, self._title(), self.args)
        ok = all(r["status"] == "ok" and r.get("cases_ok") for r in self.records.values())
        return report_status or (0 if ok else 1)

    def _report_incomplete(self) -> None:
        """The merged report of the parts that arrived, for a fleet that stopped early."""
        from bench.cli import make_report

        try:
            if self.parts:
                make_report(self.parts, self.fleet_dir, self._title(" (incomplete)"), self.args)
        except Exception as exc:
            self.say(f"fleet: warning: no merged report: {type(exc).__name__}: {exc}")

    def _title(self, suffix: str = "") -> str:
        where = f"--local {self.local}" if self.local else self.address
        return f"xfbench fleet run {self.fleet_dir.name} ({where}){suffix}"

    def _drive(self) -> None:
        """Submit as many groups as there are free slots, store each as it finishes."""
        from distributed import as_completed

        self.client.subscribe_topic(self.topic, self._on_event)
        pending = deque(self.tasks)
        running = self.running
        done = as_completed(loop=self.client.loop)
        no_worker_since: dict[str, float] = {}
        while pending or running:
            self._check_connection()
            workers = self._worker_info()
            slots = [w for w in workers.values() if (w.get("resources") or {}).get("slot", 0) >= 1]
            gpus = [w for w in slots if (w.get("resources") or {}).get("cuda", 0) >= 1]
            free = len(slots) - len(running)
            free_gpu = gpu_slots(gpus, bool(self.local)) - sum(
                t.device == "cuda" for t in running.values()
            )
            for task in list(pending):
                if free <= 0:
                    break
                if task.device == "cuda":
                    if free_gpu <= 0:
                        continue
                    free_gpu -= 1
                free -= 1
                pending.remove(task)
                future = self._submit(task)
                running[future] = task
                done.add(future)
            self._no_worker_watch(pending, running, len(slots), len(gpus), no_worker_since)
            finished = done.next_batch(block=False) if not done.is_empty() else []
            if not finished:
                time.sleep(0.5)
                continue
            self._check_connection()  # a lost scheduler cancels every future at once
            for future in finished:
                task = running.pop(future, None)
                if task is not None:
                    with _signals_deferred():  # a part is stored and recorded whole
                        self._handle(future, task)

    def _salvage(self) -> None:
        """On an interrupt: store the groups that finished but were not read yet, before
        the rest are cancelled (a later Ctrl-C is ignored meanwhile: bench/cli.py)."""
        for future, task in list(self.running.items()):
            if getattr(future, "status", None) in ("finished", "error"):
                self.running.pop(future)
                self._handle(future, task)

    def _handle(self, future: Any, task: Task) -> None:
        """:meth:`_finish`, where any error becomes that group's failure, not the
        fleet's: the other groups run on."""
        try:
            self._finish(future, task)
        except Exception as exc:
            if self.records[task.label]["status"] in ("ok", "failed"):
                self.say(f"fleet: warning: {task.label}: {type(exc).__name__}: {exc}")
                return
            attempts = self.records[task.label].get("attempts") or self._attempts(future.key)
            reason = f"its result could not be read: {type(exc).__name__}: {exc}"
            self._fail(task, reason, attempts, host=self.records[task.label].get("host"))

    def _check_connection(self) -> None:
        """:class:`ConnectionLost` once the client is no longer connected: Dask then
        cancels every future it had, and closes the client if it cannot reconnect."""
        status = str(getattr(self.client, "status", "running"))
        if status != "running":
            raise ConnectionLost(
                f"lost the connection to the scheduler {self.address}: the Dask client is "
                f"{status!r}, and Dask cancels every group it had sent when its connection "
                "closes; their cases were not measured: run the fleet again for them"
            )

    def _submit(self, task: Task) -> Any:
        from bench.fleet_task import run_group

        key = f"xfbench-{task.label}-{uuid.uuid4().hex[:8]}"
        payload = {
            "label": task.label,
            "topic": self.topic,
            "runner": TASK_RUNNER,
            "timeout_s": self.args.group_timeout,
            "argv": task_argv(self.args, self.m, task, bool(self.local), self.artifacts),
        }
        self.records[task.label].update(status="submitted", key=key)
        return self.client.submit(
            run_group, payload, key=key, resources=task.resources, pure=False, retries=0
        )

    def _on_event(self, event: Any) -> None:
        """A task started on a worker (Dask's event stream, on the client's own thread)."""
        msg = event[1] if isinstance(event, tuple | list) and len(event) == 2 else event
        if not isinstance(msg, dict) or msg.get("event") != "start":
            return
        with self.lock:
            tries = self.starts.setdefault(str(msg.get("key")), [])
            tries.append(msg)
        name = self._name(msg.get("address"), msg.get("worker"))
        again = ""
        if len(tries) > 1:
            lost = ", ".join(self._name(t.get("address"), t.get("worker")) for t in tries[:-1])
            again = f" (try {len(tries)}: lost on {lost})"
        self.say(f"fleet: {msg.get('label')} started on {name} (host {msg.get('host')}){again}")

    def _attempts(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"worker": self._name(t.get("address"), t.get("worker")), "host": t.get("host")}
                for t in self.starts.get(key, [])
            ]

    def _no_worker_watch(
        self,
        pending: deque[Task],
        running: dict[Any, Task],
        slots: int,
        gpus: int,
        since: dict[str, float],
    ) -> None:
        """Groups that no worker left in the fleet can run (none at all, or no GPU one)
        wait ``--wait-workers`` seconds for one, then become error rows."""
        now = time.time()
        for kind, count in (("any", slots), ("cuda", gpus)):
            if count:
                since.pop(kind, None)
                continue
            since.setdefault(kind, now)
            if now - since[kind] < self.args.wait_workers:
                continue
            stuck = [
                t for t in [*pending, *running.values()] if kind == "any" or t.device == "cuda"
            ]
            if not stuck:
                continue
            what = "no worker" if kind == "any" else "no worker with a CUDA GPU (cuda=1)"
            reason = (
                f"{what} was left in the fleet for {self.args.wait_workers:g} s (--wait-workers), "
                "so nothing could time this group: start `xfbench worker "
                f"{self.address}` on a {'GPU ' if kind == 'cuda' else ''}machine and time "
                "this group again"
            )
            for task in stuck:
                if task in pending:
                    pending.remove(task)
                    self._fail(task, reason, None)
            for future, task in list(running.items()):
                if task in stuck:
                    running.pop(future)
                    future.cancel()
                    self._fail(task, reason, self._attempts(future.key))

    def _cancel_all(self, reason: str) -> None:
        for record in self.records.values():
            if record["status"] in ("pending", "submitted"):
                record.update(status="cancelled", reason=reason)
        with contextlib.suppress(Exception):  # their workers stop the runners (fleet_task)
            self.client.cancel(list(self.running), force=True)

    # ---- a finished task

    def _finish(self, future: Any, task: Task) -> None:
        key = future.key
        attempts = self._attempts(key)
        try:
            if future.status == "error":
                self._fail(task, self._lost_reason(future.exception(), attempts), attempts)
                return
            if future.status == "cancelled":
                self._fail(task, "the task was cancelled", attempts)
                return
            result = future.result(timeout=RESULT_TIMEOUT_S)
        finally:
            with contextlib.suppress(Exception):
                future.release()
        worker = self._name(result.get("address"), result.get("worker"))
        record = self.records[task.label]
        record.update(
            worker=worker,
            host=result.get("host"),
            attempts=attempts,
            exit_status=result.get("returncode"),
            elapsed_s=result.get("elapsed_s"),
        )
        if result.get("status") == "timeout":
            tail = [line for line in result.get("log_tail") or [] if line.strip()]
            reason = (
                f"the runner on worker {worker} (host {result.get('host')}) ran past "
                f"--group-timeout {self.args.group_timeout:g} s and was stopped (its process "
                f"group killed); its output ended: {tail[-1].strip() if tail else '(none)'}; "
                "raise --group-timeout if the group needs longer"
            )
            self._fail(task, reason, attempts, host=result.get("host"))
            return
        if not result.get("payload"):
            error = next(
                (
                    line
                    for line in reversed(result.get("log_tail") or [])
                    if line.startswith("xfbench: error:")
                ),
                (result.get("log_tail") or ["(no output)"])[-1],
            )
            reason = (
                f"the runner on worker {worker} (host {result.get('host')}) exited with status "
                f"{result.get('returncode')} and no run folder: {error.strip()}"
            )
            self._fail(task, reason, attempts, host=result.get("host"))
            return
        try:
            part = self._store(task, result, attempts)
        except Exception as exc:  # a bad archive, a full disk: this group's failure
            reason = (
                f"its run folder could not be stored: {type(exc).__name__}: {exc} (from "
                f"worker {worker}, host {result.get('host')})"
            )
            self._fail(task, reason, attempts, host=result.get("host"))
            return
        counts = self._case_counts(part)
        record.update(status="ok", part=part.name, cases=counts, cases_ok=_all_ok(counts, result))
        from bench.rundir import incomplete_reason

        unfinished = incomplete_reason(part)
        if unfinished is not None or result.get("returncode") not in (0, 1):
            why = unfinished or "the run folder does not say why"
            reason = (
                f"the runner on worker {worker} (host {result.get('host')}) stopped partway "
                f"(exit status {result.get('returncode')}): {why}; the cases it finished are "
                "kept, the rest were not measured"
            )
            record.update(status="partial", reason=reason, cases_ok=False)
            fp_path = part / "fingerprint.json"
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                fp = json.loads(fp_path.read_text())
                fp["fleet"]["task"].update(status="partial", reason=reason)
                fp_path.write_text(json.dumps(fp, indent=2) + "\n")
            self._save()
            self.say(f"fleet: {task.label} PARTIAL: {reason}; {part.relative_to(self.fleet_dir)}")
            with contextlib.suppress(Exception):
                self._part_report(part, f"{task.label} on {worker}: partial")
            return
        tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self.say(
            f"fleet: {task.label} done on {worker} in {_minutes(result.get('elapsed_s') or 0)}: "
            f"{tally or 'no case'}"
            + (f" (exit status {result['returncode']})" if result.get("returncode") else "")
            + f"; {part.relative_to(self.fleet_dir)}"
        )
        self._save()
        self._report_and_ingest(part, f"{task.label} on {worker}")

    def _lost_reason(self, exc: BaseException, attempts: list[dict[str, Any]]) -> str:
        names = [a["worker"] for a in attempts]
        if type(exc).__name__ == "KilledWorker":
            allowed = getattr(exc, "allowed_failures", None)
            last = getattr(exc, "last_worker", None)
            if names:
                counts = Counter(names)
                if len(counts) == 1:
                    times = {1: "", 2: " twice"}.get(len(names), f" {len(names)} times")
                    who = f"worker {names[0]} was lost{times}"
                else:
                    who = "workers " + ", then ".join(names) + " were lost"
                text = f"{who} while timing this group"
            else:
                where = self._name(getattr(last, "address", None), getattr(last, "name", None))
                text = f"the worker it was sent to ({where}) was lost before it started"
            tries = ""
            if allowed is not None:
                plural = "try" if allowed == 0 else "tries"
                tries = (
                    f": Dask gives a group {allowed + 1} {plural}, "
                    f"distributed.scheduler.allowed-failures = {allowed}"
                )
            return (
                f"{text} (KilledWorker{tries}); its cases were not measured, the other groups' "
                "results are kept: run the fleet again for this group"
            )
        where = f" on {names[-1]}" if names else ""
        return f"the task failed{where}: {type(exc).__name__}: {exc}"

    def _fail(
        self,
        task: Task,
        reason: str,
        attempts: list[dict[str, Any]] | None,
        host: str | None = None,
    ) -> None:
        """``task``'s cases (and cold starts) as error rows with ``reason``, in a part of
        their own, so the report and summary.csv show them."""
        attempts = attempts or []
        host = host or (attempts[-1]["host"] if attempts else None)
        record = self.records[task.label]
        worker = attempts[-1]["worker"] if attempts else None
        record.update(status="failed", reason=reason, attempts=attempts, host=host, worker=worker)
        try:
            part = self._failure_part(task, reason, host, attempts)
            record["part"] = part.name
            self.say(f"fleet: {task.label} FAILED: {reason}")
        except Exception as exc:  # the record in fleet.json still says what happened
            self.say(f"fleet: {task.label} FAILED: {reason} (its error rows: {exc})")
        self._save()

    def _failure_part(
        self, task: Task, reason: str, host: str | None, attempts: list[dict[str, Any]]
    ) -> Path:
        from bench.cli import only_group_frameworks

        threads = task.threads or self._cpus(host)
        m = {
            **self.m,
            "frameworks": only_group_frameworks(task.group, self.m["frameworks"], self.m["models"]),
            "devices": [task.device],
            "threads": [threads],
        }
        staging = self._staging(task)
        try:
            part = self._failure_rows(task, reason, host, attempts, m, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with contextlib.suppress(Exception):
            self._part_report(part, f"{task.label}: not timed")
        return part

    def _failure_rows(
        self,
        task: Task,
        reason: str,
        host: str | None,
        attempts: list[dict[str, Any]],
        m: dict[str, Any],
        staging: Path,
    ) -> Path:
        from bench.cli import run_plan
        from bench.orchestrator import COLD_SCHEMA
        from bench.runner import append_record, failure_records
        from bench.testhooks import active

        args = _with(self.args, only_group=task.group, artifacts=Path("artifacts"))
        plan = run_plan(args, m, staging / "raw")
        for wp in plan.worker_plans(1):
            failure_records(wp, "error", reason)
        plan.raw_dir.mkdir(parents=True, exist_ok=True)
        for case in plan.cold_cases() if plan.cold_starts else []:
            append_record(
                plan.raw_dir / "coldstart.jsonl",
                {
                    "schema": COLD_SCHEMA,
                    "event": "cold",
                    **case.as_dict(),
                    "process": 1,
                    "status": "error",
                    "reason": reason,
                    "t": time.time(),
                },
            )
        fingerprint = {
            "machine": {"host": host or "(no worker)", "time": _iso(time.time())},
            "mode": "quick" if self.args.quick else "full",
            "options": {**m, "only_group": task.group},
            "test_hooks": active(),
            "fleet": self._fleet_meta(task, attempts, "failed", reason),
        }
        (staging / "fingerprint.json").write_text(json.dumps(fingerprint, indent=2) + "\n")
        (staging / "models.json").write_text("[]\n")
        from bench.rundir import mark_incomplete

        # Not a run that measured anything: `xfbench history ingest` refuses it as it
        # refuses any unfinished run (the fleet adds only the parts that were timed).
        mark_incomplete(staging, f"this worker group was not timed: {reason}")
        device = "gpu" if task.device == "cuda" else "cpu"
        quick = "-quick" if self.args.quick else ""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self._place(staging, f"{stamp}-{_safe(host or 'no-worker')}-{device}{quick}")

    def _cpus(self, host: str | None) -> int:
        """The CPU count of ``host``'s worker (a group without -t times at it)."""
        known = [f for f in self.facts.values() if isinstance(f, dict)]
        for f in known:
            if f.get("host") == host:
                return int(f.get("cpus") or 1)
        return min((int(f.get("cpus") or 1) for f in known), default=1)

    def _staging(self, task: Task) -> Path:
        staging = self.fleet_dir / PARTS / f".incoming-{task.label}-{uuid.uuid4().hex[:6]}"
        staging.mkdir(parents=True)
        return staging

    def _place(self, staging: Path, name: str) -> Path:
        """``staging`` renamed to ``parts/<name>`` (``-2``, ``-3`` ... where taken)."""
        for n in range(1, 1000):
            part = self.fleet_dir / PARTS / (name + (f"-{n}" if n > 1 else ""))
            try:
                os.rename(staging, part)  # onto an existing empty folder too: never happens
                if part not in self.parts:
                    self.parts.append(part)
                return part
            except OSError:
                if part.exists():
                    continue
                raise
        raise RuntimeError(f"no free name for {name} under {self.fleet_dir / PARTS}")

    def _store(self, task: Task, result: dict[str, Any], attempts: list[dict[str, Any]]) -> Path:
        """The returned run folder, unpacked into ``parts/`` under its own name (made
        unique within the fleet), its fingerprint marked with the fleet and the task."""
        import io

        staging = self._staging(task)
        try:
            with tarfile.open(fileobj=io.BytesIO(result["payload"]), mode="r:gz") as tar:
                _extract(tar, staging)
            tops = sorted(p.name for p in staging.iterdir())
            if len(tops) != 1 or not (staging / tops[0]).is_dir():
                raise ValueError(
                    f"expected one run folder at the top of the archive, found {tops or 'none'}"
                )
            inner = staging / tops[0]
            fp_path = inner / "fingerprint.json"
            with contextlib.suppress(OSError, ValueError):
                fp = json.loads(fp_path.read_text())
                fp["fleet"] = self._fleet_meta(task, attempts, "ok", None, result)
                fp_path.write_text(json.dumps(fp, indent=2) + "\n")
            part = self._place(inner, inner.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return part

    def _fleet_meta(
        self,
        task: Task,
        attempts: list[dict[str, Any]],
        status: str,
        reason: str | None,
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What a part's fingerprint records of its fleet (``fleet``), for the report."""
        return {
            "run": self.fleet_dir.name,
            "scheduler": None if self.local else self.address,
            "local": self.local,
            "workers": [
                {k: w.get(k) for k in ("name", "host", "cpus", "gpus", "resources")}
                for w in self.workers
            ],
            "task": {
                "label": task.label,
                "group": task.group,
                "device": task.device,
                "threads": task.threads,
                # The worker that returned it; for a group not timed, the last that tried.
                "worker": self._name(result.get("address"), result.get("worker"))
                if result is not None
                else (attempts[-1]["worker"] if attempts else None),
                "host": result.get("host")
                if result is not None
                else (attempts[-1]["host"] if attempts else None),
                "attempts": [a["worker"] for a in attempts],
                "status": status,
                "reason": reason,
                "exit_status": None if result is None else result.get("returncode"),
            },
        }

    def _case_counts(self, part: Path) -> dict[str, int]:
        from bench.report.load import CASE_SCHEMAS
        from bench.runner import read_records

        ends: dict[str, str] = {}
        for path in sorted((part / "raw").glob("*.jsonl")):
            if path.name == "coldstart.jsonl":
                continue
            for rec in read_records(path):
                if rec.get("event") == "end" and rec.get("schema") in CASE_SCHEMAS:
                    cid = str(rec.get("case_id"))
                    if ends.get(cid) != "ok":  # ok if any process measured it
                        ends[cid] = str(rec.get("status"))
        return dict(Counter(ends.values()))

    def _part_report(self, part: Path, what: str) -> None:
        from bench.report import write_report

        write_report(
            [part], part, title=f"xfbench run {part.name} (fleet {self.fleet_dir.name}: {what})"
        )

    def _report_and_ingest(self, part: Path, what: str) -> None:
        """The part's own report (its summary.csv names it), then the history."""
        try:
            self._part_report(part, what)
        except Exception as exc:
            self.say(f"fleet: warning: no report for {part.name}: {exc}")
            return
        from bench.history.ingest import ingest_after_run

        ingest_after_run(part, self.args.db, self.out, lambda line: self.say(f"fleet: {line}"))

    def _save(self) -> None:
        """``fleet.json``: the fleet, its workers and what became of every group."""
        from bench.atomic import atomic_write_text

        data = {
            "schema": FLEET_SCHEMA,
            "run": self.fleet_dir.name,
            "scheduler": None if self.local else self.address,
            "local": self.local,
            "started": _iso(getattr(self, "started", None)),
            "finished": _iso(getattr(self, "finished", None)),
            "options": {k: v for k, v in self.m.items()},
            "workers": self.workers,
            "tasks": list(self.records.values()),
            "parts": [p.name for p in self.parts],
        }
        atomic_write_text(
            self.fleet_dir / FLEET_FILE, json.dumps(data, indent=2, default=str) + "\n"
        )


@contextlib.contextmanager
def _signals_deferred() -> Any:
    """SIGINT and SIGTERM held back for the block, then handled as they would have
    been (the main thread only; elsewhere the block runs as it is)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in kinds}
    for s in kinds:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if caught:
        handler = before[caught[0]]
        if callable(handler):
            handler(caught[0], None)
        elif handler == signal.SIG_DFL and caught[0] == signal.SIGINT:
            raise KeyboardInterrupt
        elif handler == signal.SIG_DFL:
            signal.raise_signal(caught[0])


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """A worker's run folder, unpacked with nothing outside ``into``: Python's "data"
    filter where this Python has it (files, folders, and links that stay inside the
    folder; absolute names are made relative, ``..`` and device files refused), else
    plain files and folders only."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    for member in tar.getmembers():
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise ValueError(f"refusing {member.name!r} in a worker's run folder")
    tar.extractall(into)  # every member checked above


def _all_ok(counts: dict[str, int], result: dict[str, Any]) -> bool:
    return result.get("returncode") == 0 and set(counts) <= {"ok", "unsupported"}


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "unknown"


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


# --------------------------------------------------------------------------- xfbench worker


def worker_command(address: str, name: str, gpu: bool) -> list[str]:
    """The ``dask worker`` command of a fleet machine."""
    resources = "slot=1" + (" cuda=1" if gpu else "")
    return [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        address,
        "--name",
        name,
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--resources",
        resources,
        "--memory-limit",
        "0",  # the frameworks run in the runner's processes, which Dask does not see
        "--no-dashboard",
    ]


def _reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise _unreachable(address, exc.strerror or exc) from None


def cmd_worker(args: argparse.Namespace) -> int:
    from bench.fingerprint import detect_gpus

    given = [a for a in (args.address, args.scheduler) if a]
    if len(given) != 1:
        raise _usage_error(
            "name the scheduler once: `xfbench worker tcp://HOST:8786` (or --scheduler "
            "tcp://HOST:8786); start it on the head node with `dask scheduler`"
        )
    address = scheduler_address(given[0], "xfbench worker")
    _distributed()
    name = args.name or socket.gethostname()
    gpus = detect_gpus()
    command = worker_command(address, name, bool(gpus))
    print(
        f"xfbench: worker {name} for the scheduler at {address}: one process, one thread, "
        f"resources slot=1{' cuda=1 (' + ', '.join(g.name for g in gpus) + ')' if gpus else ''}",
        flush=True,
    )
    print(f"xfbench: {shlex.join(command)}", flush=True)
    if args.dry_run:
        return 0
    _reachable(address)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # the worker is this process from now on
    return 0  # pragma: no cover - execv does not return
