"""The report's charts: which files, valid PNGs, styles for any mode name, best mode per
framework, names drawn as text, one scale per figure, error bars, colours from the
adapters and stable across runs, titles that fit, no overwriting, no heavy imports."""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

from bench.adapters import adapter_class  # noqa: E402
from bench.adapters.base import COLOR_PATTERN, ONNXRUNTIME_COLOR  # noqa: E402
from bench.report import CASE_COLUMNS  # noqa: E402
from bench.report.plots import (  # noqa: E402
    _CHARTS,
    EXTRA_COLOURS,
    NATIVE_LINE,
    ORT_LINE,
    PNG_SIGNATURE,
    RC,
    Palette,
    _latency_vs_batch,
    _prepare,
    embed_png,
    fallback_colour,
    framework_colour,
    make_plots,
    sanitise,
)
from bench.report.stats import estimate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Frameworks with modes of their own names, as schema-2 runs have them; "newfw" has no
#: adapter here (its colour comes from its name).
MODES = {"tensorflow": ("function", "xla"), "torch": ("eager", "compile"), "newfw": ("fast",)}
MODELS = ("cnn", "mlp")
BATCHES = (1, 32)


def _row(fw, model, runtime, phase, batch, threads, seconds, status="ok", reason="", host="vm"):
    """One summary row (CASE_COLUMNS) from the per-call times of three processes."""
    samples = [np.asarray(s) * 1e3 for s in seconds] if status == "ok" else []
    est = estimate(samples)
    pooled = np.concatenate(samples) if samples else np.empty(0)
    p50 = est.p50
    return {
        "run": "20260101-000000-vm-cpu",
        "host": host,
        "device": "cpu",
        "device_name": "AMD EPYC",
        "framework": fw,
        "model": model,
        "runtime": runtime,
        "exporter": "",
        "phase": phase,
        "batch_size": batch,
        "threads": threads,
        "processes": est.processes,
        "rounds": est.rounds,
        "calls_per_round": 1,
        "p50_ms": p50,
        "p50_ci_low_ms": est.low,
        "p50_ci_high_ms": est.high,
        "spread_pct": est.spread_pct,
        "min_ms": pooled.min() if pooled.size else np.nan,
        "max_ms": pooled.max() if pooled.size else np.nan,
        "throughput_sps": batch / (p50 / 1e3) if status == "ok" else np.nan,
        "unstable": False,
        "peak_rss_mb": 400.0,
        "status": status,
        "reason": reason,
        "case_id": f"{fw}-{model}-{runtime}-{phase}-cpu-b{batch}-t{threads}",
    }


def _cases(thread_counts=(1, 2), host="vm", device="cpu", failures=True, model_names=MODELS):
    rows = []
    pairs = [(fw, m) for fw, modes in MODES.items() for m in (*modes, "onnxruntime")]
    for i, ((fw, rt), model, batch, threads) in enumerate(
        itertools.product(pairs, model_names, BATCHES, thread_counts)
    ):
        base = 1e-4 * (1 + i % 5) * batch**0.7 / threads**0.8
        procs = [[base * (1 + 0.01 * k + 0.003 * p) for k in range(7)] for p in range(3)]
        rows.append(_row(fw, model, rt, "inference", batch, threads, procs, host=host))
        if rt != "onnxruntime":
            train = [[4 * s for s in p] for p in procs]
            rows.append(_row(fw, model, rt, "train_step", batch, threads, train, host=host))
    rows.append(_row("torch", "cnn", "eager", "cold_start", 1, 1, [[0.02]], host=host))
    if failures:
        top = max(thread_counts)
        rows.append(
            _row("tensorflow", "mlp", "xla", "inference", 32, top, [], "unsupported", "no XLA")
        )
        rows.append(_row("torch", "cnn", "compile", "train_step", 64, top, [], "error", "boom"))
    df = pd.DataFrame(rows).reindex(columns=CASE_COLUMNS)
    df["device"] = device
    return df


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert float(np.ptp(img[..., :3])) > 0.2, f"{path.name} is a blank image"


def test_writes_every_chart_as_png(tmp_path):
    out = tmp_path / "plots"  # created by make_plots
    paths = make_plots(_cases(), out)
    assert [p.name for p in paths] == [
        "latency_vs_batch.png",
        "native_vs_onnxruntime.png",
        "thread_scaling.png",
        "train_step.png",
    ]
    assert sorted(out.iterdir()) == sorted(paths)
    for p in paths:
        _assert_png(p)


