"""The statistics every score is cited with: bootstrap intervals and paired tests over prefixes.

Top-1 and top-5 are binary per prefix: an accuracy's interval is a percentile bootstrap
(`bootstrap_ci`), and two strategies are compared on the same prefixes by the exact McNemar test
(`paired_comparison`). The continuous metrics (log-loss, KL, alpha) are resampled together, the same
resamples for every strategy and model (`bootstrap_means`), so that any two are compared paired
(`paired_bootstrap`). numpy only.
"""

from __future__ import annotations

import math

import numpy as np

NUM_RESAMPLES = 10_000
RESAMPLE_BLOCK = 2**22  # resample counts per block of `bootstrap_means`: 32 MB of int64


def bootstrap_ci(
    correct: np.ndarray, num_resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy.

    Resampling n outcomes with replacement draws Binomial(n, accuracy) correct ones, so the
    bootstrap distribution is sampled exactly without materialising (resamples x n) indices.
    """
    n = len(correct)
    if n == 0:
        return float("nan"), float("nan")
    resampled = np.random.default_rng(seed).binomial(n, correct.mean(), size=num_resamples) / n
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Strategy A against B on the same prefixes: the prefixes only A gets right (`a_only`), only B
    (`b_only`), and the exact two-sided McNemar p-value.

    Prefixes both get right or both miss say nothing about which is better; under "A and B are
    equally good" each discordant prefix is a fair coin, so p = P(a tail at least as far out as
    min(a_only, b_only)) of Binomial(a_only + b_only, 1/2), doubled and capped at 1.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"paired comparison of {correct_a.shape} and {correct_b.shape} outcomes: not the same prefixes"
        )
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((correct_b & ~correct_a).sum())
    return {"a_only": a_only, "b_only": b_only, "p_value": mcnemar_exact_p(a_only, b_only)}


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: 2 P(X <= min(a_only, b_only)), X ~ Binomial(a_only + b_only, 1/2), at most 1.

    Summed in log space, so it stays accurate (~1e-12) for any number of prefixes without
    big-integer binomials: log C(n, j) = sum over i <= j of log((n - i + 1) / i).
    """
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    i = np.arange(1, k + 1)
    log_pmf = np.concatenate([[0.0], np.cumsum(np.log(n - i + 1) - np.log(i))]) - n * math.log(2)
    top = log_pmf.max()
    return min(1.0, 2 * math.exp(top) * float(np.exp(log_pmf - top).sum()))


def format_p_value(p: float) -> str:
    """A p-value as a reader cites it: two significant digits, scientific below 0.001."""
    return f"{p:.1e}" if p < 0.001 else f"{p:.2g}"


def describe_comparison(comparison: dict) -> str:
    """`+a/-b p=0.28` for a `paired_comparison`: prefixes only A gets right, only B, the exact McNemar p."""
    return f"+{comparison['a_only']}/-{comparison['b_only']} p={format_p_value(comparison['p_value'])}"


def bootstrap_means(values: np.ndarray, seed: int, num_resamples: int = NUM_RESAMPLES) -> np.ndarray:
    """(num_resamples, K) means of the columns of `values` (n, K) over the same bootstrap resamples of the
    prefixes, so that any two columns are compared paired.

    A resample is a count per prefix (how often it was drawn): the means are one matrix product, a
    block of resamples at a time (memory: `RESAMPLE_BLOCK` counts), instead of gathering n values
    per resample and column."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    rng = np.random.default_rng(seed)
    means = np.empty((num_resamples, values.shape[1]))
    step = max(1, RESAMPLE_BLOCK // max(1, n))
    for start in range(0, num_resamples, step):
        b = min(step, num_resamples - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        means[start : start + b] = counts @ values / n
    return means


def percentile_ci(resampled: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_bootstrap(resampled_a: np.ndarray, resampled_b: np.ndarray, mean_a: float, mean_b: float) -> dict:
    """A against B on the same prefixes from their means over the same resamples (`bootstrap_means`):
    the difference of means (A - B), its 95% percentile interval, and the two-sided bootstrap p-value
    of "no difference": how often a resampled difference, centred on the observed one, lies at least
    as far from 0 as the observed one ((1 + count) / (1 + resamples), so never 0)."""
    difference = mean_a - mean_b
    resampled = resampled_a - resampled_b
    extreme = int((np.abs(resampled - difference) >= abs(difference)).sum())
    return {
        "difference": difference,
        "ci95": list(percentile_ci(resampled)),
        "p_value": (1 + extreme) / (1 + len(resampled)),
    }


def describe_difference(comparison: dict) -> str:
    """`-0.015 p=1.0e-04` for a `paired_bootstrap`."""
    return f"{comparison['difference']:+.3f} p={format_p_value(comparison['p_value'])}"
