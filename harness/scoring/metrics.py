"""Beyond top-1: how well a predicted distribution q matches the target's distribution p, per prefix,
and the bootstrap intervals and paired tests of those metrics over a dataset.

Per prefix (`distribution_metrics`), with p and q each divided by its row sum (float16 rows are off
by up to ~1e-3) and t the target's top-1 token:
    top-5     t is among q's 5 most probable tokens (ties: the lower id first, as top-1's argmax)
    log-loss  -log max(q(t), FLOOR)
    KL        KL(p || q) = sum_x p(x) log(p(x) / max(q(x), FLOOR)), in nats; terms with p(x) = 0 are 0
    alpha     sum_x min(p(x), q(x)) = 1 - TV(p, q): the probability that a speculative-decoding
              draft token from q is accepted by the target (Leviathan et al. 2023)
Over a dataset, from the mean alpha (Leviathan et al.'s E[beta]):
    tokens per target pass  (1 - alpha^(gamma + 1)) / (1 - alpha), drafting gamma = 4 tokens

FLOOR is 2^-24, the smallest positive float16: float16 stores every probability below about 6e-8
as 0, so a model's "0" means "below 6e-8" and is read as 2^-24 inside every log. The same floor is
used everywhere (strategies/loglinear.py, the report's log axes).

numpy only. Memory: a block of rows at a time (`BLOCK_ELEMENTS`), whatever the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.scoring.stats import NUM_RESAMPLES, bootstrap_means, paired_bootstrap, paired_comparison, percentile_ci

FLOOR = 2.0**-24
GAMMA = 4  # draft tokens per target pass in `tokens_per_pass`
TOP_K = 5  # top-5
NEAR_TIE = 0.8  # a target is near-tied when its second token has at least this share of its top-1's probability
PER_PREFIX = ("top5", "log_loss", "kl", "alpha")  # what `distribution_metrics` returns per prefix
CONTINUOUS = ("log_loss", "kl", "alpha")
METRICS = ("top1", "top5", "log_loss", "kl", "alpha", "tokens_per_pass")  # what a dataset's scores carry
HIGHER_IS_BETTER = {"top1": True, "top5": True, "log_loss": False, "kl": False, "alpha": True, "tokens_per_pass": True}
LABELS = {
    "top1": "top-1",
    "top5": "top-5",
    "log_loss": "log-loss",
    "kl": "KL",
    "alpha": "alpha",
    "tokens_per_pass": f"tokens/pass (gamma={GAMMA})",
}
BLOCK_ELEMENTS = 2**16  # float32 temporaries per block: 256 KB (a prefix at Pythia's vocabulary) stay in cache
# float32 of every float16 bit pattern: indexing it converts ~3x faster than numpy's astype (2-core CPU).
FLOAT16_TABLE = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
FLOAT16_TABLE.flags.writeable = False


def as_float32(probs: np.ndarray) -> np.ndarray:
    """A float32 copy of `probs` (exact for float16)."""
    if probs.dtype == np.float16:
        return np.take(FLOAT16_TABLE, probs.view(np.uint16))
    return np.array(probs, dtype=np.float32)


@dataclass
class TargetRows:
    """The target's side of some prefixes, computed once and shared by every prediction scored on them."""

    probs: np.ndarray  # (rows, V) float32, each row divided by its sum
    neg_entropy: np.ndarray  # (rows,) sum_x p log p
    top1: np.ndarray  # (rows,) the target's top-1 token

    def __len__(self) -> int:
        return len(self.top1)


def target_rows(target_probs: np.ndarray, target_top1: np.ndarray) -> TargetRows:
    """`TargetRows` of the target's (rows, V) probabilities as stored, and its top-1 per row."""
    p = as_float32(target_probs)  # a copy, scaled in place
    p /= p.sum(axis=1, keepdims=True)
    neg_entropy = np.empty(len(p))
    for rows in row_blocks(*p.shape):
        block = p[rows]
        # 0 log 0 = 0: a zero is clamped to the smallest normal float32, whose log is finite, times 0.
        logs = np.log(np.maximum(block, np.finfo(np.float32).tiny))
        neg_entropy[rows] = np.multiply(block, logs, out=logs).sum(axis=1)
    return TargetRows(p, neg_entropy, np.asarray(target_top1, dtype=np.int64))


