from __future__ import annotations

import os
import subprocess

from bench.fingerprint import REPO_ROOT, machine


def test_machine_fingerprint_has_the_facts_a_reader_needs():
    fp = machine()
    assert fp["cpu_model"]
    assert fp["logical_cores"] == os.cpu_count()
    assert 1 <= fp["available_cpus"] <= os.cpu_count()
    # how idle OpenMP threads wait: recorded whether set or not
    assert set(fp["thread_settings"]) >= {"OMP_WAIT_POLICY", "KMP_BLOCKTIME"}
    assert fp["memory_gib"] > 0
    assert isinstance(fp["gpus"], list)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if head.returncode == 0:
        assert fp["git"]["commit"] == head.stdout.strip()
    assert fp["time"][:4].isdigit() and fp["host"]
