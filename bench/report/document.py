"""The report's sections in reading order: each table of ``analysis.py`` with the notes
that say how it was measured and how to read it, as one :class:`Document`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.load import BUSY_CPUS
from bench.report import stats
from bench.report.analysis import (
    LARGE_GRAPH_RATIO,
    ORT,
    TIMED,
    UNSTABLE_IQR_RATIO,
    UNSTABLE_SPREAD_PCT,
    VERDICT_ORDER,
    Document,
    Section,
    adapter_class_attr,
    answers,
    code,
    cold_start_table,
    cold_starts,
    comparison_table,
    compile_table,
    detail,
    efficiency,
    environment_table,
    export_diagnostics,
    frame_table,
    headline,
    machine_peaks,
    memory,
    modes_table,
    ok_cases,
    onnx_slower_table,
    onnx_speedup,
    onnx_summary_table,
    regressions,
    settings_table,
    single_process_only,
    speedup_table,
    thread_scaling,
    versions_table,
)
from bench.report.load import RunData
from bench.report.render import md_escape
from models.spec import is_size

__all__ = ["build_document", "method_notes", "missing_notes"]


# -- the notes ----------------------------------------------------------------------------
def _processes_summary(cases: pd.DataFrame) -> str:
    timed = cases[(cases.status == "ok") & cases.phase.isin(TIMED)]
    if timed.empty:
        return "no timed case"
    lo, hi = int(timed.processes.min()), int(timed.processes.max())
    return f"{lo} process{'es' if lo != 1 else ''}" if lo == hi else f"{lo} to {hi} processes"


def load_note(cases: pd.DataFrame) -> str:
    """What the rest of the machine did while the cases were timed (:mod:`bench.load`)."""
    timed = cases[(cases.status == "ok") & cases.phase.isin(TIMED)]
    other, steal = timed.other_cpus.dropna(), timed.steal_cpus.dropna()
    if other.empty:
        return (
            "The load of the rest of the machine was not recorded for these cases (a run "
            "from before it was, or a system without `/proc/stat`)."
        )
    busy = int(timed.busy.sum())
    said = (
        f"While the cases were timed, other processes kept at most {other.max():.2f} CPUs "
        f"busy (median over cases {other.median():.2f}) and the hypervisor stole at most "
        f"{steal.max():.2f} CPUs (`other_cpus`, `steal_cpus` in summary.csv). "
    )
    if not busy:
        return said + f"No case was timed on a busy machine (above {BUSY_CPUS:g} CPU)."
    return said + (
        f"**{busy} of {len(timed)} cases were timed on a busy machine** (above {BUSY_CPUS:g} "
        'CPU used elsewhere, listed under "Cases timed on a busy machine"): competition '
        "slows every round alike, so no interval shows it, and a threaded framework can "
        "slow by a large factor, not a few percent. Their numbers are suspect; run again "
        "on a quiet machine."
    )


def _busy_warning(cases: pd.DataFrame) -> list[str]:
    """A warning above the answers when some of their cases were timed on a busy machine:
    the answers are read first, and the load note comes after them."""
    timed = cases[(cases.status == "ok") & cases.phase.isin(TIMED)]
    if "busy" not in timed or not timed.busy.fillna(False).astype(bool).any():
        return []
    busy = int(timed.busy.fillna(False).astype(bool).sum())
    return [
        f"**Warning: {busy} of {len(timed)} cases were timed while other processes kept "
        f"more than {BUSY_CPUS:g} CPU busy.** A framework whose threads wait for a core "
        "that another process holds can slow by a large factor, the same in every round, "
        "so no interval shows it: these answers and ratios may be wrong, not just noisy. "
        'The cases are listed under "Cases timed on a busy machine"; run again on a quiet '
        "machine."
    ]


def method_notes(data: RunData) -> list[str]:
    cases = data.cases
    one = single_process_only(cases)
    from bench.report.fleet_note import fleets_of

    order = (
        "independent worker processes; in a fleet, a group's processes ran one after "
        "another on its machine"
        if fleets_of(data)
        else "independent worker processes, interleaved across frameworks"
    )
    notes = [
        f"Each case was timed in {_processes_summary(cases)} ({order}); each process "
        "timed rounds after its "
        "warm-up. Times are per call, in ms; a batch call for inference and training. The "
        "headline number of a case is the **median over processes of each process's "
        "median round**, `p50`.",
        f"Its 95% interval comes from a hierarchical bootstrap ({stats.N_RESAMPLES} seeded "
        "resamples): draw as many processes as were measured, with replacement, then the "
        "rounds within each drawn process, and take the median of the per-process medians. "
        "A one-level bootstrap of the per-process medians (`scipy.stats.bootstrap`) is not "
        "used: with 3 processes its percentile interval is just the smallest and largest "
        "of three numbers, and with one process it has no width at all. The two-level "
        "interval carries both the noise within a process and the variation between "
        "processes, and still works with one process.",
        "Limits, measured in simulation (tests/test_stats.py): the interval is wider than "
        "needed when the processes agree, and narrower than 95% when a few processes "
        "disagree by more than their own noise; `spread %` ((max - min) / median of the "
        "per-process medians) shows those cases, and more processes (`--repeat`) narrow "
        "them.",
        "Two entries are called different (bold, or a verdict) only where their 95% "
        "intervals do not overlap: a conservative rule, so a `tie` means the data do not "
        "separate them, not that they are equal.",
        "p25, p75, p90, p99, mean, min and max pool the rounds of every process. Where a "
        "round averages several calls (`calls_per_round` > 1, marked †), p99 is a "
        "percentile of round averages and understates the single-call tail.",
    ]
    notes.append(load_note(cases))
    if one:
        notes.append(
            "**Every case of this report was measured in one process**: its interval holds "
            "the noise within that process only, not the variation a new process would "
            "bring (runs of schema 1, or `--quick`)."
        )
    elif (cases[(cases.status == "ok") & cases.phase.isin(TIMED)].processes == 1).any():
        notes.append(
            "Intervals marked ‡ come from a case measured in one process: they hold the "
            "noise within that process only."
        )
    return notes


def _power_note(comparison: pd.DataFrame) -> str:
    """What the comparison could have seen: the price of the family-wise guarantee."""
    timed = comparison[comparison.phase.isin(["inference", "train_step"])]
    smallest = timed.detectable_change.dropna()
    if smallest.empty:
        return "No timed case has a test, so this comparison can flag nothing."
    blind = int((smallest > 0.2).sum())
    return (
        "Power: `detectable %` is the smallest slowdown of a case that the test is sure "
        "to flag were that case the only one to change (Bonferroni's bound, the first "
        "step of Holm's method); it grows with the case's spread between processes and "
        "with the number of cases compared, and shrinks with more processes "
        f"(`--repeat`). Over the {len(smallest)} timed cases tested it is "
        f"{100 * smallest.median():.0f}% at the median (from "
        f"{100 * smallest.min():.0f}% to {100 * smallest.max():.0f}%); "
        + (
            f"{blind} case(s) could slow down by 20% unflagged: narrow the comparison "
            "(`-f`, `-m`) or add processes to guard them."
            if blind
            else "a 20% slowdown of any one of them would be flagged."
        )
    )


# -- what is missing -----------------------------------------------------------------------
def _bench_command(fp: dict[str, Any]) -> str:
    """The command that measures a run like ``fp``'s again."""
    options = fp.get("options") if isinstance(fp.get("options"), dict) else {}
    devices = options.get("devices") if isinstance(options.get("devices"), list) else []
    command = "tox -e " + ("bench-gpu" if "cuda" in devices else "bench-cpu")
    return command + (" -- --quick" if fp.get("mode") == "quick" else "")


