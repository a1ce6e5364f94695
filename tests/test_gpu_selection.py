"""Device selection without a GPU: what bench-gpu does on this machine, and how the
nvidia-smi output that decides it is read."""

from __future__ import annotations

import os
import stat

import pytest

from bench.cli import main, require_gpu
from bench.envs import env_name
from bench.fingerprint import detect_gpus, parse_cuda_version, parse_nvidia_smi

# Recorded from nvidia-smi 550 on an H100 host.
SMI_QUERY = "NVIDIA H100 80GB HBM3, 550.54.15, 81559\n"
SMI_BANNER = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |\n"


def _fake_smi(tmp_path, query: str, banner: str) -> str:
    """An nvidia-smi on PATH that prints recorded output (the machine has no GPU)."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"if [ \"$#\" -gt 0 ]; then printf '%s' '{query}'; else printf '%s' '{banner}'; fi\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{tmp_path}{os.pathsep}{os.environ['PATH']}"


def test_parse_nvidia_smi():
    (gpu,) = parse_nvidia_smi(SMI_QUERY, parse_cuda_version(SMI_BANNER))
    assert (gpu.name, gpu.driver, gpu.memory_mib, gpu.cuda) == (
        "NVIDIA H100 80GB HBM3",
        "550.54.15",
        81559,
        "12.4",
    )
    assert parse_nvidia_smi("", "12.4") == []
    assert parse_cuda_version("no banner") == "unknown"


def test_gpu_runs_use_the_gpu_environments():
    assert env_name("torch") == "torch"
    assert env_name("torch", ["cuda"]) == "torch-gpu"
    assert env_name("mxnet", ["cpu", "cuda"]) == "mxnet-gpu"


def test_detects_a_gpu_through_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, SMI_QUERY, SMI_BANNER))
    assert [g.name for g in detect_gpus()] == ["NVIDIA H100 80GB HBM3"]
    assert require_gpu(["cuda"])[0]["cuda"] == "12.4"


def test_nvidia_smi_without_gpus_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, "", "No devices were found"))
    assert detect_gpus() == []


@pytest.mark.skipif(bool(detect_gpus()), reason="this machine has a CUDA GPU")
def test_bench_gpu_stops_before_installing_anything(tmp_path, capsys):
    out = tmp_path / "reports"
    code = main(
        ["bench", "--device", "cuda", "--out", str(out), "--artifacts", str(tmp_path / "artifacts")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU found" in err and "tox -e bench-cpu" in err
    assert not out.exists() and not (tmp_path / "artifacts").exists()
    assert require_gpu(["cpu"]) == []


def test_driver_floor_per_environment():
    from bench.envs import driver_shortfall

    reason = driver_shortfall("torch-gpu", "12.4")
    assert "CUDA 13" in reason and "580.65.06" in reason and "12.4" in reason
    assert driver_shortfall("torch-gpu", "13.0") is None
    assert driver_shortfall("tensorflow-gpu", "12.4") is None
    assert driver_shortfall("mxnet-gpu", "12.4") is None
    assert driver_shortfall("torch-gpu", "unknown") is None
    assert driver_shortfall("sklearn", "11.0") is None  # a CPU environment


def _plan(tmp_path, devices, driver, frameworks=("torch",)):
    from bench.matrix import QUICK_TIMING
    from bench.orchestrator import RunPlan

    return RunPlan(
        list(frameworks),
        ["mlp"],
        devices,
        [1],
        [1],
        QUICK_TIMING,
        1,
        1,
        tmp_path / "artifacts",
        tmp_path / "raw",
        60.0,
        python=tmp_path / "no-such-python",  # a started worker would fail: none may start
        driver_cuda=driver,
    )


def test_groups_the_driver_cannot_run_are_unsupported_without_installing(tmp_path):
    from bench.orchestrator import cold_start, run_timing

    both = _plan(tmp_path, ["cuda"], "12.4", ("torch", "sklearn"))
    assert both.gpu_blocked("sklearn", ["cuda"]) is None  # no GPU build: its cases say so
    plan = _plan(tmp_path, ["cuda"], "12.4")
    assert plan.gpu_blocked("torch", ["cuda"]) and plan.gpu_blocked("onnxruntime", ["cuda"])
    records = run_timing(plan, progress=lambda line: None)
    assert records and len(records) == plan.count()["cases"]
    assert {r["status"] for r in records} == {"unsupported"}
    assert all("driver 580.65.06" in r["reason"] for r in records)
    cold = [c for c in plan.cold_cases() if c.framework == "torch"]
    assert {cold_start(plan, c, 1)["status"] for c in cold} == {"unsupported"}


def test_runs_with_the_cpu_or_a_new_driver_are_not_blocked(tmp_path):
    assert _plan(tmp_path, ["cpu", "cuda"], "12.4").gpu_blocked("torch", ["cpu", "cuda"]) is None
    assert _plan(tmp_path, ["cuda"], "13.0").gpu_blocked("torch", ["cuda"]) is None
    assert _plan(tmp_path, ["cuda"], None).gpu_blocked("torch", ["cuda"]) is None


@pytest.mark.skipif(bool(detect_gpus()), reason="this machine has a CUDA GPU")
def test_gpu_plan_prints_without_a_gpu_and_creates_nothing(tmp_path, capsys):
    out, artifacts = tmp_path / "reports", tmp_path / "artifacts"
    code = main(
        ["bench", "--device", "cuda", "--plan", "--out", str(out), "--artifacts", str(artifacts)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "GPU: none found" in text and "would stop here" in text
    for env in ("torch-gpu", "tensorflow-gpu", "mxnet-gpu", "jax-gpu", "onnxruntime-gpu"):
        assert env in text
    assert "torch===2.13.0" in text and "onnxruntime-gpu[cuda,cudnn]" in text
    assert "no GPU build: its cuda cases are reported unsupported" in text  # sklearn
    assert "NVIDIA_TF32_OVERRIDE=0" in text and "disable_cpu_ep_fallback" in text
    assert "expected time" in text
    assert not out.exists() and not artifacts.exists()


def test_gpu_plan_names_what_an_old_driver_cannot_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, SMI_QUERY, SMI_BANNER))  # CUDA 12.4
    code = main(["bench", "-d", "cuda", "--plan", "--out", str(tmp_path / "r")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("NVIDIA H100 80GB HBM3" in line and "12.4" in line for line in lines)
    blocked = {line.split()[1] for line in lines if "unsupported here" in line}
    assert blocked == {"torch-gpu", "jax-gpu", "onnxruntime-gpu"}


def test_resolve_needs_plan(tmp_path, capsys):
    assert main(["bench", "--resolve", "--out", str(tmp_path / "r")]) == 2
    assert "--resolve goes with --plan" in capsys.readouterr().err


def test_cuda_visible_devices_chooses_the_recorded_gpu(tmp_path, monkeypatch):
    from bench.fingerprint import Gpu, visible_gpus

    a, b = Gpu("A100", "550", 40960, "12.4"), Gpu("H100", "550", 81559, "12.4")
    assert visible_gpus([a, b], None) == [a, b]
    assert visible_gpus([a, b], "1") == [b]
    assert visible_gpus([a, b], "1,0") == [b, a]
    assert visible_gpus([a, b], "") == []  # no GPU visible: a CUDA run stops
    assert visible_gpus([a, b], "0,7,1") == [a]  # CUDA stops at the first bad index
    assert visible_gpus([a, b], "GPU-8f2c") == [a, b]  # UUIDs are not resolved here
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, SMI_QUERY, SMI_BANNER))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(Exception, match="no CUDA GPU found") as err:
        require_gpu(["cuda"])
    assert "CUDA_VISIBLE_DEVICES=''" in str(err.value) and "unset it" in str(err.value)


def test_tox_passes_the_gpu_choice_on():
    import configparser

    from bench.envs import REPO_ROOT

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO_ROOT / "tox.ini")
    assert "CUDA_VISIBLE_DEVICES" in cfg.get("testenv", "pass_env")
