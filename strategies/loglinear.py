"""A learned log-linear pool: the distribution softmax_k(sum_j w_j log p_jk), one weight per input model.

`loglinear` fits the weights on a training split by maximizing the likelihood of the target's top-1
token under the pooled softmax, with an L2 penalty; `loglinear-ce` by maximizing the mean
log-likelihood of the target's whole distribution (its cross-entropy, so the fit minimizes
KL(target || pool)). Both objectives are concave in w, with the same Hessian, so Newton's method
finds their maximum in a few steps, and one fit serves both (`objective=`).

`loglinear` returns the pool's top-1 ids: fitted to the one-hot top-1, its distribution is far too
sharp (KL 4.15 nats on the bundled Wikipedia set, against 0.15-0.21 for the others), and a
temperature fitted afterwards leaves it worse than `top2-average` on GLUE RTE (2.08 against 0.48).
`loglinear-ce` returns the pooled distribution.

The fit streams: each evaluation (the objective, its gradient and Hessian, all at once) is
accumulated over the training split's chunks (`TrainingSplit.chunks()`), so its memory is bounded
by two chunks (the one being summed, the next being read) and not by the number of training
prefixes, at the price of reading the training prefixes once per evaluation. Newton starts from
the maximum on a random sample of WARM_START training prefixes, which lies close to the whole
split's, so the whole split is read a few times (3 or 4) instead of 8-10, and the time is the
sample's fit plus those passes, whatever the number of prefixes; the maximum reached is the whole
split's, as before (to the same tolerance). Inside a chunk, blocks of about 1 MB of float32
(one prefix at Pythia's vocabulary) stay in cache, and run on all CPU cores at once.
float16 probabilities become float32 log-probabilities through a table of all 65,536 float16 bit
patterns: exactly np.log(max(p, FLOOR)), at a fraction of its cost. Prediction is row-wise: a chunk
of any size gives the same distributions.

Also here: `top2-average`, the heuristic it is compared with in the README (the mean of the two
largest input models).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from harness.scoring.metrics import FLOOR  # 2^-24, the smallest float16 subnormal: float16 zeros become log(FLOOR)
from strategies import register

L2 = 1e-3  # penalty on the mean log-likelihood; keeps w finite when one model is decisive
MAX_STEPS = 30
WARM_START = 1_000  # training prefixes of the sample whose maximum starts the whole split's Newton
BLOCK_BYTES = 2**20  # float32 log-probabilities per block (at least one prefix): they stay in cache
THREADS = os.cpu_count() or 1

# log(max(p, FLOOR)) in float32 for every float16 bit pattern (negative values and -0.0 floor too;
# NaN stays NaN, as the inputs are validated before any strategy sees them).
with np.errstate(invalid="ignore"):
    LOG_TABLE = np.log(
        np.maximum(np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32), np.float32(FLOOR))
    )
LOG_TABLE.flags.writeable = False


def log_probs(probs: np.ndarray) -> np.ndarray:
    """float32 log-probabilities of float16 `probs` (prefixes, models, vocabulary), floored at FLOOR,
    as (models, prefixes, vocabulary)."""
    bits = np.asarray(probs, dtype=np.float16).view(np.uint16)
    return np.take(LOG_TABLE, bits.transpose(1, 0, 2), mode="clip")  # every uint16 is an index: no checks


def pooled_logits(logp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_j w_j log p_j as (prefixes, vocabulary), from log-probabilities as (models, prefixes, vocabulary)."""
    m, n, v = logp.shape
    return (weights.astype(np.float32) @ logp.reshape(m, n * v)).reshape(n, v)