def _when(t: Any) -> str:
    if isinstance(t, int | float) and not isinstance(t, bool):
        try:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
        except (OverflowError, OSError, ValueError):
            return str(t)
    return str(t) if t else ""


def _names(values: Sequence[Any]) -> str:
    return ", ".join(code(v) for v in values)


def _no_case_why(data: RunData, run: str, cases: pd.DataFrame) -> str:
    if len(cases):
        return (
            f"all {len(cases)} of its cases failed (their reasons are under "
            '"Errors and unsupported cases")'
        )
    folder = data.folders.get(run)
    raw = [] if folder is None else [str(folder / "raw")]
    left_out = [f for f in data.skipped_files if raw and f.startswith(raw[0])]
    if not data.raw_files.get(run):
        return (
            "its `raw/` folder holds no results file: no timing worker ran (the run was "
            "stopped before the first one started, or no framework environment could be "
            "set up; the bench's output names the cause)"
        )
    if left_out and len(left_out) >= data.raw_files[run]:
        return (
            "no record in its `raw/` folder could be read: the files are damaged, "
            'truncated or not xfbench results ("Files left out" below)'
        )
    return (
        "its workers started but no case finished: the run was interrupted, or every "
        "worker stopped before its first case ended"
    )


def _absent_frameworks(fp: dict[str, Any], cases: pd.DataFrame) -> list[str]:
    """The frameworks the run chose (``fingerprint.json``) that left no case at all,
    leaving out those that declare none of the chosen models (they have nothing to time)."""
    options = fp.get("options") if isinstance(fp.get("options"), dict) else {}
    chosen = [f for f in options.get("frameworks") or [] if isinstance(f, str)]
    models = {m for m in options.get("models") or [] if isinstance(m, str)}
    recorded = set(cases.framework.dropna())
    return [
        fw
        for fw in chosen
        if fw not in recorded
        and (not models or models & set(adapter_class_attr(fw, "models", models)))
    ]


