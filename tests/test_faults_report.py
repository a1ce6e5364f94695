"""Faults and bad input at the report stage (issue 9): the report renders what a run
holds and says what is missing, is written all or nothing, never replaces another,
refuses a comparison with nothing in it, and shows the data as text.

Run folders are made cheaply from the real fixture runs (tests/fixtures/runs) with the
helpers of tests/test_report.py; the CLI is driven through ``bench.cli.main``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from test_report import RUN_A, derive_v2_run, edit_end, raw_ends_of  # noqa: E402

import bench.report.render  # noqa: E402
from bench.cli import main, make_report  # noqa: E402
from bench.report import (  # noqa: E402
    NothingToCompareError,
    _move_into_place,
    report_outputs,
    write_report,
)
from bench.report.plots import literal  # noqa: E402
from bench.report.render import md_escape  # noqa: E402

#: Left-out files warn (pytest turns warnings into errors); tests about them check the
#: report instead.
quiet_skips = pytest.mark.filterwarnings("ignore:skipping:UserWarning")


def small_run(dst: Path, **kwargs) -> Path:
    """A schema-2 run of three processes from RUN_A, only torch at one thread: quick to
    report."""
    run = derive_v2_run(dst, **kwargs)
    for path in (run / "raw").glob("*.jsonl"):
        if not path.name.startswith("torch-t1-"):
            path.unlink()
    return run


def interrupted_run(dst: Path) -> Path:
    """A run stopped before any case ended: manifests written, workers started."""
    run = small_run(dst)
    for path in (run / "raw").glob("*.jsonl"):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        kept = [r for r in recs if r.get("event") == "worker"]
        kept.append({"event": "start", "case_id": raw_ends_of(path)[0]["case_id"], "t": 1.0})
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return run


def section(md: str, title: str) -> str:
    """The text of the Markdown section ``title`` (to the next heading)."""
    start = md.index(f" {title}\n")
    nxt = re.search(r"^#", md[start + len(title) + 2 :], re.M)
    return md[start : start + len(title) + 2 + (nxt.start() if nxt else len(md))]


def unescaped_pipes(line: str) -> int:
    n, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        n += line[i] == "|"
        i += 1
    return n


def assert_tables_intact(md: str) -> None:
    """Every row of every Markdown table has its header's cells, and no cell's text
    spilled onto a line of its own."""
    width, previous = None, ""
    for line in md.split("\n"):
        if line.startswith("|"):
            cells = unescaped_pipes(line)
            if width is None:
                width = cells
            assert cells == width, line
        else:
            assert not (previous.startswith("|") and line.strip()), f"row broken: {line!r}"
            width = None
        previous = line


# -- 1. empty, partial and damaged runs get a report that says what is missing ---------------
def test_a_run_with_no_finished_case_reports_what_is_missing(tmp_path, capsys):
    run = interrupted_run(tmp_path / "interrupted")
    (run / "incomplete.json").write_text(
        json.dumps({"reason": "interrupted by the user (SIGINT)", "t": 1795579074.0})
    )
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no results found in" in err and "report.md says what is missing" in err
    md = (run / "report.md").read_text()
    top = section(md, "What this report is missing")
    assert md.index("What this report is missing") < md.index("Environment")
    assert "**This run is incomplete:** `interrupted by the user (SIGINT)`" in top
    assert "**No finished case** in `interrupted`: its workers started but no case" in top
    assert "`tox -e bench-cpu`" in top
    assert "How to read this report" not in md  # nothing measured: no empty tables of it
    assert "Accuracy and time to accuracy" in md  # what it has: the models
    assert "<strong>This run is incomplete:</strong>" in (run / "report.html").read_text()
    assert pd.read_csv(run / "summary.csv").empty
    assert len(pd.read_csv(run / "models.csv")) == 4


@quiet_skips
def test_an_empty_run_folder_reports_nothing_measured(tmp_path, capsys):
    run = tmp_path / "empty"
    (run / "raw").mkdir(parents=True)
    out = tmp_path / "r"
    assert main(["report", str(run), "--output", str(out)]) == 2
    assert "run `tox -e bench-cpu` first" in capsys.readouterr().err
    md = (out / "report.md").read_text()
    assert "its `raw/` folder holds no results file" in md
    assert "**No built model** in `empty`" in md and "`tox -e zoo`" in md
    assert "fingerprint.json: missing" in section(md, "Files left out")
    assert (out / "report.html").exists()


def test_cases_without_a_built_model_render(tmp_path, capsys):
    """A missing framework environment or an unwritable artifacts folder: no manifest."""
    run = small_run(tmp_path / "no-models")
    (run / "models.json").write_text("[]\n")
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert "**No built model** in `no-models`: its `models.json` lists none" in md
    assert "Inference latency at a glance" in md  # the cases are all there
    # Some models built, not those of a framework that was timed:
    other = small_run(tmp_path / "some-models")
    models = json.loads((other / "models.json").read_text())
    (other / "models.json").write_text(json.dumps([m for m in models if m["framework"] != "torch"]))
    assert main(["report", str(other)]) == 0
    assert "**No built model** of `torch` in `some-models`" in (other / "report.md").read_text()
    assert "`tox -e zoo -- -f torch`" in (other / "report.md").read_text()


def test_a_run_whose_cases_all_failed(tmp_path, capsys):
    run = small_run(tmp_path / "failed")
    for path in (run / "raw").glob("*.jsonl"):
        for rec in raw_ends_of(path):
            edit_end(path, rec["case_id"], status="error", reason="ImportError: no torch")
    assert main(["report", str(run)]) == 2
    md = (run / "report.md").read_text()
    assert re.search(r"\*\*No finished case\*\* in `failed`: all \d+ of its cases failed", md)
    assert "ImportError: no torch" in section(md, "Errors and unsupported cases")


def test_a_framework_with_no_finished_case_is_named(tmp_path):
    run = derive_v2_run(tmp_path / "partial")
    for path in (run / "raw").glob("*.jsonl"):  # its ONNX Runtime cases too
        for rec in raw_ends_of(path):
            if rec["framework"] == "mxnet":
                edit_end(path, rec["case_id"], status="timeout", reason="exceeded", stats=None)
    md = write_report([run], tmp_path / "r").markdown.read_text()
    assert "**No finished case** of `mxnet` in `partial`" in md


def test_a_chosen_framework_that_left_no_case_is_named(tmp_path):
    """The run chose torch and mxnet (fingerprint.json); only torch's files are there."""
    run = small_run(tmp_path / "half")
    md = write_report([run], tmp_path / "r").markdown.read_text()
    assert "**No case** of `mxnet` was recorded in `half`: their workers wrote no result" in md
    assert "`torch`" not in section(md, "What this report is missing")


