"""The streamed log-linear fit: hand-worked Newton terms of both objectives (the target's top-1, its
whole distribution), and agreement with the whole-array fit it replaced, whatever the chunk size.

numpy only (no torch): these run in the numpy-1.x CI job too.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.scoring.learned import TrainingSplit
from harness.scoring.top1 import top1
from strategies import loglinear
from strategies.loglinear import (
    FLOOR,
    L2,
    fit_weights,
    log_probs,
    newton_terms,
    pooled_logits,
    pooled_softmax,
    pooled_top1,
)

LOG3 = float(np.log(3))


def reference_fit(probs: np.ndarray, target_top1: np.ndarray, l2: float = L2) -> np.ndarray:
    """The whole-array fit as it was before streaming (commit d194e7a): every training prefix's float32
    log-probabilities at once, the same start, objective, stopping rule and backtracking."""
    logp = np.log(np.maximum(probs.astype(np.float32), FLOOR)).transpose(1, 0, 2).copy()
    m, n, v = logp.shape
    flat = logp.reshape(m, n * v)
    at_target = logp[:, np.arange(n), target_top1]

    def objective(w):
        z = (w.astype(np.float32) @ flat).reshape(n, v)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float((z[np.arange(n), target_top1] - log_norm).mean() - l2 / 2 * w @ w), z - log_norm[:, None]

    w = np.full(m, 1.0 / m)
    value, log_s = objective(w)
    for _ in range(loglinear.MAX_STEPS):
        weighted = flat * np.exp(log_s).reshape(n * v)
        expected = weighted.reshape(m, n, v).sum(axis=2)
        gradient = (at_target - expected).mean(axis=1) - l2 * w
        hessian = -(weighted @ flat.T - expected @ expected.T) / n - l2 * np.eye(m)
        step = np.linalg.solve(hessian, -gradient)
        if gradient @ step < 1e-9:
            break
        for scale in 0.5 ** np.arange(10):
            new_value, new_log_s = objective(w + scale * step)
            if new_value > value:
                break
        else:
            break
        w, value, log_s = w + scale * step, new_value, new_log_s
    return w


def relative_difference(weights: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference, relative to the largest weight (the pool's scale)."""
    return float(np.abs(weights - reference).max() / np.abs(reference).max())


def split(
    probs: np.ndarray, target_top1: np.ndarray, chunk_size: int | None = None, target_probs: np.ndarray | None = None
) -> TrainingSplit:
    n, m, v = probs.shape
    target_probs = np.zeros((n, v), dtype=np.float16) if target_probs is None else target_probs
    return TrainingSplit.from_arrays(
        [f"prefix {i}" for i in range(n)],
        [f"m{j}" for j in range(m)],
        "target",
        probs,
        target_probs,
        target_top1,
        chunk_size,
    )


