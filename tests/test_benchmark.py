"""The benchmark still runs, and the project's path agrees with the original-style loop on it."""

from __future__ import annotations

import pytest
from conftest import SHARED, run_script

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch


@pytest.mark.skipif(not (SHARED / "pythia-tokenizer").exists(), reason="needs ../shared/data")
def test_benchmark_cpu_mode_smoke(tmp_path):
    out = tmp_path / "bench.md"
    run_script(
        "benchmarks.bench",
        "--mode",
        "cpu",
        "--sizes",
        "70m",
        "--num-prefixes",
        4,
        "--challenge-prefixes",
        8,
        "--load-sizes",
        "70m",
        "--out",
        out,
    )
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 70m | ")]
    assert len(rows) == 3  # short set, long set, loading
    assert all(row.rstrip(" |").endswith("1.00") for row in rows[:2])  # top-1 agreement with the original loop
    assert "Output host memory" in text and "bare pickle.load" in text


def test_gpu_mode_without_a_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --mode gpu would run")
    result = run_script("benchmarks.bench", "--mode", "gpu", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --mode gpu on cuda: this machine has no CUDA GPU (try --mode cpu)"