def row_blocks(num_rows: int, vocab_size: int) -> list[slice]:
    step = max(1, BLOCK_ELEMENTS // max(1, vocab_size))
    return [slice(start, start + step) for start in range(0, num_rows, step)]


def rank_of(values: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(rows,) the rank of `tokens[i]` in row i of `values` (0: its top-1), ties ordered by token id, as
    argmax orders them: the tokens with a higher value, plus those with an equal value and a lower id."""
    rows = np.arange(len(tokens))
    own = values[rows, tokens][:, None]
    rank = (values > own).sum(axis=1)
    near = np.flatnonzero(rank < TOP_K)  # only these can be in the top-k: count their ties (a smaller pass)
    if len(near):
        ties = (values[near] == own[near]) & (np.arange(values.shape[1]) < tokens[near, None])
        rank[near] += ties.sum(axis=1)
    return rank


def distribution_metrics(predicted: np.ndarray, target: TargetRows) -> dict[str, np.ndarray]:
    """Per prefix: `PER_PREFIX` of the predicted (rows, V) distributions against the target's (see the
    module's docstring). `predicted` may be float16, float32 or float64; it is never written."""
    n, vocab_size = predicted.shape
    out = {"top5": np.empty(n, dtype=bool), "log_loss": np.empty(n), "kl": np.empty(n), "alpha": np.empty(n)}
    for rows in row_blocks(n, vocab_size):
        raw, p, t = predicted[rows], target.probs[rows], target.top1[rows]
        q = as_float32(raw)  # a copy (exact for float16), ranked, then scaled and logged in place
        out["top5"][rows] = rank_of(raw if raw.dtype == np.float64 else q, t) < TOP_K
        q /= q.sum(axis=1, keepdims=True)
        out["alpha"][rows] = np.minimum(q, p).sum(axis=1)
        log_q = np.log(np.maximum(q, np.float32(FLOOR), out=q), out=q)
        out["log_loss"][rows] = -log_q[np.arange(len(t)), t]
        out["kl"][rows] = target.neg_entropy[rows] - np.multiply(p, log_q, out=log_q).sum(axis=1)
    return out


def tokens_per_pass(alpha: float | np.ndarray, gamma: int = GAMMA) -> float | np.ndarray:
    """Expected tokens per target forward pass when a drafter with acceptance rate `alpha` drafts
    `gamma` tokens (Leviathan et al. 2023, eq. 1): (1 - alpha^(gamma + 1)) / (1 - alpha); gamma + 1 at alpha = 1."""
    alpha = np.asarray(alpha, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(alpha < 1, (1 - alpha ** (gamma + 1)) / (1 - alpha), gamma + 1.0)
    return float(value) if value.ndim == 0 else value


def near_tied(second_ratio: np.ndarray) -> np.ndarray:
    """Prefixes whose target is near-tied: its second token has at least NEAR_TIE of its top-1's probability."""
    return second_ratio >= NEAR_TIE


def resample_metrics(
    per_prefix: dict[object, dict[str, np.ndarray]], seed: int, num_resamples: int = NUM_RESAMPLES
) -> dict[object, dict[str, np.ndarray]]:
    """Each predictor's (`per_prefix`: by any key, each `distribution_metrics` over the same prefixes)
    means of every metric over the same bootstrap resamples (`bootstrap_means`), tokens per pass too."""
    keys = list(per_prefix)
    if not keys:
        return {}
    columns = np.stack([per_prefix[key][name] for key in keys for name in PER_PREFIX], axis=1)
    means = bootstrap_means(columns, seed, num_resamples)
    out = {}
    for i, key in enumerate(keys):
        resampled = {name: means[:, i * len(PER_PREFIX) + j] for j, name in enumerate(PER_PREFIX)}
        resampled["tokens_per_pass"] = tokens_per_pass(resampled["alpha"])
        out[key] = resampled
    return out


def twin_floor(twin_kl: np.ndarray) -> np.ndarray:
    """Per prefix, the KL below which no prediction from the input models can go: half of
    KL(target || another seed of the target).

    Two seeds of one recipe are the same mean distribution mu plus independent initialisation noise,
    t = mu + e_t and s = mu + e_s. A prediction q made from the input models knows nothing of e_t, so
    the best it can do is mu, at KL(t || mu) ~ |e_t|^2 / 2 (KL is quadratic near its minimum, in the
    Fisher metric); the twin is at KL(t || s) ~ |e_t - e_s|^2 / 2, twice that in expectation.
    The approximation holds where the noise is small against the distributions themselves."""
    return np.asarray(twin_kl, dtype=np.float64) / 2


def removed_share(
    kl: float | np.ndarray, reference_kl: float | np.ndarray, floor: float | np.ndarray
) -> float | np.ndarray:
    """The share of the reference's KL above the floor that a predictor removes:
    (reference - predictor) / (reference - floor); 1 at the floor, 0 at the reference, negative when worse."""
    return (reference_kl - kl) / (reference_kl - floor)


def summary(
    per_prefix: dict[str, np.ndarray], resampled: dict[str, np.ndarray], top1: tuple[float, tuple[float, float]]
) -> dict[str, dict]:
    """Every metric's mean and 95% percentile interval for one predictor (`resampled`: its
    `resample_metrics`), given top-1's (accuracy, interval) as the leaderboard computes it."""
    out = {"top1": {"mean": top1[0], "ci95": list(top1[1])}}
    for name in PER_PREFIX:
        out[name] = {"mean": float(per_prefix[name].mean()), "ci95": list(percentile_ci(resampled[name]))}
    out["tokens_per_pass"] = {
        "mean": tokens_per_pass(out["alpha"]["mean"]),
        "ci95": list(percentile_ci(resampled["tokens_per_pass"])),
    }
    return out


def compare(
    a: dict[str, np.ndarray],
    resampled_a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    resampled_b: dict[str, np.ndarray],
) -> dict[str, dict]:
    """A against B on the same prefixes, beyond top-1: top-5 by the exact McNemar test (it is binary,
    as top-1), every continuous metric by the paired bootstrap (`paired_bootstrap`)."""
    out = {"top5": paired_comparison(a["top5"], b["top5"])}
    for name in CONTINUOUS:
        out[name] = paired_bootstrap(resampled_a[name], resampled_b[name], float(a[name].mean()), float(b[name].mean()))
    out["tokens_per_pass"] = paired_bootstrap(
        resampled_a["tokens_per_pass"],
        resampled_b["tokens_per_pass"],
        tokens_per_pass(float(a["alpha"].mean())),
        tokens_per_pass(float(b["alpha"].mean())),
    )
    return out
