"""The history report: the verdicts, the method, and per host and device a table per model
and its charts, as ``report.md`` (charts linked from ``plots/``) and ``report.html`` (one
self-contained page: charts as data URIs), plus ``history.csv`` (every point with its
baseline, change, z and verdict).

The document is the run report's table model (:mod:`bench.report.analysis`: sections,
tables of text cells, notes marking only `code` and **bold**) and is rendered by the run
report's renderers (:mod:`bench.report.render`: every text from the data escaped), so
both reports read and look alike.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.history.trends import (
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    SERIES,
    TOO_LITTLE,
    Settings,
    change_points,
    latest,
)
from bench.history.trends_plots import phase_key, plot_history, runs_in_order, short_sha
from bench.load import BUSY_CPUS
from bench.report.analysis import Cell, Document, Section, Table, code, fmt_ci, fmt_ms

OUTPUTS = ("report.md", "report.html", "history.csv")
PLOTS = "plots"
#: history.csv: every point (a case's p50 in one run) with its judgement.
CSV_COLUMNS = [
    "host", "device", "device_name", "case_id", "framework", "model", "runtime", "exporter",
    "phase", "batch_size", "threads", "run_id", "commit", "commit_time", "run_time", "mode",
    "processes", "rounds", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "unstable", "busy",
    "position", "baseline_runs", "baseline_mean_ms", "baseline_std_ms", "baseline_median_ms",
    "change", "z", "verdict", "outlier",
]  # fmt: skip
_VERDICT_RANK = {REGRESSION: 0, IMPROVEMENT: 1, NO_CHANGE: 2, TOO_LITTLE: 3}


@dataclass(frozen=True)
class HistoryReport:
    folder: Path
    markdown: Path
    html: Path


def report_outputs(folder: Path) -> list[Path]:
    """The report files ``folder`` holds already (a report never replaces another): the
    history report's and the run report's."""
    from bench.report import report_outputs as run_report_outputs

    folder = Path(folder)
    found = [folder / name for name in OUTPUTS if (folder / name).exists()]
    return list(dict.fromkeys([*found, *run_report_outputs(folder)]))


# -- formatting ----------------------------------------------------------------------------
def when(t: Any) -> str:
    """A UTC time as ``2026-11-26 04:19``; empty where unknown."""
    if t is None or t is pd.NaT or (isinstance(t, float) and math.isnan(t)):
        return ""
    try:
        return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(t)


def fmt_change(change: float) -> str:
    return f"{change:+.1%}" if math.isfinite(change) else ""


def fmt_z(z: float) -> str:
    if math.isnan(z):
        return ""
    if math.isinf(z):
        return "∞" if z > 0 else "−∞"
    return f"{z:.1f}"


def _flag(v: Any) -> bool:
    return bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else False


def point_notes(row: Any) -> str:
    notes = []
    if row.mode == "quick":
        notes.append("quick run")
    if _flag(row.busy):
        notes.append("busy machine")
    if _flag(row.unstable):
        notes.append("unstable")
    return ", ".join(notes)


def verdict_text(row: Any) -> str:
    if row.verdict in (REGRESSION, IMPROVEMENT):
        return f"{row.verdict} {fmt_change(row.change)} (z {fmt_z(row.z)})"
    if row.verdict == TOO_LITTLE:
        n = int(row.baseline_runs)
        return f"{TOO_LITTLE} ({n} earlier run{'s' if n != 1 else ''})"
    return row.verdict


def describe(row: Any) -> str:
    """One line on a change point, for the terminal."""
    notes = point_notes(row)
    return (
        f"{row.case_id} on {row.host}/{row.device}: p50 {fmt_ms(row.p50_ms)} ms at "
        f"{short_sha(row.commit)} ({when(row.commit_time) or when(row.run_time)}; run "
        f"{row.run_id}), "
        f"{fmt_change(row.change)} against the median of the {int(row.baseline_runs)} runs "
        f"before it ({fmt_ms(row.baseline_median_ms)} ms), z {fmt_z(row.z)}"
        + (f" [{notes}]" if notes else "")
    )


def _p50(row: Any) -> str:
    return fmt_ci(row.p50_ms, row.p50_ci_low_ms, row.p50_ci_high_ms)


# -- tables --------------------------------------------------------------------------------
_CHANGE_COLUMNS = [
    "case", "host", "device", "commit", "committed", "run", "p50 ms [95% CI]",
    "baseline median ms", "baseline runs", "change", "z", "notes",
]  # fmt: skip
_CHANGE_NUMERIC = [False] * 6 + [True] * 5 + [False]
_MODEL_COLUMNS = [
    "phase", "framework", "runtime", "exporter", "batch", "threads", "runs",
    "latest p50 ms [95% CI]", "latest run", "min ms", "max ms", "latest verdict",
]  # fmt: skip
_RUN_COLUMNS = [
    "#", "run", "commit", "committed", "ran", "mode", "cases", "regressions",
    "improvements", "notes",
]  # fmt: skip


def _change_row(row: Any, now: float | None = None) -> list[Cell]:
    cells = [
        Cell(str(row.case_id)),
        Cell(str(row.host)),
        Cell(str(row.device)),
        Cell(short_sha(row.commit)),
        Cell(when(row.commit_time) or f"ran {when(row.run_time)}"),
        Cell(str(row.run_id)),  # several runs of one commit are told apart by it
        Cell(_p50(row)),
        Cell(fmt_ms(row.baseline_median_ms)),
        Cell(str(int(row.baseline_runs))),
        Cell(fmt_change(row.change), bold=row.verdict == IMPROVEMENT),
        Cell(fmt_z(row.z)),
    ]
    if now is not None:
        cells.append(Cell(fmt_change(now)))
    cells.append(Cell(point_notes(row)))
    return cells


def latest_changes_table(last: pd.DataFrame) -> Table:
    rows = change_points(last)
    rows = rows.assign(_rank=rows.verdict.map(_VERDICT_RANK), _abs=-rows.change.abs())
    rows = rows.sort_values(["_rank", "_abs", *SERIES], kind="stable")
    return Table(
        ["verdict", *_CHANGE_COLUMNS],
        [[Cell(r.verdict), *_change_row(r)] for r in rows.itertuples(index=False)],
        [False, *_CHANGE_NUMERIC],
    )


def earlier_changes_table(judged: pd.DataFrame) -> Table:
    """Every change point but the latest run of its series, newest first; ``now``: the
    series' latest p50 against the same baseline median (whether the change lasted)."""
    last = judged.groupby(SERIES, sort=False).position.transform("max")
    earlier = change_points(judged[judged.position < last])
    latest_p50 = latest(judged).set_index(SERIES).p50_ms
    rows = earlier.sort_values(
        ["order_time", "run_time", *SERIES], ascending=[False, False, True, True, True]
    )
    body = []
    for r in rows.itertuples(index=False):
        now_p50 = latest_p50.get((r.host, r.device, r.case_id), math.nan)
        now = now_p50 / r.baseline_median_ms - 1 if r.baseline_median_ms > 0 else math.nan
        cells = _change_row(r, now)
        cells.insert(-2, Cell("back" if r.outlier else "changed too"))
        body.append([Cell(r.verdict), *cells])
    return Table(
        ["verdict", *_CHANGE_COLUMNS[:-1], "the run after", "latest vs that baseline", "notes"],
        body,
        [False, *_CHANGE_NUMERIC[:-1], False, True, False],
    )


