"""benchmarks/speculative.py on the bundled suite's two smallest GPT-NeoX models, offline: assisted greedy
decoding reproduces the target's own output, the measured tokens per pass are the replay of the
measured agreement, and bad input is one line and exit 1."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_script

pytest.importorskip("torch")
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: E402

from harness.data.tokenizer import SUITE_MODELS  # noqa: E402

DRAFTER, TARGET = "suite-0.0066m", "suite-0.025m"


def test_assisted_decoding_reproduces_the_target_and_matches_its_replay(tmp_path):
    out = tmp_path / "spec.json"
    run_script("benchmarks/speculative.py", "--models", DRAFTER, TARGET, "--prompts", 3, "--new-tokens", 12,
               "--gamma", 3, "--json", out, "--report", tmp_path / "pictures")
    result = json.loads(out.read_text())
    [row] = result["drafters"]
    greedy, sampling = row["greedy"], row["sampling"]
    assert greedy["identical_outputs"] == greedy["prompts"] == 3
    # One verifier round per target pass, so the measured tokens per pass are exactly what replaying the
    # rounds on the per-position agreement gives; the i.i.d. formula only approximates that.
    assert greedy["measured_tokens_per_pass"] == pytest.approx(greedy["replayed_tokens_per_pass"])
    assert 1 <= greedy["measured_tokens_per_pass"] <= 4 and 1 <= sampling["measured_tokens_per_pass"] <= 4
    assert 0 <= sampling["measured_acceptance"] <= 1 and 0 < sampling["alpha"] < 1
    assert row["cost"] > 0 and result["gamma"] == 3 and result["target"] == TARGET
    assert (tmp_path / "pictures" / "speculative-measured.png").stat().st_size > 0


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    other = tmp_path / "other-vocabulary"
    config = GPTNeoXConfig(vocab_size=4160, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=128)
    GPTNeoXForCausalLM(config).save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SUITE_MODELS / TARGET / name, other / name)
    for args, message in ((["--gamma", 0], "error: --gamma must be at least 1 (tokens drafted per round), got 0"),
                          (["--models", other, TARGET], "do not share one vocabulary"),
                          (["--models", tmp_path / "missing", TARGET], "missing")):
        result = run_script("benchmarks/speculative.py", *(args if args[0] == "--models" else
                                                           ["--models", DRAFTER, TARGET, *args]),
                            "--prompts", 1, "--new-tokens", 4, check=False)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