def _build_failures(fp: dict[str, Any], frameworks: list[str] | None = None) -> str:
    """The build failures the bench recorded (``fingerprint.json``), one per framework."""
    failures = fp.get("build_failures") if isinstance(fp.get("build_failures"), list) else []
    first: dict[str, str] = {}
    for f in failures:
        if isinstance(f, dict) and (frameworks is None or f.get("framework") in frameworks):
            first.setdefault(str(f.get("framework")), str(f.get("reason") or "no reason"))
    return "; ".join(f"{code(fw)}: {code(why)}" for fw, why in first.items())


def missing_notes(data: RunData) -> list[str]:
    """What each run lacks, why, and the command that fixes it: an incomplete run, no
    finished case, no built model, frameworks with neither."""
    notes: list[str] = []
    cases, models = data.cases, data.models
    from bench.report.fleet_note import failed_fleet_part

    for run in data.runs:
        fp = data.environments.get(run) or {}
        if failed_fleet_part(fp):
            continue  # a fleet group that was not timed: the fleet section says why
        bench = code(_bench_command(fp))
        marker = data.incomplete.get(run)
        if marker is not None:
            when = _when(marker.get("t"))
            notes.append(
                f"**This run is incomplete:** {code(marker['reason'])} ({code(run)}"
                + (f", stopped {when}" if when else "")
                + f"). Its tables hold only what was measured before it stopped; {bench} "
                "measures everything again."
            )
        hooks = fp.get("test_hooks") if isinstance(fp.get("test_hooks"), dict) else {}
        if hooks:
            notes.append(
                f"**Test hooks were active in {code(run)}:** "
                + ", ".join(code(f"{k}={v}") for k, v in sorted(hooks.items()))
                + ". The cases they name were made to fail, hang or run slower on purpose "
                "(`bench/testhooks.py`); do not read them as measurements."
            )
        run_cases = cases[cases.run == run]
        ok = run_cases[run_cases.status == "ok"]
        if ok.empty:
            notes.append(
                f"**No finished case** in {code(run)}: {_no_case_why(data, run, run_cases)}. "
                f"Run the benchmark again: {bench}."
            )
        else:
            absent = _absent_frameworks(fp, run_cases)
            if absent:
                notes.append(
                    f"**No case** of {_names(absent)} was recorded in {code(run)}: their "
                    "workers wrote no result (the run stopped before they started, or their "
                    "environment could not be set up: the bench's output names the cause). "
                    f"Run the benchmark again: {bench}."
                )
            failed = sorted(set(run_cases.framework.dropna()) - set(ok.framework.dropna()))
            if failed:
                notes.append(
                    f"**No finished case** of {_names(failed)} in {code(run)}: every case of "
                    'theirs failed (the reasons are under "Errors and unsupported cases"). '
                    f"Run the benchmark again once they work: {bench}."
                )
        built = models[models.run == run]
        failures = _build_failures(fp)
        if built.empty:
            notes.append(
                f"**No built model** in {code(run)}: its `models.json` lists none, so "
                "accuracy, export diagnostics and efficiency are empty. "
                + (
                    f"The bench could not build them: {failures}."
                    if failures
                    else "The bench could not build the models: a framework environment is "
                    "missing, or the artifacts folder is not writable (`--artifacts`, "
                    "`$XFBENCH_ARTIFACTS`)."
                )
                + " `tox -e zoo` builds them and says what failed."
            )
        else:
            unbuilt = sorted(
                set(run_cases.framework.dropna()) - set(built.framework.dropna()) - {ORT}
            )
            if unbuilt:
                why = _build_failures(fp, unbuilt)
                notes.append(
                    f"**No built model** of {_names(unbuilt)} in {code(run)}: their accuracy, "
                    "export diagnostics and efficiency are missing"
                    + (f"; the bench could not build them: {why}. " if why else ". ")
                    + f"{code('tox -e zoo -- -f ' + ','.join(map(str, unbuilt)))} builds them "
                    "and says what failed."
                )
    if data.skipped_files:
        notes.append(
            f"{len(data.skipped_files)} file(s) were left out, or read in part, because they "
            "are missing, damaged, truncated or not xfbench results (listed below); the "
            "rest was read."
        )
    return notes


