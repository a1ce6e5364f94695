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
