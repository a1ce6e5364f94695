"""Command line: ``xfbench <command>`` (or ``python -m bench <command>``).

    xfbench list                              frameworks, models, where each is installed
    xfbench zoo                               train + export + verify everything
    xfbench zoo -f torch -m cnn               one framework, one model
    xfbench zoo --force                       rebuild even where artifacts are current

Names are checked before any environment is created or any model trained. Each
framework's work runs in a worker process with that framework's own interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from bench.adapters import (
    FrameworkNotInstalledError,
    UnknownFrameworkError,
    check_framework,
    framework_names,
    is_installed,
)
from bench.history import HistoryError
from bench.lock import BenchRunningError
from bench.rundir import new_run_dir
from models.spec import BENCH_DEFAULT_MODELS, MODEL_NAMES, arch_of

DEFAULT_ARTIFACTS = Path(os.environ.get("XFBENCH_ARTIFACTS", "artifacts"))


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit status 2."""


def _split(values: list[str] | None) -> list[str]:
    """``-f torch -f mxnet`` and ``-f torch,mxnet`` both work."""
    return [v for value in values or [] for v in value.split(",") if v]


def resolve_selection(
    frameworks: list[str] | None, models: list[str] | None
) -> tuple[list[str], list[str]]:
    """Validate names; none given means all, but a value naming nothing (``-f ''``) is
    an error. Errors list the valid values."""
    for given, what, valid in (
        (frameworks, "framework", framework_names()),
        (models, "model", MODEL_NAMES),
    ):
        if given is not None and not _split(given):
            raise UsageError(f"empty {what} list; valid {what}s: {', '.join(valid)}")
    fws = _split(frameworks) or list(framework_names())
    for fw in fws:
        try:
            check_framework(fw)
        except UnknownFrameworkError as exc:
            raise UsageError(str(exc)) from None
    from bench.matrix import MatrixError, validate_models

    try:
        mods = validate_models(models)  # sizes too: mlp@x16
    except MatrixError as exc:
        raise UsageError(str(exc)) from None
    return list(dict.fromkeys(fws)), mods


def run_worker(
    framework: str,
    stage: str,
    models: list[str],
    artifacts: Path,
    extra: list[str],
    devices: tuple[str, ...] = ("cpu",),
    log: Path | None = None,
) -> list[dict[str, Any]]:
    """Run one framework's zoo worker; a crash becomes error rows, never an exception.
    With ``log``, the worker's output (the framework's own chatter) is appended there
    instead of the console, and its last lines are shown when something failed."""
    from bench.envs import interpreter_for

    python = interpreter_for(framework, devices)
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            str(python),
            "-m",
            "bench.worker",
            stage,
            "--framework",
            framework,
            "--artifacts",
            str(artifacts),
            "--result-file",
            str(result_file),
            *[a for m in models for a in ("--model", m)],
            *extra,
        ]
        from bench.lifeline import child_env

        with contextlib.ExitStack() as stack:
            out = None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(open(log, "a"))
                out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
                out.flush()
            proc = subprocess.run(
                cmd,
                env={**os.environ, **child_env()},
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                check=False,
            )
        done = json.loads(result_file.read_text()) if result_file.exists() else []
    finished = {r["model"] for r in done}
    lost = [m for m in models if m not in finished]
    if lost:
        reason = f"worker exited with status {proc.returncode} before finishing"
        done += [
            {"framework": framework, "model": m, "status": "error", "reason": reason} for m in lost
        ]
    if log is not None and any(r["status"] == "error" for r in done):
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        print(
            f"xfbench: the {framework} {stage} worker reported errors; the end of {log}:\n"
            + "\n".join(f"  {line}" for line in tail),
            file=sys.stderr,
        )
    return done


