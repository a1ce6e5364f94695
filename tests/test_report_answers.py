"""A report that answers first (issue 10): ONNX Runtime summed up in one figure per
framework with its slowdowns called out, every time in ms, every runtime explained.

On the real fixture runs (tests/fixtures/runs) and schema-2 runs derived from them
(:func:`test_report.derive_v2_run`); real pandas, no mocks. The HTML layout in headless
Chromium is checked in tests/test_report.py, beside the other browser test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from test_report import _cold_record, derive_v2_run, v2_case_id  # noqa: E402

from bench.report import load_runs, write_report  # noqa: E402
from bench.report.analysis import (  # noqa: E402
    NO_DESCRIPTION,
    ORT,
    ORT_MODE_NOTE,
    Table,
    cold_start_table,
    memory,
    modes_table,
    onnx_slower,
    onnx_speedup,
    onnx_summary,
)
from bench.report.document import build_document  # noqa: E402

#: The case the slowdown tests slow down: torch's mlp export at batch 1, 2 threads.
SLOWED = v2_case_id("torch", "mlp", ORT, "inference", "cpu", 1, 2)


def slow_ort(factor: float):
    """A transform that makes one ONNX Runtime case ``factor`` times slower."""

    def transform(case_id: str, _process: int, seconds: list[float]) -> list[float]:
        return [s * factor for s in seconds] if case_id == SLOWED else seconds

    return transform


@pytest.fixture
def v2_run(tmp_path) -> Path:
    return derive_v2_run(tmp_path / "v2-a")


# -- 1. ONNX Runtime: one figure per framework, slowdowns called out --------------------
def test_onnx_summary_is_the_geometric_mean_of_the_cases(v2_run):
    data = load_runs([v2_run])
    sp = onnx_speedup(data)
    summary = onnx_summary(data, sp)
    keys = ["host", "device", "threads", "framework"]
    assert len(summary) == len(sp.groupby(keys)) == 4  # torch and mxnet, 1 and 2 threads
    for r in summary.itertuples():
        grp = sp[(sp.framework == r.framework) & (sp.threads == r.threads)]
        assert r.cases == len(grp) == r.models * r.batch_sizes == 4
        ratios = grp.speedup_vs_best.to_numpy()
        assert r.geomean_speedup == pytest.approx(np.exp(np.log(ratios).mean()))
        assert (r.min_speedup, r.max_speedup) == (ratios.min(), ratios.max())
        # The interval is a bootstrap of the geometric mean: draw j of it is the geometric
        # mean of every case's draw j of native p50 / ONNX Runtime p50 (independent draws,
        # one seed per case and side), recomputed here from the cases' own estimates.
        logs = []
        for c in grp.itertuples():
            native = v2_case_id(
                c.framework, c.model, c.best_mode, "inference", "cpu", c.batch_size, c.threads
            )
            ort = v2_case_id(c.framework, c.model, ORT, "inference", "cpu", c.batch_size, c.threads)
            n = data.estimates[(c.run, native)].draws
            o = data.estimates[(c.run, ort)].draws
            logs.append(np.log(n / o))
        geo_draws = np.exp(np.mean(logs, axis=0))
        lo, hi = np.percentile(geo_draws, [2.5, 97.5])
        assert (r.geomean_ci_low, r.geomean_ci_high) == (pytest.approx(lo), pytest.approx(hi))
        assert r.geomean_ci_low <= r.geomean_speedup <= r.geomean_ci_high
        # ... and it is not the per-case intervals put together: it is narrower than the
        # geometric mean of their bounds, since independent noise partly cancels.
        low_bounds = np.exp(np.log(grp.speedup_vs_best_ci_low.to_numpy()).mean())
        high_bounds = np.exp(np.log(grp.speedup_vs_best_ci_high.to_numpy()).mean())
        assert r.geomean_ci_high - r.geomean_ci_low < high_bounds - low_bounds
        assert r.faster + r.tie + r.slower == r.cases


def test_onnx_section_answers_first_and_lists_every_slowdown(tmp_path):
    """A case made 20x slower under ONNX Runtime (real rounds, scaled) is listed among
    the slowdowns with its factor, the summary counts it, and the summary and the list
    come before the long per-case table."""
    run = derive_v2_run(tmp_path / "slow", transform=slow_ort(20.0))
    report = write_report([run], tmp_path / "report")
    data = load_runs([run])
    sp = onnx_speedup(data)
    slow = onnx_slower(data, sp)
    assert len(slow) >= 1 and (slow.speedup_vs_best_ci_high < 1).all()
    assert set(slow.index) == set(range(len(slow)))
    # Every case whose interval lies below 1 is listed, and no other.
    expected = sp[sp.speedup_vs_best_ci_high < 1]
    assert len(slow) == len(expected)
    assert slow.speedup_vs_best.is_monotonic_increasing  # the worst first
    hit = slow[(slow.framework == "torch") & (slow.model == "mlp") & (slow.batch_size == 1)]
    assert len(hit) == 1 and hit.threads.iloc[0] == 2
    factor = 1 / hit.speedup_vs_best.iloc[0]
    torch2 = onnx_summary(data, sp).query("framework == 'torch' and threads == 2").iloc[0]
    assert torch2.slower >= 1 and torch2.min_speedup == pytest.approx(1 / factor)

    md = report.markdown.read_text()
    summary_at = md.index("## ONNX Runtime against each framework")
    slower_at = md.index("### Slower under ONNX Runtime than the framework's best mode")
    every_at = md.index("### Every case: speedup against the best and the default mode")
    assert summary_at < slower_at < every_at
    summary_part = md[summary_at:slower_at]
    assert "geometric mean speedup vs best \\[95% CI\\]" in summary_part
    assert "range of speedups (min–max)" in summary_part
    assert summary_part.count("| torch |") == 2 and summary_part.count("| mxnet |") == 2
    slower_part = md[slower_at:every_at]
    assert f"**{factor:.2f}x \\[" in slower_part
    assert slower_part.count("\n| vm |") == len(slow)


def test_no_slowdown_is_said(v2_run, tmp_path):
    report = write_report([v2_run], tmp_path / "report")
    data = load_runs([v2_run])
    assert onnx_slower(data).empty  # ONNX Runtime is faster everywhere in the fixtures
    md = report.markdown.read_text()
    part = md[md.index("### Slower under ONNX Runtime") : md.index("### Every case")]
    assert "None: in no case is ONNX Runtime slower" in part and "_none_" in part


# -- 2. Units: every time in ms, no GEMM among the cold starts ---------------------------
#: Headers that hold a time; each must name its unit.
_TIME = re.compile(r"\bp\d\d|\btime|call\b|import|load|total|interpreter|second|_s$|_ms$")
_UNIT = re.compile(r"\bms\b|_ms$|_s$|seconds")


def _tables(doc) -> list[tuple[str, Table]]:
    return [(s.title, s.table) for s in doc.sections if s.table is not None]


def test_every_time_column_says_ms_unless_it_names_another_unit(v2_run, tmp_path):
    cold = [
        _cold_record("torch", "mlp", "eager", k, 1.0 + k / 10, 0.1, 0.01, 50) for k in (1, 2, 3)
    ]
    (v2_run / "raw" / "coldstart.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cold))
    data = load_runs([v2_run])
    doc = build_document(data, "t")
    checked = 0
    for title, table in _tables(doc):
        if title.startswith(("Inference latency", "Training step")):  # a framework a column
            assert "p50 ms" in title
        for column in table.columns:
            if _TIME.search(column) and "/" not in column and "speedup" not in column:
                checked += 1
                assert _UNIT.search(column), f"{title}: {column!r} names no unit"
                if not column.endswith("_ms") and " ms" not in column:
                    # seconds are said, and only for the training-to-accuracy times
                    assert column in ("time_to_accuracy_s", "train_seconds"), (title, column)
    assert checked > 20


def test_cold_start_table_is_in_ms_and_holds_no_gemm(v2_run):
    """Cold starts are recorded in seconds (``xfbench-cold/1``) and shown in ms; a GEMM
    record (the machine's yardstick, not a model) is left out of cold starts and memory."""
    cold = [
        _cold_record("torch", "mlp", "eager", 1, 1.0, 0.10, 0.010, 50),
        _cold_record("torch", "mlp", "eager", 2, 1.2, 0.12, 0.012, 54),
        _cold_record("torch", "gemm", "eager", 1, 1.0, 0.10, 0.010, 50),
    ]
    (v2_run / "raw" / "coldstart.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cold))
    data = load_runs([v2_run])
    table = cold_start_table(data)
    assert [c for c in table.columns if c not in ("host", "device", "threads")] == [
        "framework", "model", "runtime", "total ms (median)", "range ms", "import ms",
        "load ms", "first call ms", "interpreter start to exit ms", "processes",
    ]  # fmt: skip
    rows = [dict(zip(table.columns, (c.text for c in row), strict=True)) for row in table.rows]
    assert [r["model"] for r in rows] == ["mlp"]
    row = rows[0]
    assert row["total ms (median)"] == "1,221"  # (1110 + 1332) / 2 ms, from seconds
    assert (row["import ms"], row["load ms"], row["first call ms"]) == ("1,100", "110.0", "11.00")
    assert row["interpreter start to exit ms"] == "1,271"
    assert "gemm" not in set(memory(data).model)
    assert (data.cases.model == "gemm").any()  # the GEMM is still measured, as the peak


# -- 3. Every runtime explained ---------------------------------------------------------
def test_every_runtime_of_every_framework_is_explained(v2_run):
    data = load_runs([v2_run])
    modes = modes_table(data)
    ran = data.cases[data.cases.phase.isin(["inference", "train_step"])]
    expected = set(zip(ran.framework, ran.runtime, strict=True))
    assert set(zip(modes.framework, modes["mode"], strict=True)) == expected
    assert modes["what it runs"].str.strip().astype(bool).all()
    assert NO_DESCRIPTION not in set(modes["what it runs"])  # torch and mxnet have notes
    ort = modes[modes["mode"] == ORT].set_index("framework")["what it runs"]
    assert set(ort.index) == {"torch", "mxnet"}
    assert ort["torch"] == f"{ORT_MODE_NOTE}; export: torch.onnx (dynamo)"
    from bench.adapters import adapter_class

    for fw in ("torch", "mxnet"):
        notes = adapter_class(fw).mode_notes
        native = modes[(modes.framework == fw) & (modes["mode"] != ORT)]
        for m, note in zip(native["mode"], native["what it runs"], strict=True):
            assert note == " ".join(notes[m].split())


def test_a_mode_without_a_note_says_so(v2_run, tmp_path):
    """A mode that neither the worker nor the adapter describes is listed with
    "(no description)", not left out or blank."""
    for path in (v2_run / "raw").glob("torch-*.jsonl"):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        for r in recs:
            if r.get("event") == "end" and r["model"] == "mlp" and r["runtime"] == "eager":
                r["runtime"] = "mystery"
                r["case_id"] = r["case_id"].replace("-eager-", "-mystery-")
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    data = load_runs([v2_run])
    modes = modes_table(data).set_index(["framework", "mode"])["what it runs"]
    assert modes[("torch", "mystery")] == NO_DESCRIPTION
    assert modes[("torch", "eager")] not in ("", NO_DESCRIPTION)
    md = write_report([v2_run], tmp_path / "report").markdown.read_text()
    assert "| torch | mystery |  | (no description) |" in md


@pytest.mark.parametrize(
    "notes",
    [{"a": "runs a"}, {"a": "runs a", "b": ""}, {"a": "runs a", "b": "  "}],
    ids=["missing", "empty", "blank"],
)
def test_the_conformance_kit_requires_a_note_for_every_mode(notes):
    """The kit's rule (bench/conformance.py, ``test_modes_are_declared``) refuses an
    adapter with a declared mode that has no note, and passes every registered adapter
    class (read without importing its framework)."""
    from types import SimpleNamespace

    from bench import adapters, conformance

    bad = SimpleNamespace(modes=("a", "b"), train_modes=("a",), mode_notes=notes)
    with pytest.raises(AssertionError, match=r"note|mode_notes"):
        conformance.test_modes_are_declared(bad)
    for name in adapters.framework_names():
        conformance.test_modes_are_declared(adapters.adapter_class(name))
