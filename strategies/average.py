"""Argmax of the input models' mean distribution (the original challenge's average strategy)."""

import numpy as np

from strategies import register


@register("average")
def average(sentences, model_names, target_model_name, probs_per_sentences):
    """Argmax of the mean probability over all input models."""
    # Summing in float32 gives the mean's argmax without rounding the mean back to float16.
    return probs_per_sentences.sum(axis=1, dtype=np.float32).argmax(axis=1)
