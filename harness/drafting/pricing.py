"""Speculative decoding, priced: the wall-time speedup a drafter buys the target, drafting costs included.

A drafter proposes gamma tokens, and one forward pass of the target checks them all (Leviathan et
al. 2023; Chen et al. 2023). With acceptance rate alpha and a drafter that costs c target passes
per token, the expected wall-time improvement is

    speedup(alpha, gamma, c) = (1 - alpha^(gamma + 1)) / ((1 - alpha) (gamma c + 1))

(the tokens per target pass, `harness.scoring.metrics.tokens_per_pass`, over what a round costs). Greedy
decoding accepts a drafted token when it is the target's top-1, so its alpha is top-1 agreement;
speculative sampling accepts with probability sum_x min(p, q), so its alpha is 1 - TV.

c comes from the dataset's sidecar: each model's measured tokens per second of the scoring pass
(`preprocess_train.py` records them), c_j = the target's time per token over model j's; where the
sidecar has none, from the parameter counts (all of them, the embeddings too: a forward pass's
FLOPs), c_j = params_j / params_target. A strategy drafts from every input model it reads, so it
costs their sum (`reads`, set by `@register(..., reads=(-2, -1))` or `fn.reads`; all of them where
it does not say); its own arithmetic is left out, and a strategy that reads no model is no drafter
(at cost 0 the formula would draft without end from one position's acceptance rate).

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness import InputError
from harness.scoring.metrics import tokens_per_pass

GAMMA_RANGE = tuple(range(1, 17))  # draft lengths searched for the best


def speedup(alpha: float, gamma: int, cost: float) -> float:
    """Leviathan et al.'s expected wall-time improvement of drafting gamma tokens at relative cost `cost`."""
    return tokens_per_pass(alpha, gamma) / (gamma * cost + 1)


def best_gamma(alpha: float, cost: float, gammas: Sequence[int] = GAMMA_RANGE) -> tuple[int, float]:
    """(gamma, speedup) at the gamma in `gammas` with the highest speedup (the smallest on a tie)."""
    speedups = [speedup(alpha, gamma, cost) for gamma in gammas]
    k = int(np.argmax(speedups))
    return gammas[k], speedups[k]


def model_costs(names: Sequence[str], target: str, models: list | None) -> tuple[dict[str, float], str] | None:
    """({input model: c}, source) from a sidecar's "models" list (each with "name" and, where measured,
    "tokens_per_second", else "total_params"): "measured" where every model has a speed, else
    "parameters" where every model has a size, else None."""
    entries = {m.get("name"): m for m in models or [] if isinstance(m, dict)}
    wanted = [*names, target]
    if not all(name in entries for name in wanted):
        return None
    for key, source, per_token in (
        ("tokens_per_second", "measured", lambda v: 1 / v),
        ("total_params", "parameters", lambda v: float(v)),
    ):
        values = [entries[name].get(key) for name in wanted]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
            cost = {name: per_token(v) / per_token(values[-1]) for name, v in zip(names, values)}
            return cost, source
    return None


def strategy_cost(fn: object, names: Sequence[str], costs: dict[str, float]) -> tuple[list[str], float]:
    """(the input models a strategy reads, their summed cost): its `reads` indices into `names`
    (negative from the largest end; those past the end left out), every input model where it declares none."""
    reads = getattr(fn, "reads", None)
    if reads is not None and (
        isinstance(reads, (str, bytes))
        or not hasattr(reads, "__iter__")
        or not all(isinstance(j, int) and not isinstance(j, bool) for j in reads)
    ):
        raise InputError(
            f"{getattr(fn, '__name__', fn)}: `reads` must be input-model indices such as (-2, -1), got {reads!r}"
        )
    # An index past the inputs it has (top2-average's -2 with one input model) reads nothing more.
    read = (
        list(names) if reads is None else list(dict.fromkeys(names[j] for j in reads if -len(names) <= j < len(names)))
    )
    return read, float(sum(costs[name] for name in read))


def priced(agreement: float, alpha: float | None, cost: float) -> dict:
    """Greedy (alpha = top-1 agreement) and, given a distribution's alpha, sampling: the best gamma and its speedup."""
    out = {"cost": cost}
    for mode, acceptance in (("greedy", agreement), ("sampling", alpha)):
        if acceptance is not None:
            gamma, gain = best_gamma(acceptance, cost)
            out[mode] = {
                "alpha": acceptance,
                "gamma": gamma,
                "speedup": gain,
                "tokens_per_pass": tokens_per_pass(acceptance, gamma),
            }
    return out
