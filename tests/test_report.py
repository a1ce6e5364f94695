"""The report stage on real results (tests/fixtures/runs, recorded by `tox -e bench-cpu`):
numbers checked against the raw rounds, comparison, several hosts, bad input, and the
HTML rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from bench.cli import main  # noqa: E402
from bench.report import (  # noqa: E402
    NoResultsError,
    compare,
    efficiency,
    load_runs,
    machine_peaks,
    write_report,
)

RUNS = Path(__file__).parent / "fixtures" / "runs"
RUN_A, RUN_B = RUNS / "cpu-a", RUNS / "cpu-b"


def raw_ends(run: Path) -> dict[str, dict]:
    ends = {}
    for path in sorted((run / "raw").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("event") == "end":
                ends[rec["case_id"]] = rec
    return ends


@pytest.fixture
def report_dir(tmp_path) -> Path:
    return tmp_path / "report"


def test_percentiles_come_from_the_raw_rounds():
    cases = load_runs([RUN_A]).cases
    ends = raw_ends(RUN_A)
    assert len(cases) == len(ends) == 76
    for row in cases.itertuples():
        data = np.array(ends[row.case_id]["stats"]["data"]) * 1e3
        assert row.rounds == len(data)
        p25, p50, p75, p90, p99 = np.percentile(data, [25, 50, 75, 90, 99])
        assert row.p50_ms == pytest.approx(p50)
        assert row.p90_ms == pytest.approx(p90) and row.p99_ms == pytest.approx(p99)
        assert row.iqr_ms == pytest.approx(p75 - p25)
        assert row.throughput_sps == pytest.approx(row.batch_size / (p50 / 1e3))
        assert row.unstable == (len(data) > 1 and p75 - p25 > 0.25 * p50)


def test_written_tables_match_the_data(report_dir):
    report = write_report([RUN_A], report_dir)
    summary = pd.read_csv(report_dir / "summary.csv")
    cases = load_runs([RUN_A]).cases
    np.testing.assert_allclose(summary.p50_ms, cases.p50_ms)
    assert list(summary.columns[:12]) == [
        "run", "host", "device", "device_name", "framework", "model", "runtime", "exporter",
        "phase", "batch_size", "threads", "rounds",
    ]  # fmt: skip
    models = pd.read_csv(report_dir / "models.csv")
    assert set(models.framework) == {"torch", "mxnet"}
    assert (models.flops_per_sample > 0).all()
    md = report.markdown.read_text()
    # The fastest p50 of each row of the at-a-glance table is in bold.
    row = cases[
        (cases.phase == "inference")
        & (cases.model == "cnn")
        & (cases.batch_size == 8)
        & (cases.threads == 2)
    ]
    best = row.p50_ms.min()
    assert f"**{best:.3f}**" in md
    for title in (
        "Inference latency at a glance",
        "ONNX Runtime speedup",
        "Training step",
        "Accuracy and time to accuracy",
        "Export diagnostics",
        "Efficiency against the machine's peak",
        "Thread scaling",
        "Cold start and peak memory",
        "Environment",
        "Errors and unsupported",
    ):
        assert title in md, title


def test_efficiency_uses_the_measured_gemm_peak():
    data = load_runs([RUN_A])
    peaks = machine_peaks(data.cases)
    gemm = data.cases[data.cases.phase == "peak"]
    for p in peaks.itertuples():
        same = gemm[gemm.threads == p.threads]
        best = (2 * same.batch_size.astype(float) ** 3 / (same.p50_ms / 1e3) / 1e9).max()
        assert p.peak_gflops == pytest.approx(best)
    eff = efficiency(data.cases, data.models)
    flops = data.models.set_index(["framework", "model"]).flops_per_sample
    for r in eff.itertuples():
        expected = flops[(r.framework, r.model)] * r.batch_size / (r.p50_ms / 1e3) / 1e9
        assert r.gflops == pytest.approx(expected)
        peak = peaks[peaks.threads == r.threads].peak_gflops.iloc[0]
        assert r.pct_of_peak == pytest.approx(100 * expected / peak)


def test_comparison_flags_only_changes_beyond_both_runs_noise():
    new, old = load_runs([RUN_B]).cases, load_runs([RUN_A]).cases
    table = compare(new, old)
    assert len(table) == 76
    keyed_new = new.set_index("case_id")
    keyed_old = old.set_index("case_id")
    for r in table.itertuples():
        cid = (
            f"{r.framework}-{r.model}-{r.runtime}-{r.phase}-{r.device}-b{r.batch_size}-t{r.threads}"
        )
        n, o = keyed_new.loc[cid], keyed_old.loc[cid]
        if r.verdict == "slower":
            assert n.p50_ms > o.p75_ms and o.p50_ms < n.p25_ms
        elif r.verdict == "faster":
            assert n.p50_ms < o.p25_ms and o.p50_ms > n.p75_ms
        elif r.verdict == "same (within noise)":
            assert not (n.p50_ms > o.p75_ms and o.p50_ms < n.p25_ms)
            assert not (n.p50_ms < o.p25_ms and o.p50_ms > n.p75_ms)
    # A run against itself changes nothing.
    assert set(compare(old, old).verdict) <= {"same (within noise)", "n/a (one round)"}


def _slowed_copy(tmp_path: Path, factor: float) -> tuple[Path, str]:
    """RUN_A with every round of one case multiplied by ``factor``."""
    run = tmp_path / "slowed"
    shutil.copytree(RUN_A, run)
    path = run / "raw" / "torch-t2.jsonl"
    lines, victim = [], "torch-mlp-native-inference-cpu-b8-t2"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "end" and rec["case_id"] == victim:
            rec["stats"]["data"] = [t * factor for t in rec["stats"]["data"]]
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return run, victim


def test_fail_on_regression_exit_status(tmp_path, capsys):
    slowed, victim = _slowed_copy(tmp_path, 3.0)
    out = tmp_path / "cmp"
    code = main(
        [
            "report",
            str(slowed),
            "--compare",
            str(RUN_A),
            "--fail-on",
            "regression",
            "--output",
            str(out),
        ]
    )
    assert code == 1
    assert "1 regression(s)" in capsys.readouterr().out
    table = pd.read_csv(out / "comparison.csv")
    flagged = table[table.verdict == "slower"]
    assert len(flagged) == 1
    f = flagged.iloc[0]
    flagged_id = (
        f"{f.framework}-{f.model}-{f.runtime}-{f.phase}-{f.device}-b{f.batch_size}-t{f.threads}"
    )
    assert flagged_id == victim
    assert (
        main(
            [
                "report",
                str(RUN_A),
                "--compare",
                str(RUN_A),
                "--fail-on",
                "regression",
                "--output",
                str(tmp_path / "same"),
            ]
        )
        == 0
    )


def test_several_hosts_merge_grouped_by_host(tmp_path, report_dir):
    other = tmp_path / "gpu-box-run"
    shutil.copytree(RUN_B, other)
    fp = json.loads((other / "fingerprint.json").read_text())
    fp["machine"]["host"] = "gpu-box"
    (other / "fingerprint.json").write_text(json.dumps(fp))
    data = load_runs([RUN_A, other])
    assert set(data.cases.host) == {"vm", "gpu-box"}
    report = write_report([RUN_A, other], report_dir)
    md = report.markdown.read_text()
    assert "| gpu-box | cpu |" in md and "| vm | cpu |" in md
    plots = sorted(p.name for p in (report_dir / "plots").glob("*.png"))
    assert "latency_vs_batch-gpu-box-cpu.png" in plots and "latency_vs_batch-vm-cpu.png" in plots


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path, report_dir):
    run = tmp_path / "damaged"
    shutil.copytree(RUN_A, run)
    torn = run / "raw" / "torch-t1.jsonl"
    torn.write_text(torn.read_text()[:-500])  # a truncated last record
    (run / "raw" / "foreign.jsonl").write_text('{"hello": "world"}\n')
    (run / "models.json").write_text("{ not json")
    with pytest.warns(UserWarning) as caught:
        report = write_report([run], report_dir)
    messages = " ".join(str(w.message) for w in caught)
    assert "torch-t1.jsonl: 1 unreadable line(s) left out" in messages
    assert "foreign.jsonl: not an xfbench results log" in messages
    assert "models.json: not valid JSON" in messages
    cases = pd.read_csv(report_dir / "summary.csv")
    assert len(cases) == 75  # the torn case only
    assert "Files left out" in report.markdown.read_text()


def test_no_results_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "raw").mkdir(parents=True)
    with pytest.raises(NoResultsError, match="no results found"), pytest.warns(UserWarning) as w:
        load_runs([empty])
    assert {str(m.message).rsplit("/", 1)[-1] for m in w} == {
        "fingerprint.json: missing",
        "models.json: missing",
    }
    with pytest.warns(UserWarning, match="missing"):
        assert main(["report", str(empty), "--output", str(tmp_path / "r")]) == 2
    assert "run `tox -e bench-cpu` first" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_a_report_never_replaces_another(tmp_path, report_dir, capsys):
    write_report([RUN_A], report_dir)
    before = (report_dir / "report.md").read_text()
    with pytest.raises(FileExistsError):
        write_report([RUN_A], report_dir)
    assert (report_dir / "report.md").read_text() == before
    # Without --output the CLI picks a new folder.
    run = tmp_path / "run"
    shutil.copytree(RUN_A, run)
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    assert len(list((tmp_path / "reports").glob("*-report/report.md"))) == 1
    assert (run / "report.md").exists()


def test_html_is_self_contained(report_dir):
    report = write_report([RUN_A], report_dir)
    page = report.html.read_text()
    assert "http://" not in page and "https://" not in page
    images = len(list((report_dir / "plots").glob("*.png")))
    assert images >= 3 and page.count("<img ") == images
    assert page.count("src='data:image/png;base64,") == images


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_renders_its_plots_in_headless_chromium(report_dir, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("XFBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here (XFBENCH_REQUIRE_BROWSER=1)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from matplotlib.image import imread

    report = write_report([RUN_A], report_dir)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tempfile.mkdtemp()}",
            "--hide-scrollbars",
            "--window-size=1200,1800",
            f"--screenshot={shot}",
            report.html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1800, 1200)
    # Tables are black on white; the plots are what brings saturated colour to the page.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).mean() > 0.002, "no plot rendered in the first screen"
