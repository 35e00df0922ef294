"""The largest input model's distribution: its top-1 token is the natural guess for the next size up."""

from strategies import register


@register("largest", reads=(-1,))
def largest(sentences, model_names, target_model_name, probs_per_sentences):
    """The largest input model's distribution (the last one: suites list models small to large)."""
    return probs_per_sentences[:, -1]  # a read-only float16 view: no copy