@quiet_skips
def test_a_damaged_run_is_read_as_far_as_it_goes(tmp_path):
    run = small_run(tmp_path / "damaged")
    raw = sorted((run / "raw").glob("*.jsonl"))
    raw[0].write_bytes(b"\xff\xfe not text")
    edit_end(raw[1], raw_ends_of(raw[1])[0]["case_id"], stats={"data": ["x"]}, threads=[1])
    (run / "fingerprint.json").write_text('{"machine": "not a mapping", "options": [1]}')
    (run / "models.json").write_text('{"framework": "torch"}')
    report = write_report([run], tmp_path / "r")
    assert report.measured
    left_out = section(report.markdown.read_text(), "Files left out")
    assert f"{raw[0].name}: unreadable" in left_out
    assert f"{raw[1].name}: 1 damaged record(s) left out" in left_out
    assert "models.json: not a list of model manifests" in left_out
    # Every results file damaged: nothing could be read, and the report says so.
    for path in raw:
        path.write_text("{ torn\n")
    report = write_report([run], tmp_path / "r2")
    assert not report.measured
    assert "no record in its `raw/` folder could be read" in report.markdown.read_text()


# -- 2. written all or nothing, never over another report --------------------------------------
def test_a_report_that_fails_halfway_leaves_nothing(tmp_path, monkeypatch, capsys):
    run = small_run(tmp_path / "runs" / "run")

    def broken(doc):
        raise RuntimeError("the template broke")

    monkeypatch.setattr(bench.report.render, "to_html", broken)
    for out in (run, tmp_path / "new"):  # an existing folder, and a new one
        with pytest.raises(RuntimeError, match="the template broke"):
            write_report([run], out)
        assert report_outputs(out) == [] and not (out / "plots").exists()
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]  # no scratch
    monkeypatch.undo()
    assert main(["report", str(run)]) == 0  # not "summary.csv exists"
    assert {p.name for p in report_outputs(run)} >= {"report.md", "summary.csv", "models.csv"}