def _plots(plots: dict[str, list[Path]], name: str) -> list[Path]:
    return list(plots.get(name, []))


def build_document(
    data: RunData,
    title: str,
    plots: dict[str, list[Path]] | None = None,
    comparison: pd.DataFrame | None = None,
    min_effect: float = stats.MIN_EFFECT,
    notices: Sequence[str] = (),
) -> Document:
    """Every section of the report, in order: first what is missing (``notices``, then
    :func:`missing_notes` and the files left out), where anything is. A report of runs
    that measured nothing holds only that, the errors, the models and the environment."""
    plots = plots or {}
    cases, models = data.cases, data.models
    s: list[Section] = []
    from bench.report.fleet_note import fleet_sections

    s += fleet_sections(data)  # a fleet's runs: where each ran, and whether comparable
    missing = [*notices, *missing_notes(data)]
    if missing:
        s.append(Section("What this report is missing", missing))
    if data.skipped_files:
        s.append(
            Section(
                "Files left out",
                [],
                frame_table(pd.DataFrame({"file": data.skipped_files})),
                level=3,
            )
        )
    if (cases.status == "ok").any():
        s += _measured_sections(data, plots, comparison, min_effect)
    else:
        s.append(_errors_section(cases))
        s += _model_sections(models)
        s += _environment_sections(data)
    return Document(title, s)