def test_styles_for_any_mode_name():
    palette = Palette([(fw, m) for fw, modes in MODES.items() for m in (*modes, "onnxruntime")])
    for fw, modes in MODES.items():
        styles = [palette.style(fw, m) for m in modes]
        assert {s.linestyle for s in styles} == {NATIVE_LINE}  # native modes: solid
        assert len({s.marker for s in styles}) == len(modes)  # told apart by marker
        ort = palette.style(fw, "onnxruntime")
        assert ort.linestyle == ORT_LINE and ort.hatch  # ONNX Runtime: dashed, hatched
        assert {s.colour for s in [*styles, ort]} == {framework_colour(fw)}
    assert framework_colour("torch") == adapter_class("torch").color
    # A framework without a fixed colour gets one from its name, whoever else is there.
    assert framework_colour("newfw") in EXTRA_COLOURS
    alone = Palette([("newfw", "fast")])
    assert alone.style("newfw", "fast").colour == palette.style("newfw", "fast").colour


def test_latency_chart_draws_best_native_mode_and_onnxruntime():
    cases = _cases(thread_counts=(2,), failures=False)
    groups, palette = _prepare(cases)
    fig = _latency_vs_batch(groups[0], palette)
    ax = fig.axes[0]  # cnn
    inf = cases[(cases.phase == "inference") & (cases.model == "cnn")]
    lines = {line.get_label(): line for line in ax.get_lines() if line.get_label()[0] != "_"}
    assert set(lines) == {f"{fw} {kind}" for fw in MODES for kind in ("native", "onnxruntime")}
    for fw in MODES:
        native = inf[(inf.framework == fw) & (inf.runtime != "onnxruntime")]
        best = native.groupby("batch_size").p50_ms.min()
        np.testing.assert_allclose(lines[f"{fw} native"].get_ydata(), best.to_numpy())
        assert lines[f"{fw} native"].get_linestyle() == NATIVE_LINE
        assert lines[f"{fw} onnxruntime"].get_linestyle() == ORT_LINE


def _figures(cases):
    """Every chart of ``cases`` as (name, figure), as make_plots draws them."""
    import matplotlib

    groups, palette = _prepare(cases)
    with matplotlib.rc_context(RC):
        figs = [(name, chart(g, palette)) for g in groups for name, chart in _CHARTS]
    return [(name, fig) for name, fig in figs if fig is not None]


def test_one_scale_per_figure():
    """No figure mixes linear and log panels, even where one panel alone spans decades."""
    cases = _cases(thread_counts=(1, 2), failures=False)
    wide = (cases.model == "cnn") & (cases.framework == "torch") & (cases.runtime == "eager")
    decades = cases.copy()
    for col in ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"):
        decades.loc[wide, col] *= 300  # cnn spans decades, mlp does not
    decades.loc[wide, "throughput_sps"] /= 300
    for data, bars_log in ((cases, False), (decades, True)):
        figs = dict(_figures(data))
        assert set(figs) == {name for name, _ in _CHARTS}
        for name, fig in figs.items():
            assert len(fig.axes) == 2, name
            for get in ("get_xscale", "get_yscale"):
                scales = {getattr(ax, get)() for ax in fig.axes}
                assert len(scales) == 1, f"{name}: {get} differs between panels: {scales}"
        # Latency and training time span decades over batch sizes: always log.
        for name in ("latency_vs_batch", "train_step"):
            assert {(ax.get_xscale(), ax.get_yscale()) for ax in figs[name].axes} == {
                ("log", "log")
            }
        want = "log" if bars_log else "linear"
        assert {ax.get_xscale() for ax in figs["native_vs_onnxruntime"].axes} == {want}
        assert {ax.get_yscale() for ax in figs["thread_scaling"].axes} == {want}
        label = figs["native_vs_onnxruntime"].axes[-1].get_xlabel()
        assert ("log scale" in label) == bars_log


def _error_bars(ax):
    """(x, low, high) of every vertical error bar drawn on ``ax``."""
    from matplotlib.container import ErrorbarContainer

    out = set()
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for coll in c.lines[2]:
                for seg in coll.get_segments():
                    (x0, y0), (_x1, y1) = seg
                    out.add((round(float(x0), 6), round(float(y0), 9), round(float(y1), 9)))
    return out