def test_a_half_written_report_of_an_older_version_is_not_in_the_way(tmp_path):
    run = small_run(tmp_path / "run")
    (run / "summary.csv").write_text("left over\n")
    assert main(["report", str(run), "--out", str(tmp_path / "reports")]) == 0
    assert (run / "summary.csv").read_text() == "left over\n"
    assert len(list((tmp_path / "reports").glob("*-report/report.md"))) == 1


def test_output_holding_any_report_file_is_refused(tmp_path, capsys):
    run = small_run(tmp_path / "run")
    for held in ("comparison.csv", "summary.csv", "plots/latency_vs_batch.png"):
        out = tmp_path / held.replace("/", "-")
        (out / held).parent.mkdir(parents=True)
        (out / held).write_text("mine\n")
        assert main(["report", str(run), "--compare", str(RUN_A), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out} already holds a report ({Path(held).name})" in err
        assert "a report never replaces another" in err
        assert (out / held).read_text() == "mine\n"
        assert report_outputs(out) == [out / held]
    with pytest.raises(FileExistsError, match="already holds a report"):
        write_report([run], out)


def test_moving_into_a_folder_takes_back_what_it_moved_on_a_clash(tmp_path):
    """A file that appears while the report is moved in: the move fails, undone."""
    tmp, out = tmp_path / "scratch", tmp_path / "out"
    (tmp / "plots").mkdir(parents=True)
    for name in ("summary.csv", "report.md", "plots/a.png"):
        (tmp / name).write_text(name)
    out.mkdir()
    (out / "report.md").write_text("someone else's")
    with pytest.raises(FileExistsError, match="never replaces another"):
        _move_into_place(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "someone else's"


def test_a_new_folder_is_made_whole_in_one_step(tmp_path):
    run = small_run(tmp_path / "run")
    report = write_report([run], tmp_path / "reports" / "new")
    assert report.folder.is_dir() and report.markdown.exists()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["new"]


# -- 3. a comparison with nothing in it is an error naming the folder --------------------------
@quiet_skips
def test_compare_with_an_unreadable_run_is_an_error(tmp_path, capsys):
    run = small_run(tmp_path / "run")
    damaged = tmp_path / "damaged"
    shutil.copytree(RUN_A, damaged)
    for path in (damaged / "raw").glob("*.jsonl"):
        path.write_text("\x00garbage\n")
    out = tmp_path / "r"
    argv = ["report", str(run), "--compare", str(damaged), "--fail-on", "regression"]
    assert main([*argv, "--output", str(out)]) == 2
    cap = capsys.readouterr()
    assert f"xfbench: error: nothing to compare: {damaged} has no measured case" in cap.err
    assert "file(s) left out" in cap.err and "regression(s)" not in cap.out
    md = (out / "report.md").read_text()  # the report itself is written, and says so
    assert "**No comparison:** `nothing to compare:" in md
    assert not (out / "comparison.csv").exists()
    with pytest.raises(NothingToCompareError, match=f"{damaged}"):
        write_report([run], tmp_path / "r2", compare_with=damaged)
    assert not (tmp_path / "r2").exists()


def test_nothing_to_compare_fails_report_and_bench_alike(tmp_path, capsys):
    run = small_run(tmp_path / "run")
    gpu = small_run(tmp_path / "gpu-run")
    for path in (gpu / "raw").glob("*.jsonl"):
        path.write_text(path.read_text().replace('"device": "cpu"', '"device": "cuda"'))
    argv = ["report", str(run), "--compare", str(gpu), "--fail-on", "regression"]
    assert main([*argv, "--output", str(tmp_path / "r")]) == 2
    cap = capsys.readouterr()
    assert "xfbench: error: nothing to compare: run and gpu-run share no case" in cap.err
    assert "regression(s)" not in cap.out
    # The end of `xfbench bench --compare`: the run's own report is written all the same.
    args = argparse.Namespace(compare=gpu, fail_on="regression", min_effect=0.05)
    assert make_report([run], run, "xfbench run", args) == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert "Inference latency at a glance" in (run / "report.md").read_text()


# -- 4. the data is text: Markdown, HTML and plots ---------------------------------------------
HOSTILE = "evil|host\nline2\r\n<script>alert(1)</script> `tick` $\\foo{$ **b** _u_ ~~s~~ &lt; #"


def test_md_escape_keeps_text_on_one_line_and_literal():
    text = md_escape(HOSTILE)
    assert "\n" not in text and "\r" not in text and unescaped_pipes(text) == 0
    assert text.startswith("evil\\|host line2 \\<script\\>alert(1)\\</script\\> \\`tick\\`")
    assert "\\$\\\\foo{\\$ \\*\\*b\\*\\* \\_u\\_ \\~\\~s\\~\\~ \\&lt; \\#" in text
    # In a chart: one line, no control character (no font draws one), `$` as is.
    assert literal(HOSTILE).startswith("evil|host line2 <script>alert(1)</script> `tick` $\\foo{$")
    assert literal("a\x00\x1b[31mb\u2028c") == "a [31mb c"


def test_data_is_text_in_markdown_html_and_plots(tmp_path):
    run = derive_v2_run(tmp_path / "hostile`run$", src=RUN_A, host=HOSTILE)
    (run / "incomplete.json").write_text(json.dumps({"reason": HOSTILE, "t": "soon"}))
    victim, renamed = "torch-mlp-eager-inference-cpu-b8-t2", "torch-mlp-eager-inference-cpu-b1-t2"
    for k in (1, 2, 3):
        edit_end(run / "raw" / f"torch-t2-p{k}.jsonl", victim, status="error", reason=HOSTILE)
        edit_end(run / "raw" / f"torch-t2-p{k}.jsonl", renamed, model="$\\x{$", runtime="a|$b")
    report = write_report([run], tmp_path / "r", title=HOSTILE)
    md = report.markdown.read_text()
    assert_tables_intact(md)
    assert "\r" not in md
    assert "<script>" not in re.sub(r"`[^`\n]*`", "", md)  # a `code` span shows it as is
    assert "| evil\\|host line2 \\<script\\>alert(1)\\</script\\> \\`tick\\` \\$" in md
    assert "### \\$\\\\x{\\$: inference, every mode and runtime" in md
    errors = section(md, "Errors and unsupported cases")
    assert f"{victim} | error | evil\\|host line2" in errors
    assert "**This run is incomplete:** `evil|host line2 <script>alert(1)</script> 'tick'" in md
    page = report.html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "hostile&#39;run$" in page or "hostile'run$" in page
    plots = {p.stem.split("-")[0] for p in (tmp_path / "r" / "plots").glob("*.png")}
    assert {"latency_vs_batch", "native_vs_onnxruntime"} <= plots  # no mathtext error
