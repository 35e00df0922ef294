"""The scale benchmark's tools: the synthetic dataset generator (benchmarks.make_dataset) and the
memory sampler that measures challenge.py (benchmarks.scale)."""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest

from benchmarks import make_dataset, scale
from harness.data.dataset import load_dataset, model_sizes, read_sidecar

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch

MB = 1_000_000


def test_to_float16_rounds_like_numpys_cast():
    values = np.array(
        [
            0.0,
            2.0**-25,
            3 * 2.0**-25,
            2.0**-24,
            2.0**-14 - 2.0**-26,
            2.0**-14,
            2.0**-14 * (1 + 2.0**-11),
            2.0**-14 * (1 + 3 * 2.0**-11),
            0.1,
            1 / 3,
            1.0,
        ],
        dtype=np.float32,
    )
    # 2**-25 is half a subnormal step: ties to even (0); 1.5 steps -> 2; 1023.75 steps -> 2**-14 (0x0400);
    # half a normal step above 2**-14 -> even 0x0400, one and a half -> 0x0402.
    expected = [0x0000, 0x0000, 0x0002, 0x0001, 0x0400, 0x0400, 0x0400, 0x0402, 0x2E66, 0x3555, 0x3C00]
    assert make_dataset.to_float16(values).view(np.uint16).tolist() == expected
    probs = np.random.default_rng(0).dirichlet(np.full(5000, 0.05)).astype(np.float32)
    assert np.array_equal(make_dataset.to_float16(probs).view(np.uint16), probs.astype(np.float16).view(np.uint16))


def test_written_dataset_loads_and_does_not_depend_on_n(tmp_path):
    big, small = tmp_path / "big.pkl", tmp_path / "small.pkl"
    make_dataset.write_dataset(big, 10, vocab_size=8000)  # 1.1 MB: streamed into the pickle
    make_dataset.write_dataset(small, 3, vocab_size=8000)  # 0.3 MB: pickled from memory
    with open(big, "rb") as f:
        names, sentences, probs = pickle.load(f)
    assert probs.shape == (10, 7, 8000) and probs.dtype == np.float16 and len(sentences) == 10
    assert names == [name for name, _, _ in make_dataset.PYTHIA]
    sums = probs.sum(axis=2, dtype=np.float64)
    assert np.abs(sums - 1).max() < 0.005
    assert np.array_equal(load_dataset(small).probs, probs[:3])  # validated, and row i is row i whatever N
    metadata = read_sidecar(big)  # None if the recorded size or SHA-256 did not match
    assert model_sizes(names, metadata)["EleutherAI/pythia-12b"] == {
        "non_embedding_params": 11_327_027_200,
        "total_params": 11_846_072_320,
    }
    assert not list(tmp_path.glob(".*.tmp"))


def test_agreement_with_the_target_rises_with_size():
    position = make_dataset.log_size_position([n for _, n, _ in make_dataset.PYTHIA])
    probs = make_dataset.chunk_probs(np.random.default_rng(0), 200, position, 2000)
    top1 = probs.argmax(axis=2)
    agreement = (top1[:, :-1] == top1[:, -1:]).mean(axis=0)
    assert agreement[0] + 0.2 < agreement[-1]
    assert np.all(np.diff(agreement[[0, 2, 5]]) > 0)
    # Pooling the inputs beats the largest one: their noises are independent.
    assert (probs[:, :-1].sum(axis=1).argmax(axis=1) == top1[:, -1]).mean() > agreement[-1]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_measure_counts_anonymous_memory_of_the_child_and_its_children():
    grandchild = "import time; b = bytearray(300_000_000); time.sleep(0.5)"
    run, stdout = scale.measure(
        python(
            f"import subprocess, sys; print('hi'); subprocess.run([sys.executable, '-c', {grandchild!r}]); sys.exit(3)"
        )
    )
    assert run.returncode == 3 and stdout == "hi\n"
    assert 300 * MB < run.peak_anon < 400 * MB
    assert run.max_rss >= 300 * MB  # the kernel's peak includes the waited-for grandchild


def test_measure_leaves_out_file_backed_pages_of_a_map(tmp_path):
    data = tmp_path / "data.bin"
    with open(data, "wb") as f:
        f.truncate(200 * MB)
    code = (
        f"import mmap, time; f = open({str(data)!r}, 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); "
        f"sum(m[i] for i in range(0, len(m), 4096)); time.sleep(0.5)"
    )
    run, _ = scale.measure(python(code))
    assert run.returncode == 0
    assert run.peak_file > 190 * MB and run.peak_anon < 50 * MB


def test_strategy_seconds_from_json_or_the_leaderboard(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "datasets": [
                    {"strategies": [{"name": "largest", "seconds": 0.25}, {"name": "loglinear", "seconds": 39.5}]}
                ]
            }
        )
    )
    assert scale.strategy_seconds(results, "") == {"largest": 0.25, "loglinear": 39.5}
    leaderboard = """x.pkl: 110 prefixes, 6 input models
  strategy      top-1  95% CI                n  seconds  vs top2-average   emergent
  top2-average  0.855  [0.782, 0.918]    110    0.072  reference         0/8
  loglinear     0.827  [0.755, 0.891]    110    2.791  +1/-4 p=0.38      0/8
  reference: top2-average, the best here of the built-in heuristics
"""
    assert scale.strategy_seconds(tmp_path / "missing.json", leaderboard) == {"top2-average": 0.072, "loglinear": 2.791}


def test_run_scale_deletes_what_it_generated_unless_kept_and_reuses_what_was_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "challenge_command", lambda dataset, json_path, extra: python("print('ok')"))
    lines = scale.run_scale([3], tmp_path, repeat=2)
    assert len([line for line in lines if line.startswith("| 3 | ")]) == 2
    assert list(tmp_path.iterdir()) == []
    lines = scale.run_scale([3], tmp_path, keep=True)
    assert any(line.startswith("Generating the datasets") for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-3-seed0.json", "synthetic-3-seed0.pkl"]
    lines = scale.run_scale([3], tmp_path)  # reused, and left as found
    assert not any(line.startswith("Generating the datasets") for line in lines)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_file_cut_short_is_written_again_and_the_expected_time_is_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scale, "challenge_command", lambda dataset, json_path, extra: python("print('ok')"))
    scale.run_scale([3], tmp_path, keep=True)
    assert "N=3: expect about 0 min on 2 cores (writing 0.0 GB, 1 run)" in capsys.readouterr().err
    pkl = tmp_path / "synthetic-3-seed0.pkl"
    with open(pkl, "r+b") as f:  # as a copy killed halfway would leave it
        f.truncate(pkl.stat().st_size // 2)
    assert not scale.reusable(3, tmp_path, 0)
    lines = scale.run_scale([3], tmp_path, keep=True)
    assert any(line.startswith("Generating the datasets") for line in lines)  # written again, not reused
    assert scale.reusable(3, tmp_path, 0)
    assert scale.expected_seconds(10_000, 2, reused=True) == 10 * 2 * scale.RUN_SECONDS_PER_1000