def test_latency_points_carry_their_interval_as_error_bars():
    cases = _cases(thread_counts=(2,), failures=False)
    figs = dict(_figures(cases))
    ax = figs["latency_vs_batch"].axes[0]  # cnn
    bars = _error_bars(ax)
    inf = cases[(cases.phase == "inference") & (cases.model == "cnn")]
    want = set()
    for fw in MODES:
        mine = inf[inf.framework == fw]
        native = mine[mine.runtime != "onnxruntime"]
        best = native.loc[native.groupby("batch_size").p50_ms.idxmin()]
        ort = mine[mine.runtime == "onnxruntime"]
        for r in [*best.itertuples(), *ort.itertuples()]:
            want.add((float(r.batch_size), round(r.p50_ci_low_ms, 9), round(r.p50_ci_high_ms, 9)))
    assert want and want <= bars
    # Error bars take their line's colour.
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            fw = line.get_label().rsplit(" ", 1)[0]
            assert line.get_color() == framework_colour(fw)
    # Training steps, every mode's bars and the throughputs carry theirs too.
    assert all(_error_bars(ax) for ax in figs["train_step"].axes)
    assert all(_error_bars(ax) for ax in _figures(_cases(failures=False))[2][1].axes)
    for ax in figs["native_vs_onnxruntime"].axes:
        assert any(c.has_xerr for c in ax.containers if hasattr(c, "has_xerr")) or any(
            c.errorbar is not None for c in ax.containers if hasattr(c, "errorbar")
        )
    # Without intervals there are no error bars, and no failure.
    bare = cases.assign(p50_ci_low_ms=float("nan"), p50_ci_high_ms=float("nan"))
    assert not _error_bars(dict(_figures(bare))["latency_vs_batch"].axes[0])


def _colours(cases):
    """framework -> colour of its lines in the latency chart (every panel)."""
    out = {}
    for ax in dict(_figures(cases))["latency_vs_batch"].axes:
        for line in ax.get_lines():
            label = line.get_label()
            if not label.startswith("_"):
                fw = label.rsplit(" ", 1)[0]
                assert out.setdefault(fw, line.get_color()) == line.get_color()
    return out


def test_colours_come_from_the_adapters_and_stay_put():
    run_a = _cases(thread_counts=(2,), failures=False)
    run_b = run_a.assign(run="20260102-000000-vm-cpu")
    one = _colours(pd.concat([run_a, run_b], ignore_index=True))
    assert set(one) == set(MODES)
    # Runs in the other order, rows shuffled, frameworks renamed away or dropped.
    other = pd.concat([run_b, run_a], ignore_index=True).sample(frac=1, random_state=3)
    assert _colours(other) == one
    alone = run_a[run_a.framework == "newfw"]
    assert _colours(alone) == {"newfw": one["newfw"]}
    crowd = pd.concat([run_a, run_a.assign(framework="aaa-first")], ignore_index=True)
    assert {fw: c for fw, c in _colours(crowd).items() if fw != "aaa-first"} == one
    # Registered frameworks: their adapter's colour; an unknown one: from its name.
    assert one["torch"] == adapter_class("torch").color
    assert one["tensorflow"] == adapter_class("tensorflow").color
    assert one["newfw"] == fallback_colour("newfw") in EXTRA_COLOURS
    assert framework_colour("onnxruntime") == ONNXRUNTIME_COLOR
    # ... the same in another process, whatever its hash seed.
    code = "from bench.report.plots import framework_colour as f; print(f('newfw'), f('torch'))"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.split() == [one["newfw"], one["torch"]]


def test_shipped_adapters_declare_distinct_colours():
    names = ("torch", "tensorflow", "mxnet", "jax", "sklearn")
    colours = [adapter_class(n).color for n in names]
    assert all(isinstance(c, str) and COLOR_PATTERN.fullmatch(c) for c in colours), colours
    assert len({c.lower() for c in [*colours, ONNXRUNTIME_COLOR]}) == len(names) + 1
    assert not {c.lower() for c in colours} & {c.lower() for c in EXTRA_COLOURS}


def _inside(fig, text) -> bool:
    box = text.get_window_extent(fig.canvas.get_renderer())
    return (
        box.x0 >= -0.5
        and box.y0 >= -0.5
        and box.x1 <= fig.bbox.x1 + 0.5
        and (box.y1 <= fig.bbox.y1 + 0.5)
    )