def _measured_sections(
    data: RunData,
    plots: dict[str, list[Path]],
    comparison: pd.DataFrame | None,
    min_effect: float,
) -> list[Section]:
    cases, models = data.cases, data.models
    s: list[Section] = []
    said = answers(data)
    if said:
        s.append(
            Section(
                "The answers",
                [
                    "Inference, per model and batch size: the fastest way to run it, and "
                    "the fastest framework at its best native mode, with the margin over "
                    "the runner-up (p50 over p50), or `a tie` where their 95% intervals "
                    "overlap. The tables below hold every mode.",
                    *_busy_warning(cases),
                    *(f"- {md_escape(line)}" for line in said),
                ],
            )
        )
    s.append(Section("How to read this report", method_notes(data)))
    if comparison is not None:
        regressed = regressions(comparison)
        counts = comparison.verdict.value_counts()
        old_runs = ", ".join(code(r) for r in dict.fromkeys(comparison.old_run))
        s.append(
            Section(
                f"Comparison with an earlier run: {len(regressed)} regression(s)",
                [
                    f"Against {old_runs}: "
                    + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICT_ORDER)
                    + f" of {len(comparison)} shared cases.",
                    "`new/old` is the ratio of the two runs' p50 (medians over processes), "
                    "with a 95% interval from independent hierarchical bootstraps of both "
                    "runs. Each case is tested for a change by a moderated t-test on the "
                    "logarithms of its per-process medians (Smyth 2004: the case's variance "
                    "between processes is shrunk towards a prior fitted to every case of the "
                    "same phase, so three processes a side still give a usable test), and "
                    "the p-values are adjusted by Holm's method over every case compared "
                    "(`p (Holm)`). A case is `slower` or `faster` only when `p (Holm)` <= "
                    f"{stats.ALPHA:g} **and** the change is at least {min_effect:.0%} "
                    f"(new/old >= {1 + min_effect:.3g} or <= {1 / (1 + min_effect):.3g}); "
                    "otherwise `same`; `n/a` without a test. Regressions are the inference "
                    "and training-step cases flagged `slower`.",
                    f"False positives: two runs of the same build flag any case at all with "
                    f"probability at most {stats.ALPHA:.0%} (family-wise), provided each "
                    "case's processes are exchangeable between the runs. What the test "
                    "cannot see is a machine whose speed changed between the runs for "
                    "everything at once. Compare runs taken on the same machine, idle, "
                    "under the same conditions.",
                    _power_note(comparison),
                    *(
                        [
                            "Cases measured in one process on either side (`processes "
                            "old/new`): there is no variation between processes to go on, "
                            "so their test uses the noise within their one process and "
                            "assumes the machine was as steady between the runs as within "
                            "them. Gate CI on runs of several processes (`--repeat 3` or "
                            "more)."
                        ]
                        if ((comparison.old_processes <= 1) | (comparison.new_processes <= 1)).any()
                        else []
                    ),
                ],
                comparison_table(comparison),
            )
        )
    s.append(
        Section(
            "Inference latency at a glance: p50 ms [95% CI], best mode per framework",
            [
                "Lower is better. Each framework's column shows its best native mode (lowest "
                "p50 among its modes, ONNX Runtime excluded) as `p50 [low–high] mode`. "
                "ONNX Runtime's column shows the fastest of the frameworks' exports and "
                'names its exporter: this table answers "what is the fastest way to run '
                'this model here"; each export against its own framework is in the ONNX '
                "Runtime section below, and every mode in the per-model tables.",
                "The fastest entry is bold only where its interval does not overlap the "
                "runner-up's; otherwise `fastest` says `tie` and lists every entry whose "
                "interval overlaps the fastest's. Picking each framework's best mode by its "
                "point estimate slightly favours a lucky mode; the detail tables show all.",
            ],
            headline(data, "inference"),
            images=_plots(plots, "latency_vs_batch"),
        )
    )
    modes = modes_table(data)
    if len(modes):
        s.append(
            Section(
                "Modes",
                [
                    "Every runtime timed, per framework: its execution modes, described by "
                    "its adapter's `mode_notes` (`default` is the first mode, the one the "
                    "framework's checks and exports use), then ONNX Runtime on the "
                    "framework's own export. `(no description)`: the adapter gives that "
                    "mode no note."
                ],
                frame_table(modes),
                level=3,
            )
        )
    for model in sorted(ok_cases(cases, "inference").model.unique()):
        s.append(
            Section(
                f"{model}: inference, every mode and runtime",
                [
                    "p50 with its 95% interval; p90 and p99 pooled over processes (†: rounds "
                    "average several calls); `spread %` between processes; throughput in "
                    "samples/s at the p50. Per batch size the fastest p50 is bold where its "
                    "interval clears the runner-up's."
                ],
                detail(data, model, "inference"),
                level=3,
            )
        )
    s += _onnx_sections(data, plots)
    train = headline(data, "train_step")
    s.append(
        Section(
            "Training step: p50 ms [95% CI], best training mode per framework",
            [
                "Forward, loss, backward and an optimizer update on one batch, cycling "
                "through the training batches, from numpy inputs to the loss on the host. "
                "Bold and `tie` as above; every training mode, with samples/s, below."
            ],
            train,
            images=_plots(plots, "train_step"),
        )
    )
    for model in sorted(ok_cases(cases, "train_step").model.unique()):
        s.append(
            Section(
                f"{model}: training step, every mode",
                [],
                detail(data, model, "train_step"),
                level=3,
            )
        )
    if len(ok_cases(cases, "compile")):
        s.append(
            Section(
                "Compile phase: first call per mode and batch size",
                [
                    "The first call of a mode at a batch size in a fresh worker process: it "
                    "**includes compilation or tracing** (for compiling modes) and first-call "
                    "allocations. One sample per process: the median over processes with its "
                    "95% interval and the range; `steady p50` is the same mode's inference "
                    "p50, for scale."
                ],
                compile_table(data),
            )
        )
    cold = cold_starts(cases)
    cold_notes = [
        "Fresh processes, one per sample. `import`: importing the framework; `load`: "
        "building the model and loading its weights, or creating the ONNX Runtime session; "
        "`first call`: the first call at batch 1, which **includes compilation or tracing** "
        "for compiling modes. The total is import + load + first call, the median over the "
        "processes, with their range; `interpreter start to exit` is measured by the "
        "orchestrator and adds Python's start-up and teardown."
    ]
    if len(cold) and cold.import_ms.isna().any():
        cold_notes.append(
            "Rows without an import / load split come from schema-1 runs: one sample of "
            "loading the weights (or creating the session) and the first call, in a worker "
            "where the framework was already imported."
        )
    s.append(Section("Cold start", cold_notes, cold_start_table(data)))
    s.append(
        Section(
            "Memory",
            [
                "`rss_increase_mb`: the peak resident memory of a fresh cold-start process "
                "after loading the model and calling it once at every benchmarked batch "
                "size, minus its resident memory right after importing the framework (the "
                "post-import baseline); the median over cold-start processes. "
                "`peak_device_mb`: the most device memory the framework reported (GPU). "
                "`worker_peak_rss_mb`: the resident-memory high-water mark of a timing "
                "worker during the case, which includes whatever that process loaded before "
                "(the only memory figure of schema-1 runs)."
            ],
            frame_table(memory(data)),
        )
    )
    s += _model_sections(models)
    s.append(
        Section(
            "Efficiency against the machine's peak",
            [
                "Peak: the best float32 GEMM (n x n, 2n³ FLOPs, at its p50) any framework "
                "reached in this run on the same device and threads. Achieved GFLOP/s: the "
                "graph's FLOPs per sample x batch / p50. The peak is a measured yardstick, "
                "not a hardware ceiling: a case whose shapes suit the kernels better than "
                "the GEMM's can exceed 100%."
            ],
            frame_table(machine_peaks(cases)),
        )
    )
    s.append(
        Section("Achieved GFLOP/s per case", [], frame_table(efficiency(cases, models)), level=3)
    )
    s += _scaling_sections(data, plots)
    scaling = thread_scaling(cases)
    if len(scaling):
        s.append(
            Section(
                "Thread scaling: throughput (samples/s at the p50)",
                [],
                frame_table(scaling),
                images=_plots(plots, "thread_scaling"),
            )
        )
    busy = cases[cases.busy]
    if len(busy):
        s.append(
            Section(
                f"Cases timed on a busy machine (above {BUSY_CPUS:g} CPU used elsewhere)",
                [
                    "`other_cpus`: CPUs other processes kept busy, on average over the timed "
                    "calls, in the worst of the case's processes; `steal_cpus`: CPUs the "
                    "hypervisor gave to other guests meanwhile."
                ],
                frame_table(
                    busy[["run", "case_id", "processes", "p50_ms", "other_cpus", "steal_cpus"]]
                ),
            )
        )
    unstable = cases[cases.unstable]
    s.append(
        Section(
            f"Unstable cases (IQR above {UNSTABLE_IQR_RATIO:.0%} of the p50, or processes "
            f"{UNSTABLE_SPREAD_PCT:g}% apart)",
            ["Their numbers are reported, but the spread is too wide to trust small differences."],
            frame_table(
                unstable[
                    ["run", "case_id", "processes", "rounds", "p50_ms", "iqr_ms", "spread_pct"]
                ]
            ),
        )
    )
    s.append(_errors_section(cases))
    s += _environment_sections(data)
    return s