def model_table(rows: pd.DataFrame) -> Table:
    """One row per case of one model on one host and device: its latest p50, history and
    verdict."""
    body = []
    last = latest(rows)
    last = last.assign(
        _phase=last.phase.map(lambda p: phase_key(str(p))),
        _rank=last.verdict.map(_VERDICT_RANK),
    ).sort_values(["_phase", "framework", "runtime", "batch_size", "threads"], kind="stable")
    by_series = rows.groupby(SERIES, sort=False)
    counts = by_series.size()
    quick = by_series["mode"].apply(lambda m: int((m == "quick").sum()))
    low, high = by_series.p50_ms.min(), by_series.p50_ms.max()
    for r in last.itertuples(index=False):
        key = (r.host, r.device, r.case_id)
        n, q = int(counts[key]), int(quick[key])
        notes = point_notes(r)
        body.append(
            [
                Cell(str(r.phase)),
                Cell(str(r.framework)),
                Cell(str(r.runtime)),
                Cell("" if pd.isna(r.exporter) else str(r.exporter)),
                Cell(_int(r.batch_size)),
                Cell(_int(r.threads)),
                Cell(f"{n}" + (f" ({q} quick)" if q else "")),
                Cell(_p50(r) + (f" ({notes})" if notes else "")),
                Cell(f"{short_sha(r.commit)} {when(r.commit_time) or when(r.run_time)}"),
                Cell(fmt_ms(low[key])),
                Cell(fmt_ms(high[key])),
                Cell(verdict_text(r), bold=r.verdict == IMPROVEMENT),
            ]
        )
    return Table(
        _MODEL_COLUMNS,
        body,
        [False] * 4 + [True] * 3 + [True, False, True, True, False],
    )