def test_long_titles_fit_the_figure():
    host = "build-agent-" + "x" * 150 + " in the far corner of the lab " * 3
    mode = "a_mode_with_a_name_far_too_long_for_any_legend_" * 3
    cases = _cases(thread_counts=(1, 2), host=host, model_names=("m" * 90, "mlp"))
    cases.loc[cases.runtime == "fast", "runtime"] = mode
    cases.loc[cases.framework == "torch", "device_name"] = "Intel " * 30
    figs = _figures(cases)
    assert len(figs) == 4
    for name, fig in figs:
        fig.canvas.draw()
        texts = [fig._suptitle, fig._supylabel, *fig.legends[0].get_texts()]
        for ax in fig.axes:
            texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
            if name == "native_vs_onnxruntime":
                texts += ax.get_yticklabels()
        for t in texts:
            if t is not None and t.get_visible() and t.get_text():
                assert _inside(fig, t), f"{name}: {t.get_text()!r} is clipped"
        title = fig._suptitle.get_text()
        assert "…" in title and title.count("\n") >= 2, title  # wrapped and shortened
    # A short title stays whole, on its two lines.
    fig = dict(_figures(_cases(thread_counts=(2,))))["latency_vs_batch"]
    assert fig._suptitle.get_text().splitlines()[1] == "vm · cpu (AMD EPYC) · 2 threads"


def test_names_are_drawn_as_text(tmp_path):
    """Host and model names from the data never reach matplotlib's math parser."""
    cases = _cases(thread_counts=(2,), host="$\\foo{$ <script>", model_names=("$x^{$",))
    paths = make_plots(cases, tmp_path)
    assert len(paths) == 3
    for p in paths:
        _assert_png(p)


def test_one_thread_count_has_no_thread_scaling(tmp_path):
    paths = make_plots(_cases(thread_counts=(2,), failures=False), tmp_path)
    names = [p.name for p in paths]
    assert "thread_scaling.png" not in names
    assert names == ["latency_vs_batch.png", "native_vs_onnxruntime.png", "train_step.png"]
    assert not (tmp_path / "thread_scaling.png").exists()


def test_several_machines_get_a_file_each(tmp_path):
    cases = pd.concat(
        [_cases(thread_counts=(2,)), _cases(thread_counts=(2,), host="gpu box", device="cuda")],
        ignore_index=True,
    )
    names = [p.name for p in make_plots(cases, tmp_path)]
    assert names == [
        "latency_vs_batch-gpu_box-cuda.png",
        "native_vs_onnxruntime-gpu_box-cuda.png",
        "train_step-gpu_box-cuda.png",
        "latency_vs_batch-vm-cpu.png",
        "native_vs_onnxruntime-vm-cpu.png",
        "train_step-vm-cpu.png",
    ]


def test_missing_data_is_skipped_without_error(tmp_path):
    cases = _cases(thread_counts=(2,))
    only_failures = cases.assign(status="error", p50_ms=float("nan"))
    assert make_plots(only_failures, tmp_path / "a") == []
    assert make_plots(cases.iloc[0:0], tmp_path / "b") == []
    no_training = cases[cases.phase != "train_step"]
    names = [p.name for p in make_plots(no_training, tmp_path / "c")]
    assert names == ["latency_vs_batch.png", "native_vs_onnxruntime.png"]
    no_interval = cases.assign(p50_ci_low_ms=float("nan"), p50_ci_high_ms=float("nan"))
    assert len(make_plots(no_interval, tmp_path / "d")) == 3


def test_never_overwrites(tmp_path):
    cases = _cases()
    make_plots(cases, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"latency_vs_batch\.png"):
        make_plots(cases, tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_embed_png_round_trips(tmp_path):
    path = make_plots(_cases(thread_counts=(2,)), tmp_path)[0]
    uri = embed_png(path)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :], validate=True) == path.read_bytes()
    not_png = tmp_path / "x.png"
    not_png.write_text("hello")
    with pytest.raises(ValueError, match="not a PNG"):
        embed_png(not_png)


def test_sanitise():
    assert sanitise("gpu box/1") == "gpu_box_1"
    assert sanitise("a.b-c_d") == "a.b-c_d"
    assert sanitise("") == "unknown"


def test_import_is_light():
    code = (
        "import sys, bench.report.plots; "
        "heavy = {'matplotlib', 'pandas', 'torch', 'tensorflow', 'mxnet'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
