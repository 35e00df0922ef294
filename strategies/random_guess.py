"""Baseline: a uniformly random token per sentence (as the original challenge's random strategy)."""

import numpy as np

from strategies import register


@register("random", reads=())
def random_guess(sentences, model_names, target_model_name, probs_per_sentences):
    """A uniformly random token id; challenge.py seeds numpy's global generator with --seed."""
    return np.random.randint(0, probs_per_sentences.shape[2], size=len(sentences))
