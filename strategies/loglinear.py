"""A learned log-linear pool: argmax of sum_j w_j log p_j, one weight per input model.

The weights are fitted on a training split by maximizing the likelihood of the target's top-1
token under the pooled softmax, softmax_k(sum_j w_j log p_jk), with an L2 penalty. That
log-likelihood is concave in w, so Newton's method finds its maximum in a few steps; each step is a
handful of BLAS passes over the (models x prefixes*vocabulary) log-probabilities.

Also here: `top2-average`, the heuristic it is compared with in the README (the mean of the two
largest input models).
"""

from __future__ import annotations

import numpy as np

from strategies import register

FLOOR = 2.0 ** -24  # the smallest float16 subnormal: float16 zeros become log(FLOOR), not -inf
L2 = 1e-3           # penalty on the mean log-likelihood; keeps w finite when one model is decisive
MAX_STEPS = 30


def log_probs(probs: np.ndarray) -> np.ndarray:
    """float32 log-probabilities as (models, prefixes, vocabulary), floored at FLOOR."""
    return np.log(np.maximum(probs.astype(np.float32), FLOOR)).transpose(1, 0, 2).copy()


def pooled_logits(logp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_j w_j log p_j as (prefixes, vocabulary)."""
    m, n, v = logp.shape
    return (weights.astype(np.float32) @ logp.reshape(m, n * v)).reshape(n, v)


def fit_weights(probs: np.ndarray, target_top1: np.ndarray, l2: float = L2) -> np.ndarray:
    """The weights maximizing mean_i log softmax(sum_j w_j log p_ij)[y_i] - l2/2 |w|^2 (Newton)."""
    logp = log_probs(probs)
    m, n, v = logp.shape
    flat = logp.reshape(m, n * v)
    at_target = logp[:, np.arange(n), target_top1]  # (models, prefixes)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = pooled_logits(logp, w)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float((z[np.arange(n), target_top1] - log_norm).mean() - l2 / 2 * w @ w), z - log_norm[:, None]

    w = np.full(m, 1.0 / m)  # start from the geometric mean
    value, log_s = objective(w)
    for _ in range(MAX_STEPS):
        s = np.exp(log_s).reshape(n * v)
        weighted = flat * s                                   # (models, prefixes*vocabulary)
        expected = weighted.reshape(m, n, v).sum(axis=2)      # E_s[log p_j] per prefix
        gradient = (at_target - expected).mean(axis=1) - l2 * w
        hessian = -(weighted @ flat.T - expected @ expected.T) / n - l2 * np.eye(m)
        step = np.linalg.solve(hessian, -gradient)
        if gradient @ step < 1e-9:  # Newton decrement: the objective cannot rise by more than this
            break
        # Backtracking keeps every step an ascent step.
        for scale in 0.5 ** np.arange(10):
            new_value, new_log_s = objective(w + scale * step)
            if new_value > value:
                break
        else:
            break
        w, value, log_s = w + scale * step, new_value, new_log_s
    return w


@register("loglinear", learned=True)
def fit_loglinear(train):
    """Learned: argmax of sum_j w_j log p_j, w fitted on the training split (L2, Newton)."""
    weights = fit_weights(train.probs_per_sentences, train.target_top1)

    def loglinear(sentences, model_names, target_model_name, probs_per_sentences):
        return pooled_logits(log_probs(probs_per_sentences), weights).argmax(axis=1)

    loglinear.weights = weights  # for a researcher who wants to look
    return loglinear


@register("top2-average")
def top2_average(sentences, model_names, target_model_name, probs_per_sentences):
    """Argmax of the mean of the two largest input models."""
    return probs_per_sentences[:, -2:].sum(axis=1, dtype=np.float32).argmax(axis=1)