def peaked(n: int, models: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float16 softmaxes of Gaussian logits (sharper for later models), and a target top-1 that is the
    argmax of a noisy log-linear pool of them with uneven weights."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, models, vocab)) * np.linspace(1, 3, models)[None, :, None]
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs = (probs / probs.sum(axis=2, keepdims=True)).astype(np.float16)
    pool = np.linspace(-0.5, 1.5, models) @ logits + rng.normal(size=(n, vocab))
    return probs, pool.argmax(axis=1)


def test_the_log_table_is_log_of_every_float16_floored():
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        expected = np.log(np.maximum(every.astype(np.float32), np.float32(FLOOR)))
    assert np.array_equal(loglinear.LOG_TABLE, expected, equal_nan=True)
    probs = np.array([[[0.0, -0.0, 2**-24, 0.5, 1.0]]], dtype=np.float16)
    assert log_probs(probs).shape == (1, 1, 5)  # (models, prefixes, vocabulary)
    assert log_probs(probs)[0, 0] == pytest.approx([-24 * np.log(2)] * 3 + [-np.log(2), 0.0], rel=1e-6)


# Two models over two tokens; the target's top-1 is always token 0, model a's top-1: a is always right.
RIGHT = np.array([0.75, 0.25], dtype=np.float16)
WRONG = np.array([0.25, 0.75], dtype=np.float16)


def test_newton_terms_by_hand_at_zero_weights():
    probs = np.tile(np.stack([RIGHT, WRONG]), (5, 1, 1))  # (5 prefixes, 2 models, 2 tokens)
    value, gradient, hessian = newton_terms(split(probs, np.zeros(5, dtype=np.int64), 2).chunks(), np.zeros(2))
    # w = 0: the pool is uniform, s = (1/2, 1/2); log p_a = (log 3/4, log 1/4), log p_b = (log 1/4, log 3/4).
    assert value == pytest.approx(np.log(0.5))
    # log p_a[0] - E_s[log p_a] = (log 3/4 - log 1/4) / 2 = log 3 / 2; the reverse for b.
    assert gradient == pytest.approx([LOG3 / 2, -LOG3 / 2])
    # -Cov_s(log p_j, log p_k): Var_s(log p_a) = (log 3 / 2)^2 and log p_b = const - log p_a.
    var = (LOG3 / 2) ** 2
    assert hessian == pytest.approx(-np.array([[var, -var], [-var, var]]) - L2 * np.eye(2))


def test_the_fit_when_one_model_is_always_right():
    probs = np.tile(np.stack([RIGHT, WRONG]), (5, 1, 1))
    weights = fit_weights(split(probs, np.zeros(5, dtype=np.int64), 2).chunks, 2)
    # By symmetry w = (a, -a); the pool's log-odds of token 0 are 2a log 3, so the objective is
    # log sigmoid(2a log 3) - l2 a^2, maximal where log 3 * sigmoid(-2a log 3) = l2 a: bisect.
    low, high = 0.0, 100.0
    for _ in range(100):
        a = (low + high) / 2
        low, high = (a, high) if LOG3 / (1 + np.exp(2 * a * LOG3)) > L2 * a else (low, a)
    # Newton stops once it could gain less than 1e-9; the objective is flat here (curvature about
    # 0.01 along (1, -1)), so up to sqrt(2e-9 / 0.01) ~ 5e-4 of the way may be left (the whole-array
    # fit stops 4e-4 short; this one goes on, as its decrement is rounded differently).
    assert weights == pytest.approx([a, -a], abs=5e-4)
    assert a > 2  # the L2 penalty alone keeps it finite
    assert top1(pooled_softmax(probs, weights)).tolist() == [0] * 5


@pytest.fixture(scope="module")
def dataset():
    return peaked(n=60, models=4, vocab=300, seed=7)


def test_a_streamed_fit_matches_the_whole_array_fit_at_any_chunk_size(dataset):
    probs, target_top1 = dataset
    reference = reference_fit(probs, target_top1)
    fits = {size: fit_weights(split(probs, target_top1, size).chunks, 4) for size in (1, 7, len(probs))}
    for size, weights in fits.items():
        # The reference sums in float32, a streamed fit per prefix in float32, then in float64 (3e-7 here).
        assert relative_difference(weights, reference) < 2e-6, size
        assert relative_difference(weights, fits[1]) < 1e-6, size
        assert np.array_equal(top1(pooled_softmax(probs, weights)), top1(pooled_softmax(probs, reference))), size
    assert np.abs(reference).max() > 0.5 and np.ptp(reference) > 0.5  # a real fit, far from the start


def test_threads_do_not_change_the_fit(dataset, monkeypatch):
    probs, target_top1 = dataset
    weights = fit_weights(split(probs, target_top1, 7).chunks, 4)
    monkeypatch.setattr(loglinear, "THREADS", 1)
    assert np.array_equal(fit_weights(split(probs, target_top1, 7).chunks, 4), weights)


def test_prediction_is_row_wise_and_matches_the_whole_array_pool(dataset, monkeypatch):
    probs, _ = dataset
    weights = np.array([-0.4, 0.2, 0.7, 1.3])
    whole = pooled_logits(np.log(np.maximum(probs.astype(np.float32), FLOOR)).transpose(1, 0, 2), weights)
    whole = np.exp(whole - whole.max(axis=1, keepdims=True))
    monkeypatch.setattr(loglinear, "BLOCK_BYTES", 1)  # one prefix per block
    pooled = pooled_softmax(probs, weights)
    assert pooled.dtype == np.float32 and pooled == pytest.approx(whole / whole.sum(axis=1, keepdims=True), rel=1e-5)
    assert np.array_equal(top1(pooled), whole.argmax(axis=1))
    assert np.array_equal(
        np.concatenate([pooled_softmax(probs[:13], weights), pooled_softmax(probs[13:], weights)]), pooled
    )


def test_the_registered_strategy_fits_from_chunks_and_keeps_its_weights(dataset):
    from strategies import REGISTRY

    probs, target_top1 = dataset
    predict = REGISTRY["loglinear"].fn(split(probs[:40], target_top1[:40], 9))
    assert relative_difference(predict.weights, reference_fit(probs[:40], target_top1[:40])) < 2e-6
    guesses = predict([f"prefix {i}" for i in range(40, 60)], ["m0", "m1", "m2", "m3"], "target", probs[40:])
    assert np.array_equal(guesses, top1(pooled_softmax(probs[40:], predict.weights)))  # ids: the pool's top-1
    ce = REGISTRY["loglinear-ce"].fn(split(probs[:40], target_top1[:40], 9, target_probs=probs[:40, -1]))
    pooled = ce([f"prefix {i}" for i in range(40, 60)], ["m0", "m1", "m2", "m3"], "target", probs[40:])
    assert np.array_equal(pooled, pooled_softmax(probs[40:], ce.weights))  # loglinear-ce: the distribution


def test_a_warm_start_from_a_sample_reaches_the_whole_splits_maximum_in_fewer_passes(dataset, monkeypatch):
    from strategies import REGISTRY

    probs, target_top1 = dataset
    real_terms, passes = loglinear.newton_terms, []

    def counting(chunks, *args):  # each call is one pass: note how many prefixes it read
        chunks = list(chunks)
        passes.append(sum(len(chunk.target_top1) for chunk in chunks))
        return real_terms(chunks, *args)

    monkeypatch.setattr(loglinear, "newton_terms", counting)
    cold = fit_weights(split(probs, target_top1, 7).chunks, 4)
    cold_passes, passes[:] = len(passes), []
    monkeypatch.setattr(loglinear, "WARM_START", 20)
    warm = REGISTRY["loglinear"].fn(split(probs, target_top1, 7)).weights
    assert set(passes) == {20, len(probs)}  # the sample's fit, then the whole split's
    # The same maximum, to Newton's tolerance (it stops once it could gain less than 1e-9).
    value = lambda w: real_terms(split(probs, target_top1).chunks(), w)[0]
    assert abs(value(warm) - value(cold)) < 1e-9 and relative_difference(warm, cold) < 1e-4
    assert np.array_equal(pooled_top1(probs, warm), pooled_top1(probs, cold))
    assert passes.count(len(probs)) < cold_passes


# The distribution objective (`loglinear-ce`): mean_i sum_k t_ik log softmax(z_i)_k - l2/2 |w|^2.


def test_distribution_terms_by_hand_on_one_prefix():
    probs = np.stack([RIGHT, WRONG])[None]  # (1 prefix, 2 models, 2 tokens)
    target = np.array([[99 / 128, 33 / 128]], dtype=np.float16)  # sums to 1.03: normalized, (3/4, 1/4)
    chunks = split(probs, np.zeros(1, dtype=np.int64), target_probs=target).chunks
    # w = (2, 0): the pool is (9/16, 1/16) normalized, s = (0.9, 0.1).
    value, gradient, hessian = newton_terms(chunks(), np.array([2.0, 0.0]), objective="distribution")
    assert value == pytest.approx(0.75 * np.log(0.9) + 0.25 * np.log(0.1) - L2 / 2 * 4)
    # E_t[log p_a] - E_s[log p_a] = (0.75 - 0.9) log 3/4 + (0.25 - 0.1) log 1/4 = -0.15 log 3; the reverse for b.
    assert gradient == pytest.approx([-0.15 * LOG3 - 2 * L2, 0.15 * LOG3])
    var = 0.9 * 0.1 * LOG3**2  # Var_s(log p_a); log p_b = log 3/16 - log p_a
    assert hessian == pytest.approx(-np.array([[var, -var], [-var, var]]) - L2 * np.eye(2))
    # The top-1 objective at the same weights: the same Hessian, log s[0] instead of E_t[log s].
    top1_value, _, top1_hessian = newton_terms(chunks(), np.array([2.0, 0.0]))
    assert top1_value == pytest.approx(np.log(0.9) - L2 / 2 * 4)
    assert np.array_equal(top1_hessian, hessian)
    # w = (1, 0): the pool is model a's distribution, which is the target's: only the penalty pulls.
    value, gradient, _ = newton_terms(chunks(), np.array([1.0, 0.0]), objective="distribution")
    assert value == pytest.approx(0.75 * np.log(0.75) + 0.25 * np.log(0.25) - L2 / 2)
    assert gradient == pytest.approx([-L2, 0.0], abs=1e-7)


def tiny(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """5 prefixes of 3 models over 4 tokens, and a target distribution, all float16 without zeros."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(5, 4, 4)) * 1.5
    probs = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).astype(np.float16)
    return probs[:, :3], probs[:, 3]


def test_the_distribution_gradient_and_hessian_are_the_objectives_derivatives():
    probs, target = tiny(seed=1)
    chunks = split(probs, top1(target), 2, target).chunks
    terms = lambda w: newton_terms(chunks(), w, objective="distribution")  # noqa: E731
    w = np.array([0.3, -0.2, 0.8])
    _, gradient, hessian = terms(w)
    eye = np.eye(3)
    # Central differences: the value is summed in float64 (1e-5 steps), the gradient in float32 (1e-3 steps).
    numeric_gradient = [(terms(w + 1e-5 * e)[0] - terms(w - 1e-5 * e)[0]) / 2e-5 for e in eye]
    numeric_hessian = np.array([(terms(w + 1e-3 * e)[1] - terms(w - 1e-3 * e)[1]) / 2e-3 for e in eye])
    assert gradient == pytest.approx(numeric_gradient, abs=1e-6)
    assert hessian == pytest.approx(numeric_hessian, abs=1e-4)
    assert np.abs(gradient).max() > 0.05  # far from the maximum: the test compares something


def test_a_target_that_is_an_input_model_is_fitted_by_that_model_alone():
    probs, _ = tiny(seed=2)
    for j in range(3):
        target = probs[:, j]  # float16: its rows sum to 1 within rounding only
        weights = fit_weights(split(probs, top1(target), 2, target).chunks, 3, l2=1e-9, objective="distribution")
        assert weights == pytest.approx(np.eye(3)[j], abs=1e-4), j
        t = target.astype(np.float64) / target.astype(np.float64).sum(axis=1, keepdims=True)
        kl = (t * (np.log(t) - np.log(pooled_softmax(probs, weights)))).sum(axis=1)
        assert np.abs(kl).max() < 1e-6, j


def test_the_objective_is_checked():
    with pytest.raises(ValueError, match='objective must be "top1" or "distribution", got \'kl\''):
        newton_terms(iter(()), np.zeros(2), objective="kl")
