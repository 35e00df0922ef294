"""Argmax of the largest input model: its top-1 token is the natural guess for the next size up."""

from strategies import register


@register("largest")
def largest(sentences, model_names, target_model_name, probs_per_sentences):
    """Argmax of the largest input model (the last one: suites list models small to large)."""
    return probs_per_sentences[:, -1].argmax(axis=1)