def run_zoo(
    frameworks: list[str],
    models: list[str],
    artifacts: Path,
    *,
    force: bool = False,
    threads: int | None = None,
    progress: bool = True,
    equivalence: bool = False,
    devices: tuple[str, ...] = ("cpu",),
    verbose: bool = False,
    cpu_only: Collection[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Build (or reuse) every framework x model; then compare frameworks' outputs. The
    workers' own output goes to ``<artifacts>/logs/`` unless ``verbose``. Models are
    built on the CPU in the environment of the run's ``devices``, except for frameworks
    in ``cpu_only`` (whose GPU environment cannot run here): their CPU environment builds
    the same models (the build key does not depend on the build)."""
    check_zoo_threads(threads)
    extra = ["--force"] if force else []
    if threads:
        extra += ["--threads", str(threads)]
    if not progress or not verbose:  # progress bars belong on a console, not in a log
        extra.append("--no-progress")

    def log(stage: str, fw: str) -> Path | None:
        return None if verbose else artifacts / "logs" / f"{stage}-{fw}.log"

    from bench.adapters import adapter_class

    results: list[dict[str, Any]] = []
    declared = {
        fw: [m for m in models if arch_of(m) in adapter_class(fw).models] for fw in frameworks
    }
    for fw in frameworks:
        results += [
            {
                "framework": fw,
                "model": m,
                "status": "skipped",
                "reason": f"{fw} declares no {m!r} model",
            }
            for m in models
            if m not in declared[fw]
        ]
        if not declared[fw]:
            continue
        print(f"xfbench: models of {fw} ({', '.join(declared[fw])}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            where = ("cpu",) if fw in cpu_only else devices
            got = run_worker(fw, "zoo", declared[fw], artifacts, extra, where, log("zoo", fw))
        except (FrameworkNotInstalledError, subprocess.CalledProcessError) as exc:
            got = [
                {"framework": fw, "model": m, "status": "error", "reason": str(exc)}
                for m in declared[fw]
            ]
        results += got
        print(f"xfbench:   {_build_tally(got)} in {time.perf_counter() - t0:.0f} s", flush=True)
    built = sorted({r["framework"] for r in results if r["status"] == "ok"})
    rows: list[dict[str, Any]] = []
    if len(built) > 1 or equivalence:
        from bench.atomic import atomic_write_text
        from bench.zoo import compare_equivalence

        problems: list[str] = []  # a damaged or missing output is a warning, not a crash
        for fw in built:
            peers = ["--peers", ",".join(built)]
            where = ("cpu",) if fw in cpu_only else devices
            for r in run_worker(
                fw, "equivalence", declared[fw], artifacts, peers, where, log("equivalence", fw)
            ):
                if r["status"] != "ok":
                    problems.append(f"{fw}/{r['model']}: outputs not recorded: {r['reason']}")
        rows = [row for m in models for row in compare_equivalence(artifacts, m, problems)]
        for problem in problems:
            print(f"xfbench: warning: {problem} (left out of the comparison)", file=sys.stderr)
        atomic_write_text(artifacts / "equivalence.json", json.dumps(rows, indent=2) + "\n")
    return results, rows


def _build_tally(results: list[dict[str, Any]]) -> str:
    """``2 reused, 1 built`` or ``1 error: <reason>``: one worker's models, in words."""
    kinds: dict[str, int] = {}
    for r in results:
        manifest = r.get("manifest") or {}
        if r["status"] != "ok":
            kind = r["status"]
        elif manifest.get("reused"):
            kind = "reused"
        else:
            kind = "rebuilt" if manifest.get("rebuild_reason") else "built"
        kinds[kind] = kinds.get(kind, 0) + 1
    text = ", ".join(f"{n} {k}" for k, n in kinds.items())
    errors = [r for r in results if r["status"] == "error"]
    return text + (f": {errors[0]['reason']}" if errors else "")


def check_zoo_threads(threads: int | None) -> None:
    """``--threads`` of the zoo: a positive whole number, or absent."""
    if threads is not None and threads < 1:
        raise UsageError(
            f"--threads must be a positive number of threads, got {threads}; "
            "use e.g. `--threads 2`, or leave it out for the frameworks' default (all cores)"
        )


def cmd_zoo(args: argparse.Namespace) -> int:
    check_zoo_threads(args.threads)  # before anything is created
    frameworks, models = resolve_selection(args.framework, args.model)
    artifacts = writable_dir(
        args.artifacts.resolve(), "trained models", "--artifacts (or XFBENCH_ARTIFACTS)"
    )
    results, equivalence = run_zoo(
        frameworks,
        models,
        artifacts,
        force=args.force,
        threads=args.threads,
        progress=not args.no_progress,
        equivalence=args.equivalence,
        verbose=args.verbose,
    )
    print(format_summary(results, equivalence, artifacts))
    return 0 if all(r["status"] in ("ok", "skipped") for r in results) else 1


def parse_matrix(args: argparse.Namespace, here: bool = True) -> dict[str, Any]:
    """Every option of ``xfbench bench``, validated before anything is installed.
    ``here``: False where the run is timed on other machines (a remote fleet): ``-t`` is
    then checked on them, not against this machine's CPUs."""
    from bench.matrix import (
        DEVICES,
        MatrixError,
        parse_batch_sizes,
        parse_choices,
        parse_threads,
        with_sizes,
    )

    frameworks, models = resolve_selection(args.framework, args.model)
    if args.model is None:  # the default run's models (models/spec.py says why)
        from models.spec import BENCH_DEFAULT_MODELS

        models = [m for m in models if m in BENCH_DEFAULT_MODELS]
    from bench.adapters import adapter_class

    if not any(arch_of(m) in adapter_class(fw).models for fw in frameworks for m in models):
        offered = "; ".join(f"{fw}: {', '.join(adapter_class(fw).models)}" for fw in frameworks)
        raise UsageError(
            f"none of the chosen frameworks has any of the chosen models, so there is "
            f"nothing to time ({offered}); choose a model one of them has, or add a "
            f"framework that has {', '.join(models)} with -f"
        )
    frameworks = only_group_frameworks(getattr(args, "only_group", None), frameworks, models)
    try:
        devices = parse_choices(args.device or ["cpu"], DEVICES, "device")
        batch_sizes = parse_batch_sizes(args.batch_size, quick=args.quick)
        threads = parse_threads(args.threads, here)
    except MatrixError as exc:
        raise UsageError(str(exc)) from None
    if args.compare is not None and not (args.compare / "raw").is_dir():
        raise UsageError(f"{args.compare}: not a run folder (no raw/ results in it)")
    if args.min_rounds is not None and args.min_rounds < 1:
        raise UsageError(f"--min-rounds must be at least 1, got {args.min_rounds}")
    if args.max_time is not None and not (math.isfinite(args.max_time) and args.max_time > 0):
        raise UsageError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    if not (math.isfinite(args.case_timeout) and args.case_timeout > 0):
        raise UsageError(
            f"--case-timeout must be a positive number of seconds, got {args.case_timeout}"
        )
    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {args.repeat}")
    if args.cold_starts is not None and args.cold_starts < 0:
        raise UsageError(f"--cold-starts must be 0 or more, got {args.cold_starts}")
    check_min_effect(args.min_effect)
    return {
        "frameworks": frameworks,
        # The sizes the scaling report needs (none for --quick; every size for --sweep).
        "models": models if args.quick else with_sizes(models, args.sweep),
        "devices": devices,
        "batch_sizes": batch_sizes,
        "threads": threads,
    }


def only_group_frameworks(group: str | None, frameworks: list[str], models: list[str]) -> list[str]:
    """The frameworks of a run restricted to one worker group (``--only-group``: one
    task of ``xfbench fleet``): that framework alone for its native cases, and every
    chosen framework for ``onnxruntime``, which times all their exports."""
    from bench.adapters import adapter_class
    from bench.matrix import ORT

    if group is None or group == ORT:
        return frameworks
    if group not in frameworks:
        raise UsageError(
            f"--only-group {group!r} is not a worker group of this run; its groups: "
            f"{', '.join([*frameworks, ORT])}"
        )
    if not any(arch_of(m) in adapter_class(group).models for m in models):
        raise UsageError(
            f"--only-group {group}: {group} has none of the chosen models "
            f"({', '.join(models)}), so its group has nothing to time"
        )
    return [group]


def check_min_effect(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value < 1):
        raise UsageError(
            f"--min-effect must be a fraction from 0 to below 1 (0.05 = 5%), got {value}"
        )
    return value


def require_gpu(devices: list[str]) -> list[dict[str, Any]]:
    """Stop a CUDA run on a machine without a GPU, before any environment is built."""
    from bench.fingerprint import detect_gpus

    if "cuda" not in devices:
        return []
    gpus = detect_gpus()
    if not gpus:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        hidden = mask is not None and detect_gpus(respect_mask=False)
        why = (
            f"nvidia-smi lists GPUs, but CUDA_VISIBLE_DEVICES={mask!r} leaves none visible: "
            "unset it, or set it to a GPU's index (0 is the first nvidia-smi lists)"
            if hidden
            else "nvidia-smi is missing or lists none"
        )
        raise UsageError(
            f"no CUDA GPU found ({why}), so no framework environment was created; on a "
            "machine without a GPU run `tox -e bench-cpu`"
        )
    return [g.__dict__ for g in gpus]


def run_plan(args: argparse.Namespace, m: dict[str, Any], raw_dir: Path) -> Any:
    """The ``RunPlan`` of ``xfbench bench``'s options (``m``: :func:`parse_matrix`)."""
    from bench.matrix import DEFAULT_COLD_STARTS, DEFAULT_REPEAT, FULL_TIMING, QUICK_TIMING
    from bench.orchestrator import RunPlan

    mode = "quick" if args.quick else "full"
    timing = QUICK_TIMING if args.quick else FULL_TIMING
    timing = dataclasses.replace(
        timing,
        min_rounds=args.min_rounds or timing.min_rounds,
        max_time=args.max_time or timing.max_time,
    )
    return RunPlan(
        m["frameworks"],
        m["models"],
        m["devices"],
        m["batch_sizes"],
        m["threads"],
        timing,
        args.repeat or DEFAULT_REPEAT[mode],
        DEFAULT_COLD_STARTS[mode] if args.cold_starts is None else args.cold_starts,
        args.artifacts.resolve(),
        raw_dir,
        args.case_timeout,
        driver_cuda=driver_cuda(m["devices"]),
        sweep=bool(args.sweep),
        only_group=getattr(args, "only_group", None),
    )


def print_plan(args: argparse.Namespace, m: dict[str, Any]) -> int:
    """``xfbench bench --plan``: print what the run would do; create nothing."""
    from bench import plan as plan_text
    from bench.fingerprint import detect_gpus
    from bench.runner import worker_env

    out = args.out.resolve()
    plan = run_plan(args, m, out / "(plan)" / "raw")
    gpus = [g.__dict__ for g in detect_gpus()] if "cuda" in m["devices"] else []
    resolved = None
    if args.resolve:
        from bench.envs import env_name
        from bench.resolve import summarize_environments

        envs = sorted({env_name(g, m["devices"]) for g in [*m["frameworks"], "onnxruntime"]})
        print(f"xfbench: resolving {len(envs)} environments against the package index ...")
        resolved = summarize_environments(envs)
    print(
        plan_text.render(
            m,
            plan,
            gpus,
            worker_env=worker_env,
            expected_time=_expected_time(plan, out / "(plan)", "quick" if args.quick else "full"),
            resolved=resolved,
        )
    )
    return 0


def driver_cuda(devices: list[str]) -> str | None:
    """The newest CUDA the GPU driver runs (nvidia-smi), for a run that uses the GPU."""
    from bench.fingerprint import detect_gpus

    if "cuda" not in devices:
        return None
    return next((g.cuda for g in detect_gpus() if g.cuda != "unknown"), None)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.lock import machine_lock

    # Every option is checked before anything is locked, created or installed.
    m = parse_matrix(args)
    if args.plan:
        return print_plan(args, m)
    if args.resolve:
        raise UsageError("--resolve goes with --plan (it resolves the plan's environments)")
    require_gpu(m["devices"])
    if args.allow_concurrent:
        print(
            "xfbench: --allow-concurrent: not taking the machine's benchmark lock; another "
            "run on these cores would skew both runs' numbers",
            file=sys.stderr,
        )
        return _bench(args, m)
    with machine_lock(args.out.resolve()):
        return _bench(args, m)


def writable_dir(path: Path, what: str, option: str) -> Path:
    """``path`` created if needed and proven writable, or a :class:`UsageError` that
    names the folder and the option that chooses another."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".xfbench-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot write the {what} to {path} ({exc.strerror or exc}); make it writable or "
            f"choose another folder with {option}"
        ) from None
    return path


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the run stops, its workers with it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stopping = False


def _raise_interrupted(signum: int, frame: Any) -> None:
    """The first SIGINT or SIGTERM stops the run; later ones are ignored while it stops
    its workers and writes its report (tox forwards the terminal's Ctrl-C, so one
    keypress arrives twice; `kill -9` still stops everything at once)."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    raise Interrupted(signum)


def _interrupted(
    run_dir: Path, exc: KeyboardInterrupt, stage: str, args: argparse.Namespace
) -> int:
    """Mark the run incomplete, report what finished, and return the signal's exit
    status (128 + the signal number, as a shell reports it)."""
    from bench.rundir import mark_incomplete

    signum = getattr(exc, "signum", signal.SIGINT)
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
    mark_incomplete(run_dir, f"interrupted by {name} during {stage}", signal=int(signum))
    print(
        f"\nxfbench: interrupted by {name} during {stage}; every worker was stopped and "
        f"{run_dir} is marked incomplete ({run_dir / 'incomplete.json'}); writing the "
        "report of what finished (kill -9 stops at once)",
        flush=True,
    )
    try:
        if not getattr(args, "fleet_part", False):  # a fleet's client reports its parts
            make_report([run_dir], run_dir, f"xfbench run {run_dir.name} (incomplete)", args)
    except Exception as err:  # the interrupt's status must survive a failed report
        print(f"xfbench: no report: {err}", flush=True)
    return 128 + int(signum)


def _bench(args: argparse.Namespace, m: dict[str, Any]) -> int:
    from bench.rundir import mark_complete, mark_incomplete

    out = writable_dir(args.out.resolve(), "run folders", "--out")
    writable_dir(args.artifacts.resolve(), "trained models", "--artifacts (or XFBENCH_ARTIFACTS)")
    if not getattr(args, "fleet_part", False):  # a fleet's client adds its parts itself
        from bench.history.ingest import check_history

        check_history(args.db, out)  # a history that cannot be opened stops the run now
    device_label = "gpu" if "cuda" in m["devices"] else "cpu"
    run_dir = new_run_dir(
        out, f"{socket.gethostname()}-{device_label}" + ("-quick" if args.quick else "")
    )
    mark_incomplete(run_dir)
    stage = ["building the models"]

    def say(line: str) -> None:
        if not line.startswith(" "):
            stage[0] = line
        print(f"xfbench: {line}", flush=True)

    try:
        ok = _bench_stages(args, m, run_dir, say)
    except KeyboardInterrupt as exc:
        return _interrupted(run_dir, exc, stage[0], args)
    mark_complete(run_dir)
    if getattr(args, "fleet_part", False):
        # One task of `xfbench fleet`: its client names the folder, writes the report and
        # adds the run to the history (bench/fleet.py); the machine goes on timing.
        return 0 if ok else 1
    report_status = make_report([run_dir], run_dir, f"xfbench run {run_dir.name}", args)
    from bench.history.ingest import ingest_after_run

    ingest_after_run(run_dir, args.db, out, say)  # never fails the run: it says how to retry
    return report_status or (0 if ok else 1)


def _bench_stages(
    args: argparse.Namespace, m: dict[str, Any], run_dir: Path, say: Callable[[str], None]
) -> bool:
    """Build, time, cold-start; True when every model and case came out ok."""
    from bench import fingerprint, testhooks
    from bench.matrix import ORT
    from bench.orchestrator import run_cold_starts, run_timing
    from bench.threads import recorded_settings

    mode = "quick" if args.quick else "full"
    plan = run_plan(args, m, run_dir / "raw")
    timing, repeat, cold_starts, artifacts = (
        plan.timing,
        plan.repeat,
        plan.cold_starts,
        plan.artifacts,
    )
    started = time.time()
    counts = plan.count()
    print(
        f"xfbench: run folder {run_dir}\n"
        f"xfbench: plan: {len(m['frameworks'])} framework(s) {','.join(m['frameworks'])}, "
        f"{counts['cases']} cases in {counts['groups']} worker groups x {repeat} "
        f"process(es) each ({counts['timing_processes']} timing processes), then "
        f"{counts['cold_processes']} cold-start processes",
        flush=True,
    )
    print(f"xfbench: {_expected_time(plan, run_dir, mode)}", flush=True)
    blocked = {g: plan.gpu_blocked(g, m["devices"]) for g in [*m["frameworks"], ORT]}
    for group, reason in blocked.items():
        if reason and plan.only_group in (None, group):
            say(f"{group}: its GPU cases will be unsupported, nothing installed for them: {reason}")

    zoo, equivalence = run_zoo(
        m["frameworks"],
        m["models"],
        artifacts,
        progress=not args.no_progress,
        devices=tuple(m["devices"]),
        verbose=args.verbose,
        cpu_only=[g for g, reason in blocked.items() if reason],
    )
    print(format_summary(zoo, equivalence, artifacts), flush=True)
    manifests = [r["manifest"] for r in zoo if r["status"] == "ok"]
    (run_dir / "models.json").write_text(json.dumps(manifests, indent=2) + "\n")
    (run_dir / "equivalence.json").write_text(json.dumps(equivalence, indent=2) + "\n")
    fp = {
        "machine": fingerprint.machine(),
        "mode": mode,
        "options": {
            **m,
            "timing": dataclasses.asdict(timing),
            "repeat": repeat,
            "cold_starts": cold_starts,
            "case_timeout_s": args.case_timeout,
            "allow_concurrent": bool(args.allow_concurrent),
            # One worker group only (a task of `xfbench fleet`), or None: every group.
            "only_group": plan.only_group,
        },
        "orchestrator_env": recorded_settings(),
        "test_hooks": testhooks.active(),
        # What could not be built, and why: the report names the cause, not a guess.
        "build_failures": [
            {k: r.get(k) for k in ("framework", "model", "reason")}
            for r in zoo
            if r["status"] == "error"
        ],
    }
    (run_dir / "fingerprint.json").write_text(json.dumps(fp, indent=2) + "\n")
    if fp["test_hooks"]:
        say(f"TEST HOOKS ACTIVE {fp['test_hooks']}: the cases they name are faulted or slowed")
    for name in testhooks.ignored():
        say(f"note: {name} is set but ignored (test hooks act only under {testhooks.ENABLE}=1)")
    with _case_bar(enabled=not (args.verbose or args.no_progress)) as on_cases:
        records = run_timing(plan, echo=args.verbose, progress=say, on_cases=on_cases)
    cold = run_cold_starts(plan, progress=say)
    fp["elapsed_s"] = round(time.time() - started, 1)
    (run_dir / "fingerprint.json").write_text(json.dumps(fp, indent=2) + "\n")
    statuses = [r["status"] for r in records] + [r["status"] for r in cold]
    tally = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    minutes, seconds = divmod(round(fp["elapsed_s"]), 60)
    print(
        f"\nxfbench: finished in {minutes} min {seconds} s: {len(statuses)} measurements"
        + (f", {tally}" if tally else ""),
        flush=True,
    )
    zoo_ok = all(r["status"] in ("ok", "skipped") for r in zoo)
    return zoo_ok and all(s in ("ok", "unsupported") for s in statuses)


@contextlib.contextmanager
def _case_bar(enabled: bool) -> Any:
    """A progress bar over the timed cases where there is a terminal (plain lines
    elsewhere: CI logs get no control characters); yields ``on_cases(done, total)`` or
    None."""
    terminal = _terminal() if enabled else None
    if terminal is None:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(unit="case", desc="xfbench: timing", leave=False, dynamic_ncols=True, file=terminal)

    def on_cases(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield on_cases
    finally:
        bar.close()
        if terminal is not sys.stdout:
            terminal.close()


def _terminal() -> Any:
    """Where a progress bar may draw: this console if it is a terminal, else the
    controlling terminal (tox pipes its commands' output, so under `tox -e bench-cpu`
    stdout is no terminal even at one); None without one (CI, nohup, cron)."""
    if sys.stdout.isatty():
        return sys.stdout
    try:
        return open("/dev/tty", "w")  # closed by _case_bar
    except OSError:
        return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _expected_time(plan: Any, run_dir: Path, mode: str) -> str:
    """How long the timing should take: the last finished run of the same plan on this
    host when there is one, else the estimate from the matrix."""
    from bench.rundir import incomplete_reason

    wanted = {
        "frameworks": plan.frameworks,
        "models": plan.models,
        "devices": plan.devices,
        "batch_sizes": plan.batch_sizes,
        "threads": plan.threads,
        "repeat": plan.repeat,
        "cold_starts": plan.cold_starts,
        "only_group": plan.only_group,
    }
    host = socket.gethostname()
    for other in sorted(run_dir.parent.glob("*"), key=lambda d: d.name, reverse=True):
        if other == run_dir or incomplete_reason(other) is not None:
            continue
        if other.name.startswith("reference"):  # committed reports, from another machine
            continue
        try:
            fp = json.loads((other / "fingerprint.json").read_text())
            options = fp["options"]
            same = all(options.get(k) == v for k, v in wanted.items())
            if same and fp.get("mode") == mode and fp["machine"]["host"] == host:
                return (
                    f"expected time: about {_minutes(fp['elapsed_s'])}, as the last run of "
                    f"this plan on this host took ({other.name}; building any missing models "
                    "included, creating environments not)"
                )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return (
        f"expected time: about {_minutes(plan.estimate_s())} after the models are built "
        "(an estimate from the matrix, with per-case costs measured on a 2-core CPU; the "
        "next run of this plan on this host will quote that run's time instead)"
    )


def latest_run(root: Path) -> Path:
    """The newest finished run under ``root``; incomplete ones are skipped (they are
    reported only when named)."""
    from bench.rundir import incomplete_reason

    runs = sorted(
        (d for d in root.glob("*") if (d / "raw").is_dir()), key=lambda d: d.stat().st_mtime
    )
    finished = [d for d in runs if incomplete_reason(d) is None]
    if finished:
        newer = [d for d in runs if d.stat().st_mtime > finished[-1].stat().st_mtime]
        print(f"xfbench: reporting the newest finished run, {finished[-1]}")
        for d in newer:
            print(f"xfbench: skipped {d.name}: {incomplete_reason(d)} (name it to report it)")
        return finished[-1]
    if runs:
        raise UsageError(
            f"no finished run under {root}: {len(runs)} incomplete (newest: {runs[-1]}, "
            f"{incomplete_reason(runs[-1])}); name one to report it anyway: "
            f"`xfbench report {runs[-1]}`"
        )
    raise UsageError(f"no runs under {root}: run `tox -e bench-cpu` first")


def make_report(runs: list[Path], out: Path, title: str, args: argparse.Namespace) -> int:
    """Write the report, whatever the runs hold; the exit status: 2 where the runs
    measured nothing or ``--compare`` had nothing to compare (the report, written all the
    same, says why), 1 if ``--fail-on regression`` and the comparison found one, else 0."""
    from bench.report import NoResultsError, write_report
    from bench.report.load import no_results_message

    try:
        report = write_report(
            runs,
            out,
            title=title,
            compare_with=args.compare,
            min_effect=args.min_effect,
            on_compare_error="note",
        )
    except NoResultsError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # nothing was left behind: the report is written all or nothing
        if isinstance(exc, FileExistsError) and exc.errno is None:  # "already holds a report"
            raise UsageError(f"{exc}: choose another --output") from None
        where = f" ({exc.filename})" if exc.filename else ""
        raise UsageError(
            f"could not write the report to {out}: {exc.strerror or exc}{where}; choose a "
            "writable --output folder"
        ) from None
    for line in report.answers:
        print(f"xfbench: fastest: {line}")
    print(f"xfbench: report written to {report.markdown} (and {report.html.name})")
    status = 0
    if not report.measured:
        print(
            f"xfbench: error: {no_results_message(runs)} ({report.markdown.name} says what "
            "is missing)",
            file=sys.stderr,
        )
        status = 2
    if report.compare_error is not None:
        print(f"xfbench: error: {report.compare_error}", file=sys.stderr)
        status = 2
    elif args.compare is not None:
        print(f"xfbench: {report.regressions} regression(s) against {args.compare}")
    if status:
        return status
    return 1 if args.fail_on == "regression" and report.regressions else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import report_outputs

    check_min_effect(args.min_effect)
    from bench.fleet import fleet_parts

    # A fleet's folder (xfbench fleet) stands for the run folders of its parts.
    runs = [part for r in [Path(r) for r in args.runs] for part in fleet_parts(r)]
    runs = runs or [latest_run(args.out)]
    for r in [*runs, *([args.compare] if args.compare else [])]:
        if not (r / "raw").is_dir():
            raise UsageError(f"{r}: not a run folder (no raw/ results in it)")
    made = None
    if args.output is not None:
        out = args.output
        held = report_outputs(out)
        if held:
            raise UsageError(
                f"{out} already holds a report ({', '.join(p.name for p in held[:5])}"
                f"{', ...' if len(held) > 5 else ''}); a report never replaces another: "
                "choose a new --output folder"
            )
    elif len(runs) == 1 and args.compare is None and not report_outputs(runs[0]):
        out = runs[0]
    else:
        out = made = new_run_dir(args.out, "report")
    title = "xfbench report: " + ", ".join(r.name for r in runs)
    try:
        return make_report(runs, out, title, args)
    finally:
        if made is not None and made.is_dir() and not any(made.iterdir()):
            made.rmdir()  # a report that failed leaves no empty folder behind


def format_summary(
    results: list[dict[str, Any]], equivalence: list[dict[str, Any]], artifacts: Path
) -> str:
    header = (
        f"{'framework':<11}{'model':<12}{'params':>9}{'acc':>7}{'t→acc s':>9}"
        f"{'opset':>6}{'nodes':>6}{'onnx Δ':>10}{'xfw Δ':>10}  status"
    )
    lines = ["", header, "-" * len(header)]
    notes = []
    for r in results:
        if r["status"] != "ok":
            label = "skipped" if r["status"] == "skipped" else "ERROR"
            lines.append(f"{r['framework']:<11}{r['model']:<12}  {label}: {r['reason']}")
            continue
        m = r["manifest"]
        xfw = [
            e["max_abs_diff"]
            for e in equivalence
            if e["model"] == m["model"] and m["framework"] in (e["a"], e["b"])
        ]
        tta = m["train"]["time_to_accuracy_s"]
        acc = m["train"]["test_accuracy"]  # None for a size, which is not trained
        lines.append(
            f"{m['framework']:<11}{m['model']:<12}{m['parameters']:>9}"
            f"{'-' if acc is None else f'{acc:.3f}':>7}{'-' if tta is None else f'{tta:.1f}':>9}"
            f"{m['onnx']['opset']:>6}{m['onnx']['node_count']:>6}"
            f"{m['onnx']['parity_max_abs_diff']:>10.1e}"
            f"{(f'{max(xfw):.1e}' if xfw else '-'):>10}  "
            + ("reused" if m.get("reused") else "rebuilt" if m.get("rebuild_reason") else "built")
        )
        q = m["train"].get("quality")
        if q:  # a generator: judged, not scored (bench/quality.py)
            t = q.get("target", {})
            notes.append(
                f"{m['framework']}/{m['model']} quality: confidence {q['confidence']:.3f}, "
                f"{q['classes']} of 10 digits (target: >= {t.get('confidence')}, "
                f">= {t.get('classes')}), judged by {m['framework']}/"
                f"{m['train'].get('judge', {}).get('model', 'cnn')}, which the zoo builds "
                "first; t→acc is its time to that target"
            )
        if not m.get("reused") and m.get("rebuild_reason"):
            notes.append(
                f"{m['framework']}/{m['model']} rebuilt: {m['rebuild_reason']} (the replaced "
                f"build is kept in {m['model']}.previous/)"
            )
    lines += ["", *notes] if notes else []
    lines.append(f"\nartifacts: {artifacts}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from bench.adapters import adapter_class

    for fw in framework_names():
        cls = adapter_class(fw)
        where = "installed here" if is_installed(fw) else "needs its environment"
        print(f"{fw:<12} models: {','.join(cls.models):<15} exporter: {cls.exporter}  ({where})")
    return 0


def _compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="RUN",
        help="an earlier run folder to put side by side with this one",
    )
    parser.add_argument(
        "--fail-on",
        choices=["regression"],
        default=None,
        help="exit 1 when --compare finds a significant slowdown of at least --min-effect",
    )
    parser.add_argument(
        "--min-effect",
        type=float,
        default=0.05,
        help="the smallest change --compare flags, as a fraction (default 0.05 = 5%%)",
    )


def matrix_options(parser: argparse.ArgumentParser) -> None:
    """What to time and how: the options ``xfbench bench`` and ``xfbench fleet`` share."""
    parser.add_argument("-f", "--framework", action="append", help="framework(s) (default all)")
    parser.add_argument(
        "-m",
        "--model",
        action="append",
        help=f"model(s): {', '.join(MODEL_NAMES)}, or a size such as cnn@x16 (default "
        f"{','.join(BENCH_DEFAULT_MODELS)} and their smallest and largest sizes; "
        "resnet and gan when named)",
    )
    parser.add_argument(
        "-d",
        "--device",
        action="append",
        help="cpu or cuda (default cpu; bench-gpu passes cuda); cuda uses each adapter's "
        "GPU environment",
    )
    parser.add_argument(
        "-b",
        "--batch-size",
        action="append",
        help="batch sizes, e.g. 1,32,256 (the default; --quick: 1,32)",
    )
    parser.add_argument(
        "-t",
        "--threads",
        action="append",
        help="intra-op threads for every framework; several sweep (default: all cores)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer batch sizes and rounds, the same code paths, no extra model sizes",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="every size of every model (mlp@x0.0625 ... mlp@x64) in every mode, for the "
        "scaling report; by default each model's smallest and largest size in its "
        "default mode",
    )
    parser.add_argument(
        "--min-rounds",
        type=int,
        default=None,
        help="timed rounds per case and process at least (default 15; --quick: 5)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="seconds each case is timed for in each process, about (default 0.2; --quick: 0.1)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="independent timing processes per worker group (each framework, and ONNX "
        "Runtime), interleaved (default 3; --quick: 1)",
    )
    parser.add_argument(
        "--cold-starts",
        type=int,
        default=None,
        help="fresh processes per model for the cold start (default 5; --quick: 2; 0: none)",
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=300.0,
        help="seconds before a case is killed and recorded as timeout (default 300)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xfbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    zoo = sub.add_parser("zoo", help="train, export to ONNX and verify models")
    zoo.add_argument(
        "-f",
        "--framework",
        action="append",
        help="framework(s) to build, repeatable or comma-separated (default all)",
    )
    zoo.add_argument(
        "-m",
        "--model",
        action="append",
        help=f"model(s) to build: {', '.join(MODEL_NAMES)} (default all)",
    )
    zoo.add_argument(
        "--force",
        action="store_true",
        help="retrain even where current artifacts exist (the replaced build "
        "is kept as <model>.previous)",
    )
    zoo.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        help="artifact folder (default: ./artifacts, or $XFBENCH_ARTIFACTS)",
    )
    zoo.add_argument(
        "--threads", type=int, default=None, help="intra-op threads, 1 or more (default: all cores)"
    )
    zoo.add_argument(
        "--equivalence",
        action="store_true",
        help="record cross-framework outputs even for a single framework",
    )
    zoo.add_argument("--no-progress", action="store_true", help="no progress bars")
    zoo.add_argument(
        "--verbose",
        action="store_true",
        help="show the workers' output and training progress bars (default: <artifacts>/logs/)",
    )
    zoo.set_defaults(func=cmd_zoo)

    bench = sub.add_parser("bench", help="build what is missing, time everything, report")
    matrix_options(bench)
    bench.add_argument(
        "--out", type=Path, default=Path("reports"), help="where run folders go (default: reports/)"
    )
    bench.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        help="trained models and exports (default: ./artifacts, or $XFBENCH_ARTIFACTS)",
    )
    bench.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar over the timed cases (and, with --verbose, no training bars)",
    )
    _compare_options(bench)
    bench.add_argument(
        "--verbose",
        action="store_true",
        help="echo the workers' own output (pytest-benchmark tables, framework logs, "
        "training progress bars); by default it goes to the run's logs",
    )
    bench.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # the default
    bench.add_argument(
        "--plan",
        action="store_true",
        help="print the environments, packages, cases, guards and expected time of this "
        "run, and stop (installs nothing; needs no GPU)",
    )
    bench.add_argument(
        "--resolve",
        action="store_true",
        help="with --plan: also resolve each environment's packages against the index "
        "(pip --dry-run; needs the network, installs nothing)",
    )
    bench.add_argument(
        "--allow-concurrent",
        action="store_true",
        help="do not take the machine's benchmark lock (another run on the same cores "
        "skews both; for machines whose runs are pinned to separate cores)",
    )
    # One worker group only, and no report or history of its own: the run of one task of
    # `xfbench fleet` on a worker machine (bench/fleet.py); --only-group also works alone.
    bench.add_argument("--only-group", default=None, help=argparse.SUPPRESS)
    bench.add_argument("--fleet-part", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument(
        "--db",
        default=None,
        help="the results history database (any SQLAlchemy URL) the finished run is added "
        "to; default: $XFBENCH_DB, else sqlite:///<--out>/history.db",
    )
    bench.set_defaults(func=cmd_bench)

    rep = sub.add_parser("report", help="(re)build a report from one or more runs")
    rep.add_argument("runs", nargs="*", help="run folders (default: the latest under reports/)")
    rep.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder for the report (must not hold one already)",
    )
    rep.add_argument("--out", type=Path, default=Path("reports"), help=argparse.SUPPRESS)
    _compare_options(rep)
    rep.set_defaults(func=cmd_report)

    lst = sub.add_parser("list", help="registered frameworks and models")
    lst.set_defaults(func=cmd_list)

    from bench.history.cli import add_parsers as add_history_parsers

    add_history_parsers(sub)
    from bench.fleet import add_parsers as add_fleet_parsers

    add_fleet_parsers(sub)
    return parser


def _one_line_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> str:
    return f"xfbench: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops a run the way Ctrl-C does: workers stopped, run marked incomplete.
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for signum, handler in handlers.items():
            if handler is not signal.SIG_IGN:  # a run started with nohup stays immune
                signal.signal(signum, _raise_interrupted)
    try:
        return args.func(args)
    except (UsageError, BenchRunningError, HistoryError) as exc:
        print(f"xfbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"xfbench: interrupted ({signal.Signals(signum).name}); what had finished is kept, "
            "and a build that had not was discarded",
            file=sys.stderr,
        )
        return 128 + int(signum)
    finally:
        global _stopping
        _stopping = False
        warnings.formatwarning = formatwarning
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