def _onnx_sections(data: RunData, plots: dict[str, list[Path]]) -> list[Section]:
    """ONNX Runtime against each framework: one figure per framework first, then every
    case where the export is slower, then every case."""
    sp = onnx_speedup(data)
    per_case = speedup_table(data, sp)
    if sp.empty:
        return [
            Section(
                "ONNX Runtime against each framework, per exporter",
                ["No case was measured both natively and under ONNX Runtime."],
                per_case,
            )
        ]
    slower = onnx_slower_table(data, sp)
    return [
        Section(
            "ONNX Runtime against each framework, per exporter",
            [
                "Speedup = the framework's best native p50 (its fastest mode, chosen per "
                "case) / ONNX Runtime's p50 of that framework's own export; above 1: ONNX "
                "Runtime is faster. One figure per framework: the **geometric mean** of the "
                "speedups over its models and batch sizes.",
                "Its 95% interval is a bootstrap of the geometric mean itself: each of the "
                f"{stats.N_RESAMPLES} draws takes the geometric mean of every case's draw of "
                "its ratio (the framework and ONNX Runtime sides of every case are drawn "
                "independently, each case's best mode held fixed), so it carries the "
                "measurement noise of these cases; it is not made of the per-case "
                "intervals. It says nothing of models or batch sizes that were not "
                "measured: the `range` (the least and the greatest per-case speedup) shows "
                "how far the cases differ. The last three columns count the cases whose "
                "speedup interval lies above 1, includes 1, or lies below 1.",
            ],
            onnx_summary_table(data, sp),
        ),
        Section(
            "Slower under ONNX Runtime than the framework's best mode",
            [
                "Every case where the export under ONNX Runtime is slower than the "
                "framework's best native mode: the speedup's 95% interval lies below 1. "
                "Slowest first; `slower by` is ONNX Runtime's p50 over the framework's."
            ]
            + (
                []
                if slower.rows
                else ["None: in no case is ONNX Runtime slower beyond its 95% interval."]
            ),
            slower,
            level=3,
        ),
        Section(
            "Every case: speedup against the best and the default mode",
            [
                "Against the framework's best native mode and against its default (first) "
                "mode, each with a 95% interval of the ratio from independent bootstraps of "
                "both sides. `verdict` says `tie` where the interval includes 1."
            ],
            per_case,
            images=_plots(plots, "native_vs_onnxruntime"),
            level=3,
        ),
    ]


