"""Pilot check for suite v3: 0-shot 2-digit addition accuracy of trained models on held-out pairs,
in lm-evaluation-harness's arithmetic_2da format ("Question: What is A plus B?\nAnswer:", gold " C").

    python3 -m suite.pilot_eval build/pilot/models/*
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from suite.arithmetic import held_out_pairs


def accuracy(model_dir: str, pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """(greedy exact match, mean log-likelihood of the answer) over `pairs`, teacher-forced."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    hits, logliks = [], []
    for a, b in pairs:
        prompt = tokenizer(f"Question: What is {a} plus {b}?\nAnswer:")["input_ids"]
        answer = tokenizer(f" {a + b}")["input_ids"]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = model(ids).logits[0, len(prompt) - 1:-1].log_softmax(-1)
        target = torch.tensor(answer)
        hits.append(bool((logp.argmax(-1) == target).all()))
        logliks.append(float(logp[torch.arange(len(answer)), target].sum()))
    return float(np.mean(hits)), float(np.mean(logliks))


if __name__ == "__main__":
    held = sorted(held_out_pairs())
    rng = np.random.default_rng(0)
    pairs = [held[i] for i in rng.choice(len(held), size=300, replace=False)]
    for model_dir in sys.argv[1:]:
        acc, loglik = accuracy(model_dir, pairs)
        print(f"{model_dir}: held-out 2-digit addition {acc:.1%}, answer log-likelihood {loglik:.2f}")
