"""The original challenge's preprocessing loop: the reference the project's batched path is checked against.

One prefix at a time, no padding, logits at every position over the full (padded) vocabulary, the
softmax of the last position's first `vocab_size` logits, rows gathered in a float64 host array.
`benchmarks.bench` times it against `harness.models.inference.next_token_probs`, and
`tests/test_preprocess.py` checks that the batched rows equal its rows.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def original_loop(
    model: torch.nn.Module, token_ids: list[list[int]], vocab_size: int, device: str = "cpu"
) -> np.ndarray:
    """Next-token probabilities (prefixes x vocab_size, float64) of `model`, one prefix per forward pass."""
    out = np.zeros((len(token_ids), vocab_size), dtype=np.float64)
    for i, ids in enumerate(token_ids):
        logits = model(torch.tensor([ids], device=device)).logits  # every position, full padded vocabulary
        out[i] = torch.softmax(logits[0, -1, :vocab_size].float(), dim=-1).cpu().numpy()
    return out