def _scaling_sections(data: RunData, plots: dict[str, list[Path]]) -> list[Section]:
    """How each framework's cost grows with the work (bench/report/scaling.py)."""
    from bench.report import scaling

    pts = scaling.points(data.cases, data.models)
    if pts.empty or not pts.model.map(is_size).astype(bool).any():
        return []
    fitted = scaling.fits(pts, data.cases)
    few = fitted[fitted.sizes < scaling.MIN_POINTS] if len(fitted) else fitted
    fitted = fitted[fitted.sizes >= scaling.MIN_POINTS] if len(fitted) else fitted
    poor = fitted[fitted.get("fit", pd.Series(dtype=str)) == "poor"] if len(fitted) else fitted
    notes = [
        "The models that come in sizes (cnn, lstm and mlp; the ResNet and the GAN come in "
        "one) also ran in other sizes (`mlp@x0.0625` ... `mlp@x64`: the layer widths "
        "scaled, the same code on up to 1000x more or less work; untrained, built from the "
        "spec's initial weights and checked like every build). The chart gives the "
        "achieved GFLOP/s at batch 1 against the model's FLOPs per sample, with the run's "
        "best float32 GEMM as the yardstick.",
        "The table fits each framework and runtime, per architecture, with `latency = "
        "overhead + work / rate` over its sizes at batch 1 (work = the FLOPs per sample; "
        "a larger batch of the same FLOPs runs other kernels, so it is not mixed in), by "
        "least squares on relative error: `overhead_us` is what a call costs however "
        "little it computes, "
        "`rate_gflops` what it reaches once the work dominates. `half_yardstick_mflop`: "
        "the work per call (MFLOP) at which the framework reaches half of the yardstick, "
        "`never` where its rate stays below that.",
        f"A fit is `poor` where some point misses it by more than {scaling.POOR_FIT:.0%} "
        "(`worst_miss_pct`): the two numbers do not describe that framework (kernels that "
        "change with the size, caches spilling); read its points in the chart instead."
        + (f" {len(poor)} of {len(fitted)} fits are poor here." if len(fitted) else "")
        + " With three sizes (a default run) a two-parameter fit has one point to miss: "
        "`--sweep` times every size and tests the model harder.",
    ]
    if len(few):
        pairs = ", ".join(sorted({f"{r.framework} {r.runtime}" for r in few.itertuples()}))
        notes.append(
            f"Not fitted, timed at fewer than {scaling.MIN_POINTS} sizes (a default run "
            f"times the sizes in each framework's default mode only): {pairs}. `--sweep` "
            "times every size in every mode."
        )
    return [
        Section(
            "How the cost grows with the work",
            notes,
            frame_table(scaling.fit_table_frame(fitted)),
            images=_plots(plots, "scaling"),
        )
    ]