def _int(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return str(int(f)) if math.isfinite(f) and f.is_integer() else ("" if math.isnan(f) else str(v))


def runs_table(rows: pd.DataFrame) -> Table:
    runs = runs_in_order(rows)
    cases = rows.groupby("run_id").size()
    flagged = (
        rows.assign(
            _b=rows.busy.fillna(False).astype(bool), _u=rows.unstable.fillna(False).astype(bool)
        )
        .groupby("run_id")[["_b", "_u"]]
        .sum()
    )
    changes = change_points(rows).groupby(["run_id", "verdict"]).size()
    body = []
    for i, r in enumerate(runs.itertuples(index=False), start=1):
        notes = []
        if flagged.loc[r.run_id, "_b"]:
            notes.append(f"{int(flagged.loc[r.run_id, '_b'])} timed on a busy machine")
        if flagged.loc[r.run_id, "_u"]:
            notes.append(f"{int(flagged.loc[r.run_id, '_u'])} unstable")
        body.append(
            [
                Cell(str(i)),
                Cell(str(r.run_id)),
                Cell(short_sha(r.commit)),
                Cell(when(r.commit_time)),
                Cell(when(r.run_time)),
                Cell(str(r.mode)),
                Cell(str(int(cases.get(r.run_id, 0)))),
                Cell(str(int(changes.get((r.run_id, REGRESSION), 0))) or ""),
                Cell(str(int(changes.get((r.run_id, IMPROVEMENT), 0))) or ""),
                Cell("; ".join(notes)),
            ]
        )
    return Table(
        _RUN_COLUMNS,
        body,
        [True, False, False, False, False, False, True, True, True, False],
    )


# -- the document --------------------------------------------------------------------------
def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def method_notes(settings: Settings) -> list[str]:
    return [
        "A **series** is one case (`case_id`: framework, model, runtime, phase, device, "
        "batch size, threads) on one host and device: timings from different hosts or "
        "devices are never compared. Its points are the p50 of each run that timed it "
        "(the median over processes of each process's median round, with its 95% "
        "bootstrap interval: the run report's number), ordered by the time of the run's "
        "commit (a run without a commit time: by its run time), ties by run time.",
        "Each point is judged by Conbench's **lookback z-score** against its **baseline**, "
        f"the up to **{settings.lookback}** points before it in its series (`--lookback`): "
        "`z = (p50 - mean(baseline)) / std(baseline)` (standard deviation with Bessel's "
        "correction) and `change = p50 / median(baseline) - 1`. It is a **regression** "
        f"where `z >= {settings.threshold:g}` (`--threshold`; Conbench's default is 5) and "
        f"`change >= {settings.min_change_text}` (`--min-change`), an **improvement** where "
        f"`z <= -{settings.threshold:g}` and `change <= -{settings.min_change_text}`, else "
        f"no change; with fewer than {settings.min_baseline} earlier points, too little "
        "history. Lower latency is better.",
        "Why the change must also reach the min-change: a standard deviation from a few "
        "runs is a poor estimate (from 3 runs it comes out below a third of the true one "
        "about one time in ten), and runs made minutes apart vary less than runs days "
        "apart, so a 1% wobble can be 5 standard deviations of a small baseline. A "
        "baseline whose runs all measured the same p50 has no spread: then any different "
        "p50 has an infinite z (shown as ∞) and the min-change alone decides.",
        "**One-off runs are left out of the baselines**, as Conbench leaves out outliers: "
        "a change point whose next run, judged against the same baseline, is not changed "
        "the same way was a one-off (a spike: a busy machine, a bad process; `back` under "
        "Earlier change points) and joins no later baseline, where its distance "
        "would inflate the spread and hide real changes. A change point whose next run is "
        "changed the same way began a lasting change (a step; `changed too`) and joins the "
        "baselines: a step is flagged once. The runs after it are judged against a "
        "baseline that mixes both levels until the step leaves the window, and a further "
        "change in those runs is harder to flag. A series' first "
        f"{settings.min_baseline} runs have no baseline: a one-off among them is never "
        "found and stays in the baselines.",
        "**Quick runs** (`xfbench bench --quick`) time each case in one process with fewer "
        "rounds: their p50 is noisier and its interval wider. They are judged like full "
        "runs, drawn with hollow markers and named in the tables (`quick run`). Timings "
        "flagged **unstable** (a wide spread between rounds or processes) or taken on a "
        f"**busy** machine (other processes kept more than {BUSY_CPUS:g} CPU busy) are "
        "marked with a "
        "small cross and named: a change point there may be the machine, not the code.",
        "The method: Conbench's lookback z-score (github.com/conbench/conbench, "
        "`docs/pages/lookback_zscore.md`; its default threshold, `DEFAULT_Z_SCORE_THRESHOLD "
        "= 5.0`, is in `conbench/api/compare.py`). Where this differs: Conbench draws its "
        "baseline from up to 100 earlier commits and takes each result's best repetition; "
        "here it is the up to `--lookback` earlier runs and each run's p50, and a change "
        "must also reach `--min-change` (`bench/history/trends.py` says why).",
        "Charts: one per host, device, model and phase; a panel per framework and batch "
        "size, a line per runtime, its band the 95% interval; the x axis is the runs that "
        "timed the chart's cases, labelled with the short commit and its date; a red ring "
        "marks a regression, a green ring an improvement. `history.csv` holds every point "
        "with its baseline, change, z and verdict.",
    ]


def _title(judged: pd.DataFrame) -> str:
    pairs = sorted({(str(h), str(d)) for h, d in zip(judged.host, judged.device, strict=True)})
    where = ", ".join(f"{h} · {d}" for h, d in pairs[:4]) + (", ..." if len(pairs) > 4 else "")
    return f"xfbench history: {where}"


def build_document(
    judged: pd.DataFrame,
    settings: Settings,
    plots: dict[tuple[str, str, str], list[Path]],
    source: str = "",
) -> Document:
    last = latest(judged)
    counts = last.verdict.value_counts()
    n_reg, n_imp = int(counts.get(REGRESSION, 0)), int(counts.get(IMPROVEMENT, 0))
    n_same, n_few = int(counts.get(NO_CHANGE, 0)), int(counts.get(TOO_LITTLE, 0))
    runs = judged.run_id.nunique()
    summary = (
        f"The latest run of each of **{_count(len(last), 'series', 'series')}** "
        f"({_count(runs, 'run')}, committed {when(judged.order_time.min())} to "
        f"{when(judged.order_time.max())} UTC): "
        f"**{_count(n_reg, 'regression')}**, **{_count(n_imp, 'improvement')}**, "
        f"{n_same} with no change, {n_few} with too little history (fewer than "
        f"{settings.min_baseline} earlier runs). A change point is a run whose p50 is at "
        f"least {settings.threshold:g} standard deviations and {settings.min_change_text} "
        f'away from the up to {settings.lookback} runs before it ("How change points are '
        'found"). Regressions first, then improvements, largest change first.'
    )
    verdicts = Section("The verdicts", notes=[summary], table=latest_changes_table(last))
    if not n_reg + n_imp:
        verdicts.notes.append("No series' latest run is a change point.")
        verdicts.table = None
    quick_last = change_points(last)
    if (quick_last["mode"] == "quick").any():
        verdicts.notes.append(
            "Some of these change points are quick runs (one process, fewer rounds): "
            "confirm them with a full run before acting on them."
        )
    earlier = Section(
        "Earlier change points",
        notes=[
            "Every earlier run that was a change point against the runs before it, newest "
            "first. `the run after`: `changed too` where it was changed the same way against "
            "the same baseline (a step), `back` where it was not (a one-off, left out of "
            "later baselines). "
            "`latest vs that baseline`: the series' latest p50 against the same baseline "
            "median, i.e. whether the change is still there."
        ],
        table=earlier_changes_table(judged),
        level=3,
    )
    method = Section("How change points are found", notes=method_notes(settings))
    if source:
        method.notes.append(f"History: {code(source)}.")
    sections = [verdicts, earlier, method]
    for (host, device), rows in judged.groupby(["host", "device"], sort=True):
        sections += _host_sections(str(host), str(device), rows, plots)
    return Document(_title(judged), sections)


def _host_sections(
    host: str, device: str, rows: pd.DataFrame, plots: dict[tuple[str, str, str], list[Path]]
) -> list[Section]:
    runs = runs_in_order(rows)
    quick = int((runs["mode"] == "quick").sum())
    names = sorted({str(n) for n in rows.device_name.dropna() if str(n)})
    commits = runs.commit.dropna().nunique()
    first, last = runs.order_time.min(), runs.order_time.max()
    intro = (
        f"{_count(len(runs), 'run')} ({quick} quick, {len(runs) - quick} full) of "
        f"{_count(commits, 'commit')}, committed {when(first)} to {when(last)} (UTC); "
        f"{_count(rows.case_id.nunique(), 'case')}"
        + (f"; device: {', '.join(code(n) for n in names)}" if names else "")
        + "."
    )
    if len(names) > 1:
        intro += (
            " **The device's name changed over the history**: a change point where it did "
            "may be the hardware."
        )
    out = [Section(f"{host} · {device}", notes=[intro])]
    for model, sub in sorted(rows.groupby("model", sort=True), key=lambda kv: str(kv[0])):
        last = latest(sub)
        n_reg = int((last.verdict == REGRESSION).sum())
        n_imp = int((last.verdict == IMPROVEMENT).sum())
        note = (
            f"{_count(len(last), 'case')}; latest runs: {_count(n_reg, 'regression')}, "
            f"{_count(n_imp, 'improvement')}. Latest p50 with its 95% interval; min and max "
            "over every run; runs: how many timed the case (quick ones counted apart)."
        )
        out.append(
            Section(
                f"{model} on {host} · {device}",
                notes=[note],
                table=model_table(sub),
                images=plots.get((host, device, str(model)), []),
                level=3,
            )
        )
    out.append(
        Section(
            f"Runs on {host} · {device}",
            notes=[
                "In the order the series use (commit time, then run time); regressions and "
                "improvements: the change points each run holds."
            ],
            table=runs_table(rows),
            level=3,
        )
    )
    return out


# -- writing -------------------------------------------------------------------------------
def write_history_report(
    judged: pd.DataFrame, out_dir: Path, settings: Settings, source: str = ""
) -> HistoryReport:
    """Write report.md, report.html, history.csv and plots/ into ``out_dir``, all or
    nothing (the run report's way: a scratch folder beside it, then moved in). Raises
    :class:`FileExistsError` where ``out_dir`` holds a report already."""
    from bench.report import _move_into_place, _scratch_folder
    from bench.report.render import to_html, to_markdown

    out_dir = Path(out_dir)
    held = report_outputs(out_dir)
    if held:
        names = ", ".join(p.name for p in held[:5])
        raise FileExistsError(
            f"{out_dir} already holds a report ({names}{', ...' if len(held) > 5 else ''}); "
            "a report never replaces another"
        )
    tmp = _scratch_folder(out_dir)
    try:
        cols = [c for c in CSV_COLUMNS if c in judged.columns]
        judged[cols].to_csv(tmp / "history.csv", index=False)
        plots = plot_history(judged, tmp / PLOTS)
        doc = build_document(judged, settings, plots, source)
        (tmp / "report.md").write_text(to_markdown(doc, tmp))
        (tmp / "report.html").write_text(to_html(doc))
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return HistoryReport(out_dir, out_dir / "report.md", out_dir / "report.html")
