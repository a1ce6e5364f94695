"""``xfbench history report``: trends and change points over the results history.

Every timed case of every run in the history database (:mod:`bench.history.db`) becomes
a point of a **series**: one case (``case_id``: framework, model, runtime, phase, device,
batch size, threads) on one host and device. Timings of different hosts or devices are
never compared. A series' points are ordered by the commit time of their run (runs
without a commit time by their run time), ties by run time.

Change points: the lookback z-score
-----------------------------------
The method is Conbench's "lookback z-score" (Conbench, ``docs/pages/lookback_zscore.md``
and ``conbench/api/compare.py`` in github.com/conbench/conbench: the z-score of a result
against the distribution of earlier results of the same case, context and hardware;
``DEFAULT_Z_SCORE_THRESHOLD = 5.0``; a regression where the z-score is beyond the
threshold on the slow side, an improvement beyond it on the fast side). Here, for each
point ``x`` (a run's p50) with at least :data:`MIN_BASELINE` earlier points in its
series:

- the **baseline** is the previous ``lookback`` points of the series (fewer where fewer
  exist), default :data:`LOOKBACK`, one-off outliers left out (below);
- ``z = (x - mean(baseline)) / std(baseline)``, the standard deviation with Bessel's
  correction (as Conbench's);
- the **change** is ``x / median(baseline) - 1``;
- ``regression`` where ``z >= threshold`` and ``change >= min_change``; ``improvement``
  where ``z <= -threshold`` and ``change <= -min_change`` (latency: higher is slower);
  else ``no change``. A point with fewer than :data:`MIN_BASELINE` earlier points is
  ``too little history``.

Outliers are left out of the distribution, as Conbench leaves them out, and with its one
run of look-ahead (a jump that the next run reverts is an outlier): a change point whose
next run, judged against the same baseline, is not changed the same way was a one-off (a
spike: a busy machine, a bad process) and is left out of every later baseline, where it
would inflate the spread and hide real changes for ``lookback`` runs. A change point
whose next run is changed the same way began a lasting change (a step) and joins the
baselines, so a step is flagged once: with one point of the new level among ``n`` of the
old, the next point at the new level has ``z = n / sqrt(n + 1)`` (noise aside), 4.2
where a window of 20 holds 19 of the old level: under the threshold. The latest run has
no next run: it is never called an outlier.

Where it departs from Conbench, and why:

- **The window is runs, not commits, and shorter**: Conbench draws up to
  ``DISTRIBUTION_COMMITS = 100`` commits of history and restarts its baseline where a
  curator annotated a distribution change. There are no such annotations here, so after
  a real step the baseline mixes both levels for ``lookback`` runs, and its inflated
  spread hides any further change until the step leaves the window. 20 runs bound that
  blind spot while still estimating the spread to about +-16% (the relative standard
  error of a standard deviation from n points is about ``1/sqrt(2(n-1))``), and keep a
  step flagged once (``n / sqrt(n + 1)`` reaches 5 at ``n = 26``: a lookback of 27 or
  more would flag a clean step twice).
- **How a one-off is told from a step**: Conbench compares the jump between consecutive
  results with the spread of such jumps (trimmed at their 5% and 95% quantiles); here
  the next run is judged against the flagged run's own baseline, which needs no second
  distribution.
- **The first runs cannot be judged**: a series' first :data:`MIN_BASELINE` runs have no
  baseline, so a one-off among them is never found and stays in the baselines.
- **The spread is the baseline's own standard deviation**, where Conbench takes that of
  the residuals from its rolling mean (which matters only with its annotated changes).
- **The value is the run's p50** (median over processes of each process's median
  round, with its bootstrap interval), not Conbench's "best" (minimum) repetition: the
  p50 is the number the project reports.
- **A baseline without spread** (every earlier p50 equal, e.g. a coarse timer) gets no
  z-score in Conbench. Here ``z`` is 0 where ``x`` equals the mean and ``+-inf``
  otherwise (any difference is infinitely many standard deviations), so the verdict
  rests on the ``min_change`` guard alone; nothing is divided by zero. A spread below
  ``1e-12`` of the mean is rounding and counts as none.
- **The min-change guard** (default :data:`MIN_CHANGE`, 5%; Conbench's own pairwise
  comparison defaults to a 5% threshold too, and so does ``xfbench report --compare``'s
  ``--min-effect``). A standard deviation from 3 to 5 runs is a poor estimate: with 3
  points it comes out below a third of the true one about one time in ten, and runs made
  minutes apart vary less than runs days apart. Such a baseline turns a 1% wobble into
  ``|z| >= 5``. A change smaller than ``min_change`` of the baseline's median is never
  flagged, however large its z.

The inputs are the DataFrame columns of :func:`bench.history.db.load_series`. Importing
this module imports neither pandas nor matplotlib (the command line builds its parser
from it); the functions do.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli import UsageError
from bench.history import SERIES_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Earlier points in the baseline at most (``--lookback``): see the module's docstring.
LOOKBACK = 20
#: ``|z|`` at which a point is a change point (``--threshold``): Conbench's default.
THRESHOLD = 5.0
#: Smallest relative change against the baseline's median that is flagged.
MIN_CHANGE = 0.05
#: Fewest earlier points a verdict rests on.
MIN_BASELINE = 3
#: A baseline spread below this fraction of its mean is rounding: no spread.
_RELATIVE_ZERO = 1e-12

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no change"
TOO_LITTLE = "too little history"
VERDICTS = (REGRESSION, IMPROVEMENT, NO_CHANGE, TOO_LITTLE)

#: A series: one case on one host and device.
SERIES = ["host", "device", "case_id"]
#: The columns :func:`bench.history.db.load_series` gives (the contract).
POINT_COLUMNS = SERIES_COLUMNS
#: The columns :func:`detect` adds.
DETECT_COLUMNS = [
    "position", "baseline_runs", "baseline_mean_ms", "baseline_std_ms",
    "baseline_median_ms", "change", "z", "verdict", "outlier",
]  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """The detector's thresholds (stated in the report)."""

    lookback: int = LOOKBACK
    threshold: float = THRESHOLD
    min_change: float = MIN_CHANGE
    min_baseline: int = MIN_BASELINE

    @property
    def min_change_text(self) -> str:
        """``min_change`` as a percentage, as given: 0.05 is 5%, 0.025 is 2.5%."""
        return f"{self.min_change * 100:.4g}%"

    def check(self) -> None:
        """A :class:`UsageError` naming the option where a value is out of range."""
        if not (isinstance(self.lookback, int) and self.lookback >= self.min_baseline):
            raise UsageError(
                f"--lookback must be a whole number of runs of at least {self.min_baseline} "
                f"(the fewest earlier runs a verdict rests on), got {self.lookback}"
            )
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise UsageError(
                f"--threshold must be a positive number of standard deviations, got "
                f"{self.threshold:g}"
            )
        if not (math.isfinite(self.min_change) and 0 <= self.min_change < 1):
            raise UsageError(
                "--min-change must be a fraction from 0 up to (not including) 1, e.g. 0.05 "
                f"for 5%, got {self.min_change:g}"
            )


