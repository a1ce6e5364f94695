"""The history report (bench/history/trends.py): the lookback z-score change-point
detector on synthetic series, the Markdown and HTML report, the command's bad input, and
``--fail-on regression`` end to end on a real SQLite history of run folders derived from
tests/fixtures/runs/cpu-a (its real p50s, scaled per run).

The synthetic series are seeded: each test states the noise it uses, and the detector's
thresholds are the defaults unless the test is about one of them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from bench.cli import UsageError  # noqa: E402
from bench.history import trends  # noqa: E402
from bench.history.trends import (  # noqa: E402
    IMPROVEMENT,
    NO_CHANGE,
    POINT_COLUMNS,
    REGRESSION,
    TOO_LITTLE,
    Settings,
    detect,
    judge,
    judge_series,
)

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
T0 = pd.Timestamp("2026-11-01 00:00", tz="UTC")


def noisy(n: int, level: float = 1.0, sd: float = 0.01, seed: int = 0) -> list[float]:
    """``n`` p50s around ``level`` with relative noise ``sd`` (seeded)."""
    rng = np.random.default_rng(seed)
    return list(level * (1 + sd * rng.standard_normal(n)))


def verdicts(values: list[float], settings: Settings | None = None) -> list[str]:
    return [j.verdict for j in judge_series(values, settings or Settings())]


def make_points(
    values: list[float],
    *,
    host: str = "h1",
    device: str = "cpu",
    framework: str = "torch",
    model: str = "mlp",
    runtime: str = "eager",
    phase: str = "inference",
    batch: int = 1,
    threads: int = 2,
    modes: list[str] | None = None,
    busy: list[bool] | None = None,
    hours: list[float] | None = None,
) -> pd.DataFrame:
    """A series as load_series gives it: run ``k`` on ``host`` is ``<host>-<k>``,
    committed ``k`` hours after T0 (or ``hours[k]``) and run 10 minutes later; a 95%
    interval of +-1% around each p50."""
    rows = []
    for k, v in enumerate(values):
        committed = T0 + pd.Timedelta(hours=hours[k] if hours else k)
        rows.append(
            {
                "run_id": f"{host}-{k:03d}",
                "host": host,
                "device": device,
                "device_name": "Test CPU",
                "case_id": f"{framework}-{model}-{runtime}-{phase}-{device}-b{batch}-t{threads}",
                "framework": framework,
                "model": model,
                "runtime": runtime,
                "exporter": "" if runtime != "onnxruntime" else "exp",
                "phase": phase,
                "batch_size": batch,
                "threads": threads,
                "commit": f"{k:07x}" + "a" * 33,
                "commit_time": committed,
                "run_time": committed + pd.Timedelta(minutes=10),
                "mode": (modes or ["full"] * len(values))[k],
                "complete": True,
                "status": "ok",
                "processes": 3,
                "rounds": 50,
                "p50_ms": v,
                "p50_ci_low_ms": v * 0.99,
                "p50_ci_high_ms": v * 1.01,
                "unstable": False,
                "busy": (busy or [False] * len(values))[k],
            }
        )
    df = pd.DataFrame(rows, columns=POINT_COLUMNS)
    df["batch_size"] = df.batch_size.astype("Int64")  # as load_series gives them
    df["threads"] = df.threads.astype("Int64")
    return df


# -- the detector ---------------------------------------------------------------------------
def test_a_20_percent_step_is_flagged_at_the_step_and_nowhere_else() -> None:
    values = noisy(8, sd=0.01, seed=1) + [v * 1.2 for v in noisy(6, sd=0.01, seed=2)]
    got = judge_series(values)
    assert [j.verdict for j in got[:3]] == [TOO_LITTLE] * 3
    assert [j.verdict for j in got[3:8]] == [NO_CHANGE] * 5  # before the step: nothing
    assert got[8].verdict == REGRESSION
    assert got[8].z >= 5 and got[8].change == pytest.approx(0.2, abs=0.04)
    assert got[8].baseline_runs == 8
    # A step is a lasting change: flagged once, then it joins the baselines.
    assert [j.verdict for j in got[9:]] == [NO_CHANGE] * 5
    assert not got[8].outlier


def test_pure_noise_of_the_same_spread_flags_nothing() -> None:
    assert set(verdicts(noisy(40, sd=0.01, seed=1))[3:]) == {NO_CHANGE}
    # ... and not by luck of one seed: 200 series of 30 runs, 1% noise, none flagged.
    flagged = sum(
        v in (REGRESSION, IMPROVEMENT)
        for seed in range(200)
        for v in verdicts(noisy(30, sd=0.01, seed=100 + seed))
    )
    assert flagged == 0


def test_a_20_percent_drop_is_an_improvement() -> None:
    values = noisy(8, sd=0.01, seed=3) + [v * 0.8 for v in noisy(4, sd=0.01, seed=4)]
    got = judge_series(values)
    assert got[8].verdict == IMPROVEMENT
    assert got[8].z <= -5 and got[8].change == pytest.approx(-0.2, abs=0.04)
    assert [j.verdict for j in got[3:8] + got[9:]] == [NO_CHANGE] * 8


def test_fewer_than_three_earlier_runs_is_too_little_history() -> None:
    assert verdicts([1.0, 1.0, 5.0]) == [TOO_LITTLE] * 3  # however large the jump
    got = judge(5.0, [1.0, 1.01])
    assert (got.verdict, got.baseline_runs) == (TOO_LITTLE, 2)
    assert math.isnan(got.z)
    assert judge(5.0, [1.0, 1.01, 0.99]).verdict == REGRESSION  # three are enough


def test_a_baseline_without_spread_divides_nothing_by_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy division warning would fail the test
        up = judge(1.2, [1.0, 1.0, 1.0, 1.0])
        same = judge(1.0, [1.0, 1.0, 1.0])
        small = judge(1.02, [1.0, 1.0, 1.0])
        rounding = judge(1.1 * 3 / 3, [1.1, 1.1, 1.1])
    assert (up.verdict, up.z, up.std) == (REGRESSION, math.inf, 0.0)
    assert (same.verdict, same.z) == (NO_CHANGE, 0.0)
    # Any difference is infinitely many deviations: the min-change decides alone.
    assert (small.verdict, small.z) == (NO_CHANGE, math.inf)
    assert rounding.verdict == NO_CHANGE and rounding.z == 0.0
    assert judge(0.7, [1.0, 1.0, 1.0]).verdict == IMPROVEMENT
    assert judge(0.7, [1.0, 1.0, 1.0]).z == -math.inf


def test_the_min_change_guard() -> None:
    baseline = [1.000, 1.001, 0.999, 1.000]  # spread 0.08%: a 3% change is z ~ 37
    got = judge(1.03, baseline)
    assert got.z > 30 and got.verdict == NO_CHANGE
    assert judge(1.03, baseline, Settings(min_change=0.02)).verdict == REGRESSION
    assert judge(1.03, baseline, Settings(min_change=0.0)).verdict == REGRESSION
    # ... and the z threshold still applies to a large change over a wide spread.
    wide = [1.0, 1.3, 0.8, 1.1]
    assert judge(1.3, wide).change > 0.05 and judge(1.3, wide).verdict == NO_CHANGE
    assert judge(1.3, wide, Settings(threshold=0.5)).verdict == REGRESSION


def test_a_one_off_spike_leaves_the_baselines_and_hides_no_later_step() -> None:
    values = noisy(8, sd=0.01, seed=5)
    values += [1.6]  # a spike (a busy machine)
    values += noisy(5, sd=0.01, seed=6)  # back
    values += [v * 1.2 for v in noisy(3, sd=0.01, seed=7)]  # a real step at point 14
    got = judge_series(values)
    assert got[8].verdict == REGRESSION and got[8].outlier
    assert [j.verdict for j in got[9:14]] == [NO_CHANGE] * 5
    assert got[14].verdict == REGRESSION and not got[14].outlier
    # With the spike kept in the baseline, its spread would hide the step.
    assert judge(values[14], values[:14]).verdict == NO_CHANGE
    # The latest run has no next run: a change point there is never called a one-off.
    last = judge_series([*noisy(6, sd=0.01, seed=8), 1.5])[-1]
    assert last.verdict == REGRESSION and not last.outlier


def test_the_lookback_bounds_the_baseline() -> None:
    values = noisy(30, sd=0.01, seed=9)
    assert max(j.baseline_runs for j in judge_series(values)) == trends.LOOKBACK
    assert max(j.baseline_runs for j in judge_series(values, Settings(lookback=5))) == 5
    # An old level outside the window no longer counts: 10 runs at 2.0, then 5 at 1.0.
    values = noisy(10, level=2.0, seed=10) + noisy(5, level=1.0, seed=11)
    short = judge(1.0, values, Settings(lookback=5))
    assert (short.verdict, short.baseline_runs) == (NO_CHANGE, 5)
    assert judge(1.0, values, Settings(lookback=20)).change < -0.3


def test_series_of_different_hosts_and_devices_are_never_mixed() -> None:
    # The same case at 1 ms on h1/cpu, 1.5 ms on h2/cpu and 3 ms on h1/cuda, runs
    # interleaved in time: each alone is flat, mixed they would jump at every run.
    a = make_points(noisy(10, 1.0, seed=12), host="h1", hours=[2 * k for k in range(10)])
    b = make_points(noisy(10, 1.5, seed=13), host="h2", hours=[2 * k + 1 for k in range(10)])
    c = make_points(noisy(10, 3.0, seed=14), host="h1", device="cuda", hours=list(range(10)))
    c["run_id"] = [f"h1-gpu-{k}" for k in range(10)]
    judged = detect(pd.concat([b, c, a], ignore_index=True))
    assert set(judged.verdict) == {TOO_LITTLE, NO_CHANGE}
    for (host, device), rows in judged.groupby(["host", "device"]):
        assert list(rows.position) == list(range(10)), (host, device)
        assert rows.baseline_median_ms.dropna().between(0.9, 3.1).all()
    # The h2 step is h2's alone.
    b2 = make_points([*noisy(8, 1.5, seed=13), 1.8], host="h2")
    judged = detect(pd.concat([a, b2], ignore_index=True))
    flagged = judged[judged.verdict == REGRESSION]
    assert list(flagged.host) == ["h2"] and list(flagged.position) == [8]


def test_points_are_ordered_by_commit_time_then_run_time() -> None:
    df = make_points([1.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    # Run 5 was made before run 4 but is of a later commit; run 4 has no commit time
    # and stands at its run time.
    df.loc[4, "run_time"] = T0 + pd.Timedelta(hours=9)
    df.loc[4, "commit_time"] = pd.NaT
    shuffled = df.sample(frac=1, random_state=1)
    judged = detect(shuffled)
    assert list(judged.run_id) == ["h1-000", "h1-001", "h1-002", "h1-003", "h1-005", "h1-004"]
    assert list(judged.position) == list(range(6))
    assert judged.verdict.iloc[-1] == REGRESSION  # 2.0 after five runs at 1.0
    # An older commit timed later (a bisection) stands at its commit, not its run time.
    df = make_points([1.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    df.loc[4, "run_time"] = T0 + pd.Timedelta(hours=30)
    assert list(detect(df).run_id) == [f"h1-00{k}" for k in range(6)]
    assert detect(df).verdict.iloc[4] == REGRESSION
    # Two runs of one commit: ordered by run time.
    df = make_points([1.0, 1.0, 1.0, 1.0, 1.0])
    df.loc[3, "commit_time"] = df.loc[4, "commit_time"]
    df.loc[3, "run_time"] = df.loc[4, "run_time"] + pd.Timedelta(minutes=5)
    assert list(detect(df).run_id)[-2:] == ["h1-004", "h1-003"]


# -- the report -----------------------------------------------------------------------------
def history(host: str = "h1") -> pd.DataFrame:
    """Two models on one host: mlp with a regression in its latest run (a quick run on a
    busy machine), an earlier one-off, and an improvement at run 9; cnn flat."""
    reg = [*noisy(8, sd=0.01, seed=20), 1.5, *noisy(3, sd=0.01, seed=21), 1.3]
    modes = ["full"] * 12 + ["quick"]
    busy = [False] * 12 + [True]
    better = noisy(9, 2.0, sd=0.01, seed=22) + [v * 0.7 for v in noisy(4, 2.0, seed=23)]
    frames = [
        make_points(reg, host=host, modes=modes, busy=busy),
        make_points(better, host=host, runtime="onnxruntime", modes=modes, busy=busy),
        make_points(noisy(13, 5.0, seed=24), host=host, model="cnn", batch=32),
        make_points(noisy(13, 0.5, seed=25), host=host, model="cnn", framework="jax"),
    ]
    return pd.concat(frames, ignore_index=True)


def test_the_report_in_markdown_and_self_contained_html(tmp_path: Path) -> None:
    from bench.history.trends_render import write_history_report

    points = pd.concat([history("h1"), history("<b>h2</b>")], ignore_index=True)
    judged = detect(points)
    out = write_history_report(judged, tmp_path / "rep", Settings(), source="sqlite:///x.db")
    md, page = out.markdown.read_text(), out.html.read_text()

    verdicts_md = md.split("## The verdicts")[1].split("### Earlier change points")[0]
    regressions = [line for line in verdicts_md.splitlines() if line.startswith("| regression")]
    assert len(regressions) == 2  # the latest mlp run, on each host
    assert all("torch-mlp-eager-inference-cpu-b1-t2" in line for line in regressions)
    assert all("+30." in line or "+29." in line for line in regressions)
    assert all("quick run, busy machine" in line for line in regressions)
    assert "**2 regressions**" in md and "**0 improvements**" in md
    earlier = md.split("### Earlier change points")[1].split("## How change points")[0]
    assert earlier.count("| regression |") == 2 and earlier.count("| back |") == 2
    assert earlier.count("| improvement |") == 2 and earlier.count("| changed too |") == 2
    for text in ("lookback z-score", "`z >= 5`", "`change >= 5%`", "up to **20**", "Conbench"):
        assert text in md, text
    assert "## h1 · cpu" in md and "### mlp on h1 · cpu" in md and "### cnn on h1 · cpu" in md

    # Every chart is a PNG in plots/, linked from the Markdown, inside the HTML.
    pngs = sorted((out.folder / "plots").glob("*.png"))
    assert len(pngs) == 4  # (host, device, model, phase): 2 hosts x 2 models x inference
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert all(f"](plots/{p.name})" in md for p in pngs)
    srcs = re.findall(r"<img[^>]*\ssrc=['\"]([^'\"]*)", page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<link" not in page and "<script" not in page
    assert "&lt;b&gt;h2&lt;/b&gt;" in page and "<b>h2</b>" not in page
    assert "regression" in page and "quick run, busy machine" in page

    csv = pd.read_csv(out.folder / "history.csv")
    assert len(csv) == len(points)
    assert set(csv.verdict) == {TOO_LITTLE, NO_CHANGE, REGRESSION, IMPROVEMENT}

    with pytest.raises(FileExistsError, match="already holds a report"):
        write_history_report(judged, out.folder, Settings())


# -- the command ----------------------------------------------------------------------------
def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    trends.add_report_options(parser)
    return parser.parse_args(list(argv))


def run(points: pd.DataFrame, *argv: str) -> int:
    def loader(target: Any, **filters: Any) -> pd.DataFrame:
        return points  # the command applies the filters itself as well

    return trends.report(parse(*argv), loader=loader, target="test://history")


def test_fail_on_regression_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    points = history()
    assert run(points, "--output", str(tmp_path / "a")) == 0  # no --fail-on: 0
    out = capsys.readouterr().out
    assert "1 regression(s), 0 improvement(s)" in out and "(lookback 20 runs, " in out
    assert "|z| >= 5, change >= 5%)" in out
    assert out.count("xfbench: regression: ") == 1  # named, whatever the exit status
    assert run(points, "--output", str(tmp_path / "b"), "--fail-on", "regression") == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "regression:" in ln]
    assert len(lines) == 1
    assert lines[0].startswith("xfbench: regression: torch-mlp-eager-inference-cpu-b1-t2 on h1")
    assert "+30" in lines[0] or "+29" in lines[0]
    assert (tmp_path / "b" / "report.md").is_file()  # written in either case
    # The series whose regression is older than their latest run: 0.
    assert run(points, "--output", str(tmp_path / "c"), "--fail-on", "regression", "-m", "cnn") == 0
    assert (
        run(
            points, "--output", str(tmp_path / "d"), "--fail-on", "regression", "-f", "torch",
            "--min-change", "0.4", "--lookback", "8", "--threshold", "7.5",
        )
        == 0
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "(lookback 8 runs, |z| >= 7.5, change >= 40%)" in out
    md = (tmp_path / "d" / "report.md").read_text()
    assert "`z >= 7.5`" in md and "`change >= 40%`" in md and "up to **8**" in md
    assert Settings(min_change=0.025).min_change_text == "2.5%"


def test_bad_input_is_a_usage_error_naming_the_fix(tmp_path: Path) -> None:
    points = history()
    out = ["--output", str(tmp_path / "r")]
    empty = points.iloc[:0]
    with pytest.raises(UsageError, match=r"no finished run.*xfbench history ingest reports/<run>"):
        run(empty, *out)
    with pytest.raises(
        UsageError, match=r"matches --host h9.*hosts: h1; devices: cpu; models: cnn, mlp"
    ):
        run(points, *out, "--host", "h9")
    with pytest.raises(UsageError, match=r"matches -m resnet"):
        run(points, *out, "-m", "resnet")
    with pytest.raises(UsageError, match=r"matches --device cuda"):
        run(points, *out, "--device", "cuda")
    for option, value in (
        ("--lookback", "-1"),
        ("--lookback", "2"),
        ("--threshold", "0"),
        ("--threshold", "-3"),
        ("--threshold", "nan"),
        ("--min-change", "1"),
        ("--min-change", "-0.1"),
        ("--min-change", "inf"),
    ):
        with pytest.raises(UsageError, match=f"^{option} must be"):
            run(points, *out, option, value)
    assert not (tmp_path / "r").exists()  # nothing written for bad input
    assert run(points, *out) == 0
    with pytest.raises(UsageError, match=r"already holds a report.*choose a new --output"):
        run(points, *out)


def test_the_default_folder_is_new_under_out_history(tmp_path: Path) -> None:
    points = history()
    assert run(points, "--out", str(tmp_path)) == 0
    assert run(points, "--out", str(tmp_path)) == 0  # never the same folder twice
    made = sorted((tmp_path / "history").iterdir())
    assert len(made) == 2 and all((d / "report.html").is_file() for d in made)
    assert all(re.fullmatch(r"\d{8}-\d{6}-history(-\d+)?", d.name) for d in made)


# -- end to end, on a real history database -------------------------------------------------
def derived_runs(root: Path, last_cnn_factor: float) -> list[Path]:
    """Six run folders of host ``vm`` from tests/fixtures/runs/cpu-a: its summary (the
    report stage's statistics of its real rounds) with every p50 and interval scaled by a
    per-run factor within 0.5%, and the cnn cases of the last run by ``last_cnn_factor``;
    one commit per run, a day apart."""
    from bench.report import load_runs

    cases = load_runs([FIXTURES / "cpu-a"]).cases
    fingerprint = json.loads((FIXTURES / "cpu-a" / "fingerprint.json").read_text())
    factors = [1.0, 1.004, 0.997, 1.002, 0.999, 1.001]
    folders = []
    for k, factor in enumerate(factors):
        name = f"2026110{k + 1}-120000-vm-cpu"
        folder = root / name
        folder.mkdir(parents=True)
        scaled = cases.copy()
        scaled["run"] = name
        scale = pd.Series(factor, index=scaled.index)
        if k == len(factors) - 1:
            scale[scaled.model == "cnn"] = factor * last_cnn_factor
        for col in ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"):
            scaled[col] = scaled[col] * scale
        scaled.to_csv(folder / "summary.csv", index=False)
        fp = json.loads(json.dumps(fingerprint))
        fp["machine"]["time"] = f"2026-11-0{k + 1}T12:00:00+0000"
        fp["machine"]["git"] = {
            "commit": f"{k + 1:x}" * 40,
            "commit_time": f"2026-11-0{k + 1}T11:00:00+00:00",
            "dirty": False,
        }
        fp["mode"] = "full"
        (folder / "fingerprint.json").write_text(json.dumps(fp))
        folders.append(folder)
    return folders


def xfbench(*argv: str) -> int:
    """``xfbench history ...`` as ``bench.cli.main`` runs it: the history parsers of
    bench/history/cli.py, a UsageError printed and exit status 2."""
    import sys

    from bench.history.cli import add_parsers

    parser = argparse.ArgumentParser(prog="xfbench")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"xfbench: error: {exc}", file=sys.stderr)
        return 2


def test_fail_on_regression_on_a_real_history(tmp_path: Path, capsys: pytest.CaptureFixture):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    pytest.importorskip("bench.history.db")
    db = f"sqlite:///{tmp_path / 'history.db'}"
    derived_runs(tmp_path / "runs", last_cnn_factor=1.3)
    assert xfbench("history", "ingest", str(tmp_path / "runs"), "--db", db) == 0
    capsys.readouterr()

    rep = tmp_path / "reports"
    torch = ("-f", "torch")  # fewer charts to draw: the test's time is theirs
    code = xfbench(
        "history", "report", "--db", db, "--output", str(rep / "a"), *torch, "-m", "cnn,mlp",
        "--fail-on", "regression",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    lines = [ln for ln in out.splitlines() if ln.startswith("xfbench: regression: ")]
    assert lines and all(ln.startswith("xfbench: regression: torch-cnn-") for ln in lines)
    assert all(" on vm/cpu: " in ln and re.search(r"\+(29|30|31)\.\d%", ln) for ln in lines)
    assert f"{len(lines)} regression(s), 0 improvement(s)" in out
    md = (rep / "a" / "report.md").read_text()
    assert md.count("| regression | torch-cnn-") == len(lines)
    assert "### mlp on vm · cpu" in md and (rep / "a" / "report.html").is_file()

    # The mlp cases did not move: 0. `xfbench history` alone is the report, and without
    # --fail-on it exits 0 whatever the verdicts.
    assert xfbench(
        "history", "report", "--db", db, "--output", str(rep / "b"), *torch, "-m", "mlp",
        "--fail-on", "regression",
    ) == 0  # fmt: skip
    assert xfbench("history", "--db", db, "--output", str(rep / "c"), *torch, "-m", "cnn") == 0
    assert "regression(s)" in capsys.readouterr().out

    # Bad input: exit 2, one line naming the fix.
    assert (
        xfbench("history", "report", "--db", db, "--output", str(rep / "e"), "--host", "nope") == 2
    )
    err = capsys.readouterr().err
    assert "hosts: vm; devices: cpu; models: cnn, gemm, mlp; frameworks: mxnet, torch" in err
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert xfbench("history", "report", "--db", missing, "--output", str(rep / "f")) == 2
    assert "xfbench history ingest" in capsys.readouterr().err
    assert xfbench("history", "report", "--db", db, "--output", str(rep / "a")) == 2
    assert "choose a new --output" in capsys.readouterr().err
    assert not (rep / "e").exists() and not (rep / "f").exists()


def test_report_options_count_before_and_after_the_report_action():
    """`xfbench history --lookback 5 report` keeps the 5 (the `report` action's own
    defaults must not overwrite what was given to `history`)."""
    from bench.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["history", "--lookback", "5", "report"]).lookback == 5
    assert parser.parse_args(["history", "report", "--lookback", "7"]).lookback == 7
    assert parser.parse_args(["history", "report"]).lookback == 20


def test_a_gate_that_judged_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Three runs judge nothing: `--fail-on regression` passes, but not silently."""
    points = history()
    first_three = points[points.run_id.isin(sorted(points.run_id.unique())[:3])]
    assert run(first_three, "--output", str(tmp_path / "a"), "--fail-on", "regression") == 0
    assert "warning: no series could be judged yet" in capsys.readouterr().out
    assert run(points, "--output", str(tmp_path / "b")) == 0
    assert "no series could be judged" not in capsys.readouterr().out


def test_runs_of_one_commit_are_told_apart_on_the_charts():
    """Re-runs of one commit (a re-run, a planted change) would share a label."""
    from bench.history.trends_plots import history_figure

    points = make_points(noisy(5, seed=30))
    points["commit"] = "a" * 40  # one commit ...
    points["commit_time"] = T0
    points["run_time"] = [T0 + pd.Timedelta(seconds=15 * k) for k in range(5)]  # ... 5 runs
    judged = trends.detect(points, Settings())
    fig = history_figure(judged, "t", "c")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 5 and len(set(labels)) == 5, labels
    assert labels[1].endswith("00:00:15"), labels