def blocks(probs: np.ndarray) -> Iterator[slice]:
    """Consecutive row ranges of `probs` (prefixes, models, vocabulary) of about BLOCK_BYTES as float32."""
    n, m, v = probs.shape
    rows = max(1, BLOCK_BYTES // (m * v * 4))
    return (slice(start, start + rows) for start in range(0, n, rows))


def block_terms(probs: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One block's sums over its prefixes i, in float64, packed in one vector (see `newton_terms`):
    E_t[log softmax(z_i)]; E_t[log p_ij] - E_i[log p_ij]; E_i[log p_ij log p_ik] - E_i[log p_ij] E_i[log p_ik].

    `target` is the target's top-1 ids (b,), where E_t[x] = x[y_i], or its probabilities (b, v),
    where E_t is the mean under the row divided by its sum (float16 rows do not sum to 1 exactly).

    z is summed in float64: in float32 its rounding (about 1e-6 of each pooled logit) makes the
    objective jitter by about 1e-8 between nearby weights, as much as the last Newton steps gain, so
    backtracking would compare noise (and spend up to 10 passes doing it). Every E_i is a sum
    weighted by e = exp(z - max z), divided by the prefix's sum of e. E_i[log p_j] is numpy's pairwise sum: OpenBLAS's
    gemv sums a long row in one float32 accumulator, and that rounding would move the fitted weights
    by about 1e-5. E_i[log p_j log p_k] is a batched gemv: OpenBLAS is slow at an m x m product of
    long rows, and errors in the Hessian only change the path to the maximum, not the maximum."""
    b, m, v = probs.shape
    prefixes = np.arange(b)
    logp = log_probs(probs)  # (m, b, v)
    z = (weights @ logp.reshape(m, b * v)).reshape(b, v)  # float64: see below
    z -= z.max(axis=1, keepdims=True)
    if target.ndim == 1:  # the top-1
        log_lik = z[prefixes, target]
        at_target = logp[:, prefixes, target].T.astype(np.float64)
    else:  # the distribution: sums weighted by it, pairwise like E_i's
        t = target.astype(np.float32)
        t /= t.sum(axis=1, dtype=np.float64, keepdims=True)
        log_lik = (z * t).sum(axis=1)
        at_target = (logp * t).sum(axis=2).T.astype(np.float64)
    e = np.exp(z, out=z)
    mass = e.sum(axis=1)  # sum_k exp(z_k - max z)
    weighted = logp * e.astype(np.float32)
    expected = weighted.sum(axis=2).T / mass[:, None]  # E_i[log p_j], (b, m)
    logp_by_prefix, weighted_by_prefix = logp.transpose(1, 0, 2), weighted.transpose(1, 0, 2)  # (b, m, v) views
    second = np.zeros((m, m))
    for j in range(m):  # row j of the upper triangle of sum_i E_i[log p_j log p_k]
        products = np.matmul(logp_by_prefix[:, j:], weighted_by_prefix[:, j, :, None])[:, :, 0]
        second[j, j:] = (products / mass[:, None]).sum(axis=0)
    second = np.triu(second) + np.triu(second, 1).T
    return np.concatenate(
        [[(log_lik - np.log(mass)).sum()], (at_target - expected).sum(axis=0), (second - expected.T @ expected).ravel()]
    )


def newton_terms(
    chunks: Iterable, weights: np.ndarray, l2: float = L2, objective: str = "top1"
) -> tuple[float, np.ndarray, np.ndarray]:
    """The objective mean_i E_t[log softmax(z_i)] - l2/2 |w|^2 at `weights`, with z_i = sum_j w_j log p_ij,
    with its gradient and Hessian, in one pass over `chunks` (each with `probs_per_sentences` and
    `target_top1`, or `target_probs` for the distribution objective).

    E_t is the target's: objective="top1" takes the log-likelihood of its top-1 y_i (E_t[x] = x[y_i]);
    objective="distribution" the mean under its distribution t_i, so the objective is minus the
    cross-entropy H(t_i, s_i) = H(t_i) + KL(t_i || s_i), and maximizing it minimizes the KL. With
    s_i = softmax(z_i) the pooled distribution of prefix i and E_i[.] the mean under it:
      gradient_j = mean_i (E_t[log p_ij] - E_i[log p_ij])                          - l2 w_j
      Hessian_jk = -mean_i (E_i[log p_ij log p_ik] - E_i[log p_ij] E_i[log p_ik])  - l2 [j = k]
    (the Hessian does not depend on the target, as E_t is linear in z).
    Blocks of a chunk run on THREADS threads (numpy releases the GIL), while the next chunk is read;
    their sums are added in order, so the result does not depend on the threads' timing."""
    if objective not in ("top1", "distribution"):
        raise ValueError(f'objective must be "top1" or "distribution", got {objective!r}')
    m = len(weights)
    sums, total, pending = np.zeros(1 + m + m * m), 0, []
    with ThreadPoolExecutor(THREADS) as pool:
        for chunk in chunks:
            probs = chunk.probs_per_sentences
            target = np.asarray(chunk.target_top1 if objective == "top1" else chunk.target_probs)
            for done in pending:  # at most two chunks in memory: this one and the one being summed
                sums += done.result()
            pending = [pool.submit(block_terms, probs[rows], target[rows], weights) for rows in blocks(probs)]
            total += len(probs)
        for done in pending:
            sums += done.result()
    value = sums[0] / total - l2 / 2 * weights @ weights
    gradient = sums[1 : 1 + m] / total - l2 * weights
    hessian = -sums[1 + m :].reshape(m, m) / total - l2 * np.eye(m)
    return value, gradient, hessian


def fit_weights(
    chunks: Callable[[], Iterable],
    num_models: int,
    l2: float = L2,
    objective: str = "top1",
    start: np.ndarray | None = None,
) -> np.ndarray:
    """The weights maximizing `newton_terms`'s objective (Newton), from `start` (default: the
    geometric mean).

    `chunks()` yields the training prefixes anew on every call, a chunk at a time, each chunk with
    `probs_per_sentences` (C, num_models, V) float16 and `target_top1` (C,) or `target_probs` (C, V):
    `TrainingSplit.chunks`. Every evaluation reads them all once."""
    w = np.full(num_models, 1.0 / num_models) if start is None else np.asarray(start, dtype=np.float64)
    value, gradient, hessian = newton_terms(chunks(), w, l2, objective)
    for _ in range(MAX_STEPS):
        step = np.linalg.solve(hessian, -gradient)
        if gradient @ step < 1e-9:  # Newton decrement: the objective cannot rise by more than this
            break
        # Backtracking keeps every step an ascent step; a rejected step costs one more pass.
        for scale in 0.5 ** np.arange(10):
            new_value, new_gradient, new_hessian = newton_terms(chunks(), w + scale * step, l2, objective)
            if new_value > value:
                break
        else:
            break
        w, value, gradient, hessian = w + scale * step, new_value, new_gradient, new_hessian
    return w


def pooled_softmax(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """softmax_k(sum_j w_j log p_jk) as (prefixes, vocabulary) float32, for every prefix of `probs`
    (prefixes, models, vocabulary), block by block (the temporaries stay in cache).

    Its argmax is the pooled logits' (first on ties), unless two of them lie within float32
    rounding (about 1e-7) of each other, where exp or the division can round them to one value."""
    n, _, v = probs.shape
    out = np.empty((n, v), dtype=np.float32)
    for rows in blocks(probs):
        z = out[rows]  # a view: exponentiated and normalized in place
        z[...] = pooled_logits(log_probs(probs[rows]), weights)
        z -= z.max(axis=1, keepdims=True)  # stable: the largest term is exp(0) = 1
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    return out


def pooled_top1(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """argmax_k sum_j w_j log p_jk (first on ties) for every prefix of `probs`, block by block."""
    return np.concatenate(
        [pooled_logits(log_probs(probs[rows]), weights).argmax(axis=1) for rows in blocks(probs)]
        or [np.zeros(0, dtype=np.int64)]
    )


def fit_pool(train, objective: str) -> np.ndarray:
    """The pool's weights on `train`: Newton on the whole split, from the maximum on a sample of it."""
    m = len(train.model_names)
    sample = train.sample(WARM_START)
    start = fit_weights(sample.chunks, m, objective=objective) if sample is not train else None
    return fit_weights(train.chunks, m, objective=objective, start=start)


@register("loglinear", learned=True)
def fit_loglinear(train):
    """Learned: the top-1 of sum_j w_j log p_j, w fitted to the target's top-1 on the training split (L2, Newton)."""
    weights = fit_pool(train, "top1")

    def loglinear(sentences, model_names, target_model_name, probs_per_sentences):
        return pooled_top1(probs_per_sentences, weights)

    loglinear.weights = weights  # for a researcher who wants to look
    return loglinear


@register("loglinear-ce", learned=True)
def fit_loglinear_ce(train):
    """Learned: softmax of sum_j w_j log p_j, w fitted to the target's whole distribution (cross-entropy = min KL)."""
    weights = fit_pool(train, "distribution")

    def loglinear_ce(sentences, model_names, target_model_name, probs_per_sentences):
        return pooled_softmax(probs_per_sentences, weights)

    loglinear_ce.weights = weights
    return loglinear_ce


@register("top2-average", reads=(-2, -1))
def top2_average(sentences, model_names, target_model_name, probs_per_sentences):
    """The mean of the two largest input models (float32; the one input model's, when there is one)."""
    # Summed in float32 as before; halving is exact, so the argmax is the sum's.
    two = probs_per_sentences[:, -2:]
    return two.sum(axis=1, dtype=np.float32) / np.float32(two.shape[1])