@dataclass(frozen=True)
class Judgement:
    """One point against its baseline."""

    verdict: str
    baseline_runs: int
    mean: float = math.nan
    std: float = math.nan
    median: float = math.nan
    change: float = math.nan
    z: float = math.nan
    #: A one-off change point: the run after it was not changed the same way.
    outlier: bool = False


def judge(value: float, baseline: Sequence[float], settings: Settings = Settings()) -> Judgement:
    """The verdict on ``value`` (a p50) against ``baseline`` (the earlier p50s of its
    series, at most ``settings.lookback`` of them, oldest first)."""
    import numpy as np

    base = np.asarray(baseline, dtype=float)[-settings.lookback :]
    n = len(base)
    if n < settings.min_baseline:
        return Judgement(TOO_LITTLE, n)
    mean, std, median = float(base.mean()), float(base.std(ddof=1)), float(np.median(base))
    rounding = _RELATIVE_ZERO * abs(mean)
    if std <= rounding:  # no spread: any difference is infinitely many deviations
        std = 0.0
        diff = value - mean
        z = 0.0 if abs(diff) <= rounding else math.copysign(math.inf, diff)
    else:
        z = (value - mean) / std
    change = value / median - 1 if median > 0 else math.nan
    verdict = NO_CHANGE
    if math.isfinite(change):
        if z >= settings.threshold and change >= settings.min_change:
            verdict = REGRESSION
        elif z <= -settings.threshold and change <= -settings.min_change:
            verdict = IMPROVEMENT
    return Judgement(verdict, n, mean, std, median, change, z)


