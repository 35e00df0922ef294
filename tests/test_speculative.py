"""benchmarks/speculative.py on the bundled suite's two smallest GPT-NeoX models, offline: what it measures
(tokens per target pass, acceptance, agreement, alpha) is what replaying the models by hand gives, assisted
greedy decoding reproduces the target's own output, and bad input is one line and exit 1 (bad flags,
exit 2: tests/test_cli_vocabulary.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import ROOT, run_script
from tokenizers import Tokenizer
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from harness.data.tokenizer import SUITE_MODELS

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch

DRAFTER, TARGET = "suite-0.0066m", "suite-0.025m"
PROMPTS, NEW_TOKENS, GAMMA = 3, 12, 3


def by_hand(twin) -> dict:
    """What the benchmark must measure, worked out here a second way: the target's greedy text decoded
    token by token (a whole forward pass per token, no KV cache, no `generate`), each drafter's greedy
    draft at every position of it, and the rounds of assisted decoding replayed on those; `alpha` on the
    target's own samples as sum_x min(p, q) in float64. Drafters: the small model, `twin` (a copy of
    the target) and top2-average (the mean of their distributions, as `MixtureDrafter` drafts)."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.drafting.generation import decode
    from harness.models.inference import tokenize

    small, target, twin = (
        AutoModelForCausalLM.from_pretrained(path).eval()
        for path in (SUITE_MODELS / DRAFTER, SUITE_MODELS / TARGET, twin)
    )
    tokenizer = Tokenizer.from_file(str(SUITE_MODELS / TARGET / "tokenizer.json"))
    vocab, eos = tokenizer.get_vocab_size(with_added_tokens=True), target.config.eos_token_id
    lines = (ROOT / "data" / "prefixes" / "wikipedia-test.jsonl").read_text().splitlines()  # the benchmark's default
    prompts = tokenize(tokenizer, [json.loads(line)["text"] for line in lines[:PROMPTS]])

    def probs(model, ids: list[int]) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(model(torch.tensor([ids])).logits[0].double(), -1).numpy()

    def greedy(p: np.ndarray) -> np.ndarray:
        p = p.copy()
        p[..., eos] = -1  # decode asks for exactly NEW_TOKENS tokens: EOS is suppressed, for drafts too
        return p.argmax(-1)

    def drafts(ids: list[int], positions: int) -> dict[str, np.ndarray]:
        """Each drafter's next-token distribution at the last `positions` tokens of `ids`."""
        q = {DRAFTER: probs(small, ids)[-positions:], "twin": probs(twin, ids)[-positions:]}
        return {**q, "top2-average": (q[DRAFTER] + q["twin"]) / 2}

    agree = {name: [] for name in (DRAFTER, "twin", "top2-average")}
    for ids in prompts:
        text = list(ids)
        for _ in range(NEW_TOKENS):
            text.append(int(greedy(probs(target, text)[-1])))
        for name, q in drafts(text[:-1], NEW_TOKENS).items():
            agree[name].append(greedy(q) == np.array(text[len(ids) :]))
    sampled = decode(target, prompts, NEW_TOKENS, sample=True, seed=0)  # the target's samples, seeds 0, 1, 2
    alpha = {name: [] for name in agree}
    for ids, new in zip(prompts, sampled.new_ids):
        text = ids + new[:-1]
        p = probs(target, text)[-NEW_TOKENS:, :vocab]
        for name, q in drafts(text, NEW_TOKENS).items():
            q = q[:, :vocab] / q[:, :vocab].sum(1, keepdims=True)
            alpha[name] += np.minimum(q, p / p.sum(1, keepdims=True)).sum(1).tolist()
    return {
        name: {"rounds": replayed_rounds(bits), "agreement": float(np.mean(bits)), "alpha": float(np.mean(alpha[name]))}
        for name, bits in agree.items()
    }


def replayed_rounds(agree: list[np.ndarray]) -> list[tuple[int, int]]:
    """(drafted, accepted) per round of greedy assisted decoding, prompt after prompt: a round drafts
    GAMMA tokens, fewer where fewer than GAMMA + 1 are left to generate (the target's own token ends
    every round), and the target accepts them up to the first that is not its top-1."""
    rounds = []
    for bits in agree:
        done = 0
        while done < NEW_TOKENS:
            drafted = min(GAMMA, NEW_TOKENS - done - 1)
            accepted = next((i for i in range(drafted) if not bits[done + i]), drafted)
            rounds.append((drafted, accepted))
            done += accepted + 1
    return rounds