def _errors_section(cases: pd.DataFrame) -> Section:
    failed = cases[(cases.status != "ok") | (cases.reason.fillna("") != "")]
    return Section(
        "Errors and unsupported cases",
        [
            "A case is `ok` when any of its processes measured it; the failures of its "
            "other processes are counted in `reason`, and its statistics use the "
            "processes that measured it."
        ],
        frame_table(failed[["run", "case_id", "status", "reason"]]),
    )


def _model_sections(models: pd.DataFrame) -> list[Section]:
    s: list[Section] = []
    s.append(
        Section(
            "Accuracy and time to accuracy",
            [
                "Test accuracy after the spec's epochs; time to accuracy is training time "
                "until the first epoch whose test accuracy reached the target. Only the "
                "reference sizes are trained (the other sizes time the same code on more "
                "or less work, from the spec's initial weights). The GAN has no accuracy: "
                "its `quality` is how the framework's own trained CNN judges 500 generated "
                "digits (mean top-class confidence, and the digits seen in at least 1% of "
                "them), and its time is to the first epoch meeting the target (confidence "
                ">= 0.8 and at least 9 digits; bench/quality.py)."
            ],
            frame_table(
                models[~models.model.map(is_size).astype(bool)][
                    [
                        "host",
                        "framework",
                        "model",
                        "parameters",
                        "test_accuracy",
                        "quality",
                        "time_to_accuracy_s",
                        "train_seconds",
                    ]
                ].drop_duplicates()  # one build in several runs (a fleet's parts): one row
            ),
        )
    )
    s.append(
        Section(
            "Export diagnostics",
            [
                "FLOPs are counted from each ONNX graph (2 x multiply-accumulates of Conv, "
                "ConvTranspose, Gemm, MatMul and LSTM). An export with more than "
                f"{LARGE_GRAPH_RATIO:g}x the nodes of the smallest export of the same model "
                "is called out."
            ],
            frame_table(export_diagnostics(models).drop_duplicates()),
        )
    )
    return s


def _environment_sections(data: RunData) -> list[Section]:
    s: list[Section] = []
    s.append(
        Section(
            "Environment",
            ["Where and how each run was taken."],
            frame_table(environment_table(data)),
        )
    )
    s.append(
        Section(
            "Library versions (per worker)",
            [],
            frame_table(versions_table(data)),
            level=3,
        )
    )
    settings = settings_table(data)
    s.append(
        Section(
            "Worker settings",
            [
                "The environment variables each worker set before importing its framework "
                "(`OMP_WAIT_POLICY` and `KMP_BLOCKTIME` decide whether idle threads spin) and "
                "the runtime settings that change speed (e.g. ONNX Runtime's "
                "`session.intra_op.allow_spinning`). Blank: not set by the harness (schema-1 "
                "runs recorded only the thread counts)."
            ],
            frame_table(settings),
            level=3,
        )
    )
    return s
