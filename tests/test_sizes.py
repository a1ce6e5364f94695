"""Model sizes: the width knob of every architecture, the cases a run adds for them, and
the scaling report's fit of ``latency = overhead + work / rate``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

# The scaling report needs pandas, which the framework environments do not install.
pd = pytest.importorskip("pandas")

from bench.cli import main  # noqa: E402
from bench.matrix import (  # noqa: E402
    Framework,
    MatrixError,
    cold_start_cases,
    native_cases,
    onnxruntime_cases,
    validate_models,
    with_sizes,
)
from bench.report import scaling  # noqa: E402
from models import reference  # noqa: E402
from models.spec import (  # noqa: E402
    MODEL_NAMES,
    WIDTHS,
    get_spec,
    model_id,
    parse_model_id,
    sizes_of,
)

TORCH = Framework("torch", ("cnn", "lstm", "mlp"), ("eager", "compile", "script"), ("eager",))
SKL = Framework("sklearn", ("mlp",), ("native",), ("native",))


@pytest.mark.parametrize("arch", [a for a in MODEL_NAMES if len(WIDTHS[a]) > 1])
def test_every_architecture_spans_three_orders_of_magnitude(arch):
    flops = [get_spec(model_id(arch, w)).flops_per_sample for w in WIDTHS[arch]]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert flops[-1] / flops[0] >= 1000, (arch, flops[0], flops[-1])
    default = [get_spec(arch).flops_per_sample] + [
        get_spec(m).flops_per_sample for m in sizes_of(arch)
    ]
    assert max(default) / min(default) >= 1000  # the default run spans it too
    assert get_spec(model_id(arch, WIDTHS[arch][-1])).param_count < 20_000_000


def test_a_size_scales_the_widths_and_keeps_the_architecture():
    big = get_spec("mlp@x16")
    assert (big.name, big.arch, big.width, big.trained) == ("mlp@x16", "mlp", 16, False)
    assert big.param_shapes["fc1.kernel"] == (784, 2048)
    assert big.flops_per_sample == 2 * (784 * 2048 + 2048 * 10)
    assert get_spec("lstm@x0.25").hyper["hidden"] == 16
    assert get_spec("cnn@x2").hyper["conv2"] == 32
    assert get_spec("mlp@x1") is get_spec("mlp") and get_spec("mlp").trained
    assert parse_model_id("cnn@x0.5") == ("cnn", 0.5) and model_id("cnn", 0.5) == "cnn@x0.5"
    assert get_spec("mlp@x0.0625").slug == "mlp_x0_0625"


@pytest.mark.parametrize("name", ["cnn@x0.25", "lstm@x0.5", "mlp@x0.0625"])
def test_reference_forward_of_a_size(name):
    spec = get_spec(name)
    x = np.random.RandomState(0).rand(3, *spec.input_shape).astype(np.float32)
    assert reference.forward(spec, spec.init_weights(0), x).shape == (3, 10)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("mlp@x3", "unknown size 'x3' of mlp; its sizes: mlp@x0.0625"),
        ("cnn@x64", "its sizes: cnn@x0.25, cnn@x0.5, cnn, cnn@x2"),
        ("lstm@16", "unknown size '16' of lstm"),
        ("vae@x2", "unknown model 'vae@x2'; valid models: cnn, lstm, mlp"),
        (
            "gan@x2",
            "unknown size 'x2' of gan: gan comes in one size only, so name it 'gan'; "
            "the models that come in sizes are cnn, lstm, mlp (e.g. cnn@x2)",
        ),
    ],
)
def test_an_unknown_size_names_the_sizes_that_exist(model, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_spec(model)
    with pytest.raises(MatrixError, match="unknown"):
        validate_models([model])


def test_bench_refuses_an_unknown_size_before_anything_runs(tmp_path, capsys):
    code = main(["bench", "-m", "mlp@x3", "--out", str(tmp_path / "r"), "--plan"])
    assert code == 2
    assert "its sizes: mlp@x0.0625" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_run_adds_the_smallest_and_largest_size_and_sweep_adds_all():
    assert with_sizes(["mlp"], sweep=False) == ["mlp", "mlp@x0.0625", "mlp@x64"]
    assert with_sizes(["cnn"], sweep=True) == [
        "cnn",
        *(model_id("cnn", w) for w in WIDTHS["cnn"] if w != 1),
    ]
    assert with_sizes(["mlp@x16"], sweep=False) == ["mlp@x16"]  # named sizes only
    assert validate_models(["mlp@x1", "mlp"]) == ["mlp"]


def test_sizes_are_timed_for_inference_at_batch_1_in_the_default_mode():
    cases = native_cases(TORCH, ["mlp", "mlp@x64"], ["cpu"], [1, 32], 2)
    sized = [c for c in cases if c.model == "mlp@x64"]
    assert [c.id for c in sized] == ["torch-mlp@x64-eager-inference-cpu-b1-t2"]
    swept = native_cases(TORCH, ["mlp@x64"], ["cpu"], [1, 32], 2, sweep=True)
    assert {c.runtime for c in swept if c.phase == "inference"} == {"eager", "compile", "script"}
    ort = onnxruntime_cases([TORCH, SKL], ["mlp@x64", "cnn@x16"], ["cpu"], [1, 32], 2)
    assert sorted(c.id for c in ort) == [
        "sklearn-mlp@x64-onnxruntime-inference-cpu-b1-t2",
        "torch-cnn@x16-onnxruntime-inference-cpu-b1-t2",
        "torch-mlp@x64-onnxruntime-inference-cpu-b1-t2",
    ]
    assert cold_start_cases([TORCH], ["mlp", "mlp@x64"], ["cpu"], 2)
    assert all(c.model == "mlp" for c in cold_start_cases([TORCH], ["mlp", "mlp@x64"], ["cpu"], 2))


def test_the_plan_counts_the_sizes(tmp_path, capsys):
    assert main(["bench", "-f", "sklearn", "-m", "mlp", "--plan", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "models mlp,mlp@x0.0625,mlp@x64" in text


# -- the fit -------------------------------------------------------------------------------
def test_fit_recovers_a_known_overhead_and_rate():
    work = np.array([1e4, 1e5, 1e6, 1e7, 1e8])
    latency = 20e-6 + work / 5e9
    o, rate, miss = scaling.fit_one(work, latency)
    assert o == pytest.approx(20e-6, rel=1e-6) and rate == pytest.approx(5e9, rel=1e-6)
    assert miss < 1e-9


def test_a_curved_cost_is_a_poor_fit():
    work = np.array([1e4, 1e5, 1e6, 1e7, 1e8])
    latency = 20e-6 + (work / 5e9) ** 1.4  # not overhead + work / rate
    *_, miss = scaling.fit_one(work, latency)
    assert miss > scaling.POOR_FIT


def test_fit_never_gives_a_negative_overhead_or_rate():
    work = np.array([1e4, 1e5, 1e6])
    o, rate, _ = scaling.fit_one(work, work / 1e9 * np.array([1.3, 1.0, 1.0]))
    assert o >= 0 and rate > 0
    o, rate, _ = scaling.fit_one(work, np.array([1e-3, 1e-3, 1e-3]))  # flat: overhead only
    assert o == pytest.approx(1e-3) and math.isinf(rate)


def test_half_of_the_yardstick():
    # o = 10 us, rate = 40 GFLOP/s, yardstick 40 GFLOP/s: half (20) at W = o * 20e9 / (1 - 0.5)
    assert scaling.half_yardstick(10e-6, 40e9, 40e9) == pytest.approx(10e-6 * 20e9 / 0.5)
    assert math.isinf(scaling.half_yardstick(10e-6, 15e9, 40e9))  # its rate never gets there


def _cases_and_models():
    """Inference cases of two frameworks over three sizes, with a GEMM peak."""
    rows, models = [], []
    for fw, o, rate in (("torch", 30e-6, 20e9), ("jax", 5e-6, 10e9)):
        # The resnet comes in one size: a point that fits nothing and draws no line.
        for m in ("mlp@x0.0625", "mlp", "mlp@x64", "resnet"):
            f = get_spec(m).flops_per_sample
            models.append({"framework": fw, "model": m, "flops_per_sample": f})
            p50 = (o + f / rate) * 1e3
            rows.append(
                dict(
                    host="h",
                    device="cpu",
                    threads=2,
                    framework=fw,
                    model=m,
                    runtime="r",
                    phase="inference",
                    batch_size=1,
                    status="ok",
                    p50_ms=p50,
                )
            )
    rows.append(
        dict(
            host="h",
            device="cpu",
            threads=2,
            framework="torch",
            model="gemm",
            runtime="r",
            phase="peak",
            batch_size=1024,
            status="ok",
            p50_ms=2 * 1024**3 / 40e9 * 1e3,
        )
    )
    return pd.DataFrame(rows), pd.DataFrame(models)


def test_fits_per_framework_with_the_yardstick(tmp_path):
    cases, models = _cases_and_models()
    pts = scaling.points(cases, models)
    assert set(pts.arch) == {"mlp"}  # not the resnet: nothing to fit, or to call unfitted
    fitted = scaling.fits(pts, cases).set_index("framework")
    assert fitted.loc["torch", "overhead_us"] == pytest.approx(30, rel=1e-3)
    assert fitted.loc["torch", "rate_gflops"] == pytest.approx(20, rel=1e-3)
    assert fitted.loc["torch", "yardstick_gflops"] == pytest.approx(40, rel=1e-3)
    assert fitted.loc["torch", "fit"] == "good"
    assert math.isinf(fitted.loc["jax", "half_yardstick_mflop"])  # 10 < 40 / 2
    table = scaling.fit_table_frame(fitted.reset_index())
    assert set(table.loc[table.framework == "jax", "half_yardstick_mflop"]) == {"never"}
    (png,) = scaling.plot(pts, cases, tmp_path)
    assert png.name == "scaling.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_the_zoo_summary_shows_an_untrained_size(tmp_path):
    from bench.cli import format_summary

    manifest = {
        "framework": "torch",
        "model": "mlp@x0.0625",
        "parameters": 6370,
        "train": {"trained": False, "test_accuracy": None, "time_to_accuracy_s": None},
        "onnx": {"opset": 18, "node_count": 3, "parity_max_abs_diff": 5e-7},
    }
    text = format_summary([{"status": "ok", "manifest": manifest}], [], tmp_path)
    (row,) = [line for line in text.splitlines() if line.startswith("torch")]
    assert row.split()[:5] == ["torch", "mlp@x0.0625", "6370", "-", "-"]


def test_the_default_run_leaves_resnet_to_be_named(tmp_path, capsys):
    assert main(["bench", "-f", "torch", "--plan", "--quick", "--out", str(tmp_path)]) == 0
    assert "models cnn,lstm,mlp;" in capsys.readouterr().out
    assert main(["bench", "-f", "torch", "-m", "resnet", "--plan", "--out", str(tmp_path)]) == 0
    assert "models resnet;" in capsys.readouterr().out