def test_assisted_decoding_measures_what_replaying_the_models_by_hand_gives(tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(SUITE_MODELS / TARGET, twin)
    out = tmp_path / "spec.json"
    run_script(
        "benchmarks.speculative",
        "--models",
        DRAFTER,
        twin,
        TARGET,
        "--num-prefixes",
        PROMPTS,
        "--new-tokens",
        NEW_TOKENS,
        "--gamma",
        GAMMA,
        "--device",
        "cpu",
        "--json",
        out,
        "--report",
        tmp_path / "pictures",
    )
    result = json.loads(out.read_text())
    assert result["gamma"] == GAMMA and result["target"] == TARGET
    rows = {row["drafter"]: row for row in result["drafters"]}
    assert list(rows) == [DRAFTER, str(twin), "top2-average"]
    expected = by_hand(twin)
    tokens = PROMPTS * NEW_TOKENS
    for name, mine in expected.items():
        row = rows[str(twin) if name == "twin" else name]
        greedy, sampling, cost = row["greedy"], row["sampling"], row["cost"]
        assert greedy["identical_outputs"] == greedy["prompts"] == PROMPTS, name
        # Exact: each is a ratio of the same integers (tokens over target passes, one pass a round; accepted
        # drafts over those the verifier looked at: all accepted ones, and the first rejected of a round).
        rounds = mine["rounds"]
        accepted, looked = sum(a for _, a in rounds), sum(a + (a < d) for d, a in rounds)
        assert sum(a + 1 for _, a in rounds) == tokens
        assert greedy["measured_tokens_per_pass"] == tokens / len(rounds), name
        assert greedy["measured_acceptance"] == accepted / looked, name
        assert greedy["agreement"] == mine["agreement"], name  # k of the 36 positions, both ways
        assert greedy["replayed_tokens_per_pass"] == pytest.approx(tokens / len(rounds), rel=1e-12)
        # Leviathan et al.'s i.i.d. formula and its price, by hand: (1 - a^(g+1)) / (1 - a), over g c + 1 per round.
        a, s = mine["agreement"], sampling["alpha"]
        predicted = (1 - a ** (GAMMA + 1)) / (1 - a) if a < 1 else GAMMA + 1
        assert greedy["predicted_tokens_per_pass"] == pytest.approx(predicted, rel=1e-12)
        assert greedy["predicted_speedup"] == pytest.approx(predicted / (GAMMA * cost + 1), rel=1e-12)
        assert greedy["round_priced"] == pytest.approx(GAMMA * cost + 1, rel=1e-12)
        assert sampling["predicted_tokens_per_pass"] == pytest.approx((1 - s ** (GAMMA + 1)) / (1 - s), rel=1e-9)
        # The benchmark stores each distribution in float16 and renormalizes it: per distribution at most
        # 2^-11 relative rounding plus 2^-25 per subnormal entry (V = 4000: 6.1e-4 in L1), doubled by the
        # renormalization, for p and for q: 2.5e-3 on sum min(p, q), plus float32 summation (< 1e-4).
        assert sampling["alpha"] == pytest.approx(mine["alpha"], abs=3e-3), name
    # The twin drafts what the target would: every draft accepted, greedy or sampling (accepted with
    # probability min(1, p/q) = 1), so each prompt's 12 tokens take 3 rounds of 3 drafts and the target's own.
    twin_row = rows[str(twin)]
    assert expected["twin"]["rounds"] == [(GAMMA, GAMMA)] * (PROMPTS * NEW_TOKENS // (GAMMA + 1))
    for mode in ("greedy", "sampling"):
        assert twin_row[mode]["measured_tokens_per_pass"] == GAMMA + 1 == 4
        assert twin_row[mode]["measured_acceptance"] == 1
    assert (tmp_path / "pictures" / "speculative-measured.png").stat().st_size > 0


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    other = tmp_path / "other-vocabulary"
    config = GPTNeoXConfig(
        vocab_size=4160,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    GPTNeoXForCausalLM(config).save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SUITE_MODELS / TARGET / name, other / name)
    for models, message in (
        ([other, TARGET], "do not share one vocabulary"),
        ([tmp_path / "missing", TARGET], "missing"),
    ):
        result = run_script(
            "benchmarks.speculative", "--models", *models, "--num-prefixes", 1, "--new-tokens", 4, check=False
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
