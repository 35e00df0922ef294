"""Baseline: always guess token 0 (as the original challenge's dummy strategy)."""

import numpy as np

from strategies import register


@register("dummy", reads=())
def dummy(sentences, model_names, target_model_name, probs_per_sentences):
    """Always token 0: the floor every strategy should beat."""
    return np.zeros(len(sentences), dtype=np.int64)