def order_points(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` sorted by series, then commit time (a run without one: its run time),
    then run time; with ``order_time`` (that sort key) added and a fresh index."""
    import pandas as pd

    df = points.copy()
    for col in ("commit_time", "run_time"):
        df[col] = pd.to_datetime(df[col], utc=True, errors="coerce")
    df["order_time"] = df.commit_time.fillna(df.run_time)
    df["_run"] = df.run_id.astype(str)
    df = df.sort_values([*SERIES, "order_time", "run_time", "_run"], kind="stable")
    return df.drop(columns="_run").reset_index(drop=True)


def judge_series(values: Sequence[float], settings: Settings = Settings()) -> list[Judgement]:
    """Every point of one series (p50s in run order) judged against the points before it,
    one-off outliers left out of the baselines (Conbench's way, with its one-run look
    ahead): a change point whose next run, judged against the same baseline, is not a
    change the same way was a one-off (``Judgement.outlier``) and stays out of every later
    baseline; one whose next run is changed the same way began a lasting change (a step)
    and joins the baselines. The latest point, with no next run, is not called either."""
    kept: list[int] = []  # points the baselines are drawn from, in order
    out: list[Judgement] = []
    pending: int | None = None  # the previous point, where it was a change point
    for j, x in enumerate(values):
        if pending is not None:
            again = judge(x, [values[i] for i in kept[-settings.lookback :]], settings)
            if again.verdict == out[pending].verdict:
                kept.append(pending)  # a step: the next run is changed the same way
            else:
                out[pending] = replace(out[pending], outlier=True)
            pending = None
        got = judge(x, [values[i] for i in kept[-settings.lookback :]], settings)
        out.append(got)
        if got.verdict in (REGRESSION, IMPROVEMENT):
            pending = j
        else:
            kept.append(j)
    return out


def detect(points: pd.DataFrame, settings: Settings = Settings()) -> pd.DataFrame:
    """Every point of ``points`` (columns of :func:`bench.history.db.load_series`) judged
    against the points before it in its series (:func:`judge_series`):
    :func:`order_points` with the columns :data:`DETECT_COLUMNS` added (``position``: 0
    for a series' first run; ``outlier``: a one-off change point, left out of the later
    baselines)."""
    import numpy as np

    df = order_points(points)
    n = len(df)
    out: dict[str, Any] = {
        "position": np.zeros(n, dtype=int),
        "baseline_runs": np.zeros(n, dtype=int),
        **{c: np.full(n, np.nan) for c in DETECT_COLUMNS[2:-2]},
        "verdict": np.full(n, TOO_LITTLE, dtype=object),
        "outlier": np.zeros(n, dtype=bool),
    }
    values = df.p50_ms.to_numpy(dtype=float)
    for rows in df.groupby(SERIES, sort=False).indices.values():
        judged = judge_series(list(values[rows]), settings)
        for j, (row, got) in enumerate(zip(rows, judged, strict=True)):
            out["position"][row] = j
            out["baseline_runs"][row] = got.baseline_runs
            out["baseline_mean_ms"][row] = got.mean
            out["baseline_std_ms"][row] = got.std
            out["baseline_median_ms"][row] = got.median
            out["change"][row] = got.change
            out["z"][row] = got.z
            out["verdict"][row] = got.verdict
            out["outlier"][row] = got.outlier
    for col in DETECT_COLUMNS:
        df[col] = out[col]
    return df


def latest(judged: pd.DataFrame) -> pd.DataFrame:
    """The last point of each series of :func:`detect`'s result."""
    if judged.empty:
        return judged
    last = judged.groupby(SERIES, sort=False).position.transform("max")
    return judged[judged.position == last].reset_index(drop=True)


def change_points(judged: pd.DataFrame) -> pd.DataFrame:
    """The points judged a regression or an improvement."""
    return judged[judged.verdict.isin((REGRESSION, IMPROVEMENT))]


# -- the command line ---------------------------------------------------------------------
def _add(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """Add an option unless the parser has it already (``--db`` and ``--out`` may be
    registered by ``bench/history/cli.py`` for every history action)."""
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(*flags, **kwargs)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``xfbench history report``."""
    _add(
        parser,
        "--db",
        default=None,
        metavar="URL",
        help="the results history database (any SQLAlchemy URL); default: $XFBENCH_DB, "
        "else sqlite:///<--out>/history.db",
    )
    _add(
        parser,
        "--out",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="the results folder: where the default database (history.db) is and the "
        "default report folder goes (default: reports)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the history report (must not hold one already); default: a new "
        "folder <--out>/history/<time>-history",
    )
    parser.add_argument(
        "--lookback",
        type=int,
        default=LOOKBACK,
        metavar="N",
        help=f"a run is judged against at most the N runs before it in its series "
        f"(default {LOOKBACK})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        metavar="Z",
        help="flag a run whose p50 is at least Z standard deviations from the mean of "
        f"those runs (default {THRESHOLD:g}, Conbench's)",
    )
    parser.add_argument(
        "--min-change",
        type=float,
        default=MIN_CHANGE,
        metavar="FRACTION",
        help="... and at least this fraction from their median (default "
        f"{MIN_CHANGE:g} = {MIN_CHANGE * 100:g}%%)",
    )
    parser.add_argument("--host", default=None, help="only this host's runs")
    parser.add_argument("--device", default=None, help="only this device's timings (cpu, cuda)")
    parser.add_argument(
        "-m",
        "--model",
        action="append",
        default=None,
        help="only these models (repeatable or comma-separated)",
    )
    parser.add_argument(
        "-f",
        "--framework",
        action="append",
        default=None,
        help="only these frameworks (repeatable or comma-separated)",
    )
    parser.add_argument(
        "--fail-on",
        choices=["regression"],
        default=None,
        help="exit 1 when the latest run of any series shown is a regression",
    )


def _split(values: list[str] | None) -> list[str] | None:
    """``-m cnn -m lstm`` and ``-m cnn,lstm`` both work; None: no filter."""
    if values is None:
        return None
    names = list(dict.fromkeys(v for value in values for v in value.split(",") if v))
    if not names:
        raise UsageError("an empty -m/--model or -f/--framework list names nothing")
    return names


@dataclass(frozen=True)
class Filters:
    host: str | None = None
    device: str | None = None
    models: list[str] | None = None
    frameworks: list[str] | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.host, self.device, self.models, self.frameworks))

    def apply(self, points: pd.DataFrame) -> pd.DataFrame:
        keep = points.host.notna()
        if self.host is not None:
            keep &= points.host == self.host
        if self.device is not None:  # a run folder's "gpu" is the cases' "cuda"
            keep &= points.device == ("cuda" if self.device == "gpu" else self.device)
        if self.models is not None:
            keep &= points.model.isin(self.models)
        if self.frameworks is not None:
            keep &= points.framework.isin(self.frameworks)
        return points[keep]


#: ``loader(target, host=..., device=..., models=..., frameworks=...)`` -> points.
Loader = Callable[..., "pd.DataFrame"]


def _names(values: Any) -> str:
    names = sorted({str(v) for v in values if v is not None and str(v) != "nan"})
    return ", ".join(names) if names else "none"


def _nothing_matches(shown: str, filters: Filters, everything: pd.DataFrame) -> UsageError:
    asked = ", ".join(
        f"{option} {value if isinstance(value, str) else ','.join(value)}"
        for option, value in (
            ("--host", filters.host),
            ("--device", filters.device),
            ("-m", filters.models),
            ("-f", filters.frameworks),
        )
        if value is not None
    )
    return UsageError(
        f"no timing in the history {shown} matches {asked}; it holds hosts: "
        f"{_names(everything.host)}; devices: {_names(everything.device)}; models: "
        f"{_names(everything.model)}; frameworks: {_names(everything.framework)}"
    )


def load_points(target: Any, shown: str, filters: Filters, loader: Loader) -> pd.DataFrame:
    """The points of the history ``target`` (``shown``: how messages name it) that
    ``filters`` select, or a :class:`UsageError` that says what to do: add runs, or
    choose filters that match."""
    points = loader(
        target,
        host=filters.host,
        device=filters.device,
        models=filters.models,
        frameworks=filters.frameworks,
    )
    if len(points):
        points = filters.apply(points)  # the same selection whatever the loader did
    if len(points):
        return points
    everything = loader(target) if filters.any() else points
    if len(everything) == 0:
        raise UsageError(
            f"the history {shown} holds no finished run with a timing; add runs with "
            "`xfbench history ingest reports/<run>` (`xfbench bench` adds each run it "
            "finishes), or name another database with --db"
        )
    raise _nothing_matches(shown, filters, everything)


def _output_folder(args: argparse.Namespace) -> tuple[Path, bool]:
    """The report's folder, and whether it was made here (removed again where the report
    fails). An ``--output`` that holds a report is refused, naming the fix."""
    from bench.history.trends_render import report_outputs
    from bench.rundir import new_run_dir

    if args.output is not None:
        held = report_outputs(args.output)
        if held:
            raise UsageError(
                f"{args.output} already holds a report ({', '.join(p.name for p in held[:5])}"
                f"{', ...' if len(held) > 5 else ''}); a report never replaces another: "
                "choose a new --output folder"
            )
        return Path(args.output), False
    root = Path(getattr(args, "out", Path("reports"))) / "history"
    try:
        return new_run_dir(root, "history"), True
    except OSError as exc:
        raise UsageError(
            f"cannot make a report folder under {root} ({exc.strerror or exc}); choose a "
            "writable --output folder"
        ) from None


def _say_change(row: Any) -> str:
    from bench.history.trends_render import describe

    return describe(row)


def report(args: argparse.Namespace, loader: Loader | None = None, target: Any = None) -> int:
    """``cmd_report`` with the database reader replaceable: ``loader(target, host=...,
    device=..., models=..., frameworks=...)`` in place of
    :func:`bench.history.db.load_series` on the database ``--db`` names (the tests judge
    and render DataFrames they build)."""
    settings = Settings(args.lookback, args.threshold, args.min_change)
    settings.check()
    filters = Filters(
        args.host,
        args.device,
        _split(args.model),
        _split(getattr(args, "framework", None)),
    )
    if loader is None:
        from bench.history import db

        try:
            # --db, else $XFBENCH_DB, else sqlite:///<--out>/history.db: db's rule
            target = db.resolve_url(getattr(args, "db", None), getattr(args, "out", None))
            shown = db.display_url(target)
            points = load_points(target, shown, filters, db.load_series)
        except db.HistoryError as exc:
            raise UsageError(str(exc)) from None
    else:
        shown = str(target)
        points = load_points(target, shown, filters, loader)

    from bench.history.trends_render import write_history_report

    judged = detect(points, settings)
    out, made = _output_folder(args)
    try:
        written = write_history_report(judged, out, settings, source=shown)
    except FileExistsError as exc:
        raise UsageError(f"{exc}: choose another --output") from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise UsageError(
            f"could not write the history report to {out}: {exc.strerror or exc}{where}; "
            "choose a writable --output folder"
        ) from None
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a report that failed leaves no empty folder behind
    last = latest(judged)
    regressions = last[last.verdict == REGRESSION]
    improvements = last[last.verdict == IMPROVEMENT]
    print(f"xfbench: history report written to {written.markdown} (and {written.html.name})")
    print(
        f"xfbench: latest runs of {len(last)} series: {len(regressions)} regression(s), "
        f"{len(improvements)} improvement(s), "
        f"{int((last.verdict == TOO_LITTLE).sum())} with too little history "
        f"(lookback {settings.lookback} runs, |z| >= {settings.threshold:g}, change >= "
        f"{settings.min_change_text})"
    )
    for row in regressions.itertuples(index=False):
        print(f"xfbench: regression: {_say_change(row)}")
    if len(last) and (last.verdict == TOO_LITTLE).all():
        # A gate that judged nothing passes: say so, or a green CI guards nothing.
        print(
            f"xfbench: warning: no series could be judged yet: a verdict needs "
            f"{MIN_BASELINE} earlier runs of the same case on the same host and device"
        )
    return 1 if args.fail_on == "regression" and len(regressions) else 0


def cmd_report(args: argparse.Namespace) -> int:
    """``xfbench history report``: 0, or 1 with ``--fail-on regression`` where the latest
    run of a series shown is a regression; bad input raises :class:`UsageError` (exit 2)."""
    return report(args)
