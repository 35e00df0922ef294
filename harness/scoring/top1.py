"""Top-1: what the target says about each prefix, top-1 agreement with it, and checks on strategy
output (their intervals and paired tests: `harness.scoring.stats`).

The target view (`target_view`: every model's top-1, the target's top-1, the emergent prefixes and
the float16 ties of the target's top-1) is computed here once per dataset, chunk by chunk, and
read by the engine (`harness.scoring.evaluate`), the report and the blind test's answers.

numpy only: scoring needs neither torch nor transformers.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness import plural
from harness.data.dataset import ROW_SUM_TOLERANCE
from harness.scoring.metrics import as_float32, row_blocks
from harness.scoring.stats import bootstrap_ci

# Datasets are read a chunk of prefixes at a time: this many bytes of probabilities per chunk
# bounds memory by the chunk, not by N (about 190 prefixes of 7 models at Pythia's vocabulary of
# 50,277; a whole 1,000-prefix dataset of the bundled suite's 4,000).
CHUNK_BYTES = 128 * 2**20


def chunk_prefixes(num_models: int, vocab_size: int, itemsize: int = 2) -> int:
    """How many prefixes of `num_models` x `vocab_size` probabilities make one chunk."""
    return max(1, CHUNK_BYTES // (num_models * vocab_size * itemsize))


class StrategyError(Exception):
    """A strategy's output that cannot be scored; the message is one line."""


def orderable(probs: np.ndarray) -> np.ndarray:
    """The probabilities as values that order (and tie) exactly like them, and compare fast.

    Non-negative float16 values order like their bit patterns, and numpy's integer argmax is
    ~16x faster than its float16 one (0.003 s against 0.048 s on the 1000 x 7 x 4000 wikipedia-test
    dataset, 2-core CPU): float16 arrays are viewed as uint16, without a copy; others pass through.
    """
    return probs.view(np.uint16) if probs.dtype == np.float16 else probs


def top1(probs: np.ndarray) -> np.ndarray:
    """argmax over the last axis (the vocabulary); ties resolve to the first index."""
    return orderable(probs).argmax(axis=-1)


def check_guesses(
    guesses: object, num_sentences: int, vocab_size: int, rows: Sequence[int] | None = None
) -> np.ndarray:
    """The guesses as an int64 array, or a StrategyError saying what is wrong with them.

    `rows`: the dataset's index of each sentence of this call (a chunk's), so that an error names
    the prefix by its index in the dataset."""
    guesses, distribution = check_output(guesses, num_sentences, vocab_size, rows)
    if distribution is not None:
        raise StrategyError(f"returned an array of shape {distribution.shape}, expected one token id per sentence")
    return guesses


def check_output(
    returned: object, num_sentences: int, vocab_size: int, rows: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(guesses, distribution) of what a strategy returned: N token ids (distribution None), or an
    (N, V) array of probabilities, one distribution per sentence, whose top-1s are the guesses
    (argmax, the first on ties). A StrategyError says what is wrong with anything else."""
    try:
        output = np.asarray(returned)
    except ValueError as e:
        raise StrategyError(f"returned something that is not a list of token ids ({e})") from None
    index = (lambda i: i) if rows is None else (lambda i: rows[i])
    if output.ndim == 0 and not isinstance(returned, np.ndarray):  # None (a forgotten `return`), a dict, a number...
        kind = "None" if returned is None else type(returned).__name__
        raise StrategyError(f"returned {kind}, expected one token id per sentence")
    if output.ndim == 2 and output.shape == (num_sentences, vocab_size):
        if output.dtype.kind != "f":
            raise StrategyError(f"returned an array of {output.dtype}: a distribution holds floats (float16, 32 or 64)")
        return check_distribution(output, index)
    if output.ndim != 1:
        raise StrategyError(
            f"returned an array of shape {output.shape}, expected one token id per sentence "
            f"({num_sentences},) or one distribution per sentence ({num_sentences}, {vocab_size})"
        )
    if len(output) != num_sentences:
        raise StrategyError(f"returned {len(output)} guesses for {num_sentences} sentences")
    if output.dtype.kind not in "iu":
        raise StrategyError(f"returned {output.dtype} values, expected integer token ids")
    out_of_range = (output < 0) | (output >= vocab_size)
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        raise StrategyError(f"returned token id {output[i]} for sentence {index(i)}, outside [0, {vocab_size})")
    return output.astype(np.int64), None


def check_distribution(probs: np.ndarray, index) -> tuple[np.ndarray, np.ndarray]:
    """(top-1s, probs) of an (N, V) float array that must hold one probability distribution per row:
    finite, non-negative, each row summing to 1 within ROW_SUM_TOLERANCE."""
    # Two passes: a NaN or an infinity makes its row's sum NaN or infinite, so the sums find those too.
    # float16 is summed through metrics' float32 table, and checked for a sign bit on its bits (numpy's
    # float16 sum and min convert slowly: 4x and 10x the time here).
    if probs.dtype == np.float16:
        sums = np.concatenate([as_float32(probs[rows]).sum(axis=1) for rows in row_blocks(*probs.shape)])
    else:
        sums = probs.sum(axis=1, dtype=np.float64 if probs.dtype == np.float64 else np.float32)
    bad = ~np.isfinite(sums)
    if bad.any():
        raise StrategyError(f"returned NaN or infinite probabilities for sentence {index(int(np.argmax(bad)))}")
    negative = (probs.view(np.uint16) > 0x8000).any(axis=1) if probs.dtype == np.float16 else probs.min(axis=1) < 0
    if negative.any():
        i = int(np.argmax(negative))
        raise StrategyError(f"returned a negative probability ({probs[i].min():.3g}) for sentence {index(i)}")
    off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    if off.any():
        i = int(np.argmax(off))
        raise StrategyError(
            f"returned a distribution summing to {sums[i]:.4g} for sentence {index(i)} "
            f"(each row must sum to 1 within {ROW_SUM_TOLERANCE})"
        )
    top = top1(probs)
    if probs.dtype == np.float16:  # -0.0's bits order above every positive float16: such rows by value
        negative_zero = probs.view(np.uint16)[np.arange(len(top)), top] == 0x8000
        top[negative_zero] = probs[negative_zero].astype(np.float32).argmax(axis=1)
    return top, probs


def describe_exception(error: BaseException, fn: object) -> str:
    """One line for a strategy that raised: the exception and where in the strategy's own code.

    The location is the deepest frame in the file that defines `fn` (the strategy's line that
    failed, even when the exception comes from inside numpy); when the strategy was never entered
    (called with arguments it does not take), where it is defined; else the deepest frame of all.
    """
    message = str(error).splitlines()[0] if str(error) else ""
    frames = traceback.extract_tb(error.__traceback__)
    code = getattr(fn, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    if own:
        return f"raised {type(error).__name__}: {message} (at {short_path(own[-1].filename)}:{own[-1].lineno})"
    if code is not None:
        return (
            f"raised {type(error).__name__}: {message} "
            f"(defined at {short_path(code.co_filename)}:{code.co_firstlineno})"
        )
    if frames:
        return f"raised {type(error).__name__}: {message} (at {short_path(frames[-1].filename)}:{frames[-1].lineno})"
    return f"raised {type(error).__name__}: {message}"


def short_path(filename: str) -> str:
    """A file's path relative to the working directory when it lies under it, else absolute."""
    path = os.path.abspath(filename)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def top1_ties(probs: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, tokens): every token that ties a row's top-1 `top` exactly, other than `top` itself.

    `probs` is (rows, vocabulary): a chunk's (`target_view` calls it chunk by chunk, as it builds a
    rows x vocabulary mask). In float16 two tokens can round to the same probability; the metric
    keeps the first argmax (as the original challenge did), and these say where that choice was
    arbitrary.
    """
    values = orderable(probs)
    rows = np.arange(len(top))
    tied = values == values[rows, top][:, None]
    tied[rows, top] = False
    return np.nonzero(tied)


@dataclass
class TargetView:
    """What the target says about each prefix: what every guess is scored against."""

    model_top1: np.ndarray  # (n, models) every model's top-1 token, the target's included
    target: int  # the target's column
    emergent: np.ndarray  # (n,) bool: the target's top-1 is no input model's top-1 (`emergent_prefixes`)
    tie_rows: np.ndarray  # with tie_tokens: each (prefix, token) tying the target's top-1 in float16,
    tie_tokens: np.ndarray  # other than that top-1 itself (rows in order)
    second_ratio: np.ndarray | None = None  # (n,) the target's second probability / its top-1's (1: a tie)

    @property
    def target_top1(self) -> np.ndarray:
        return self.model_top1[:, self.target]

    @property
    def input_top1(self) -> np.ndarray:
        return np.delete(self.model_top1, self.target, axis=1)

    @property
    def tied_targets(self) -> int:
        """How many prefixes' target top-1 ties another token in float16."""
        return len(np.unique(self.tie_rows))


def target_view(probs: np.ndarray, target: int, rows_per_chunk: int | None = None) -> TargetView:
    """The target view of `probs` (n, models, V), target at column `target`, read a chunk of rows
    at a time (any array: a memory map is read, never copied whole)."""
    n, num_models, vocab_size = probs.shape
    rows_per_chunk = rows_per_chunk or chunk_prefixes(num_models, vocab_size, probs.dtype.itemsize)
    model_top1 = np.empty((n, num_models), dtype=np.int64)
    tie_rows, tie_tokens = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    second_ratio = np.empty(n, dtype=np.float32)
    for start in range(0, n, rows_per_chunk):
        block = probs[start : start + rows_per_chunk]
        top = top1(block)
        model_top1[start : start + len(block)] = top
        rows, tokens = top1_ties(block[:, target], top[:, target])
        tie_rows.append(rows + start)
        tie_tokens.append(tokens)
        second_ratio[start : start + len(block)] = top_two_ratio(block[:, target])
    emergent = emergent_prefixes(np.delete(model_top1, target, axis=1), model_top1[:, target])
    return TargetView(model_top1, target, emergent, np.concatenate(tie_rows), np.concatenate(tie_tokens), second_ratio)


def top_two_ratio(probs: np.ndarray) -> np.ndarray:
    """(rows,) each row's second-largest probability over its largest (1 where the two tie)."""
    two = np.partition(orderable(probs), -2, axis=1)[:, -2:]
    if probs.dtype == np.float16:
        two = two.view(np.float16)
    two = two.astype(np.float64)
    return two[:, 0] / two[:, 1]


@dataclass
class StrategyScore:
    """One strategy's guesses on one dataset, scored against its target view (`score_guesses`)."""

    name: str
    hits: np.ndarray  # (n,) bool: the guess is the target's top-1 (not in the JSON)
    ci95: tuple[float, float]
    tied_misses: int  # guesses of a token tying the target's top-1 in float16, scored wrong
    emergent_correct: int  # right on the emergent prefixes
    seconds: float = 0.0
    fit: str | None = None  # how a learned strategy was fitted (None: not learned)
    versus: dict | None = None  # a paired comparison with the reference (`paired_comparison`, + its name;
    # with distributions, one per metric: `harness.scoring.metrics.compare`)
    per_prefix: dict[str, np.ndarray] | None = (
        None  # `harness.scoring.metrics.PER_PREFIX`: when it returned distributions
    )
    summary: dict[str, dict] | None = (
        None  # each metric's mean and ci95 (`harness.scoring.metrics.summary`), top-1's too
    )

    def metric(self, name: str) -> float | None:
        """A metric's mean over the prefixes (None: it needs a distribution, and this strategy returned ids)."""
        if name == "top1":
            return self.accuracy
        return None if self.summary is None else self.summary[name]["mean"]

    @property
    def accuracy(self) -> float:
        return float(self.hits.mean())

    @property
    def correct(self) -> int:
        return int(self.hits.sum())

    @property
    def n(self) -> int:
        return len(self.hits)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "n": self.n,
            "ci95": list(self.ci95),
            "seconds": self.seconds,
            "fit": self.fit,
            "tied_misses": self.tied_misses,
            "emergent_correct": self.emergent_correct,
            "vs_reference": self.versus,
            "metrics": self.summary or {"top1": {"mean": self.accuracy, "ci95": list(self.ci95)}},
        }


@dataclass
class StrategyFailure:
    """A strategy that could not be scored: its one-line error, in its row."""

    name: str
    error: str

    def to_json(self) -> dict:
        return {"name": self.name, "error": self.error}


def score_guesses(name: str, guesses: np.ndarray, view: TargetView, seed: int, **run: object) -> StrategyScore:
    """`guesses` (n,) scored against `view`; `run`: seconds and fit, as the engine measured them."""
    hits = guesses == view.target_top1
    return StrategyScore(
        name,
        hits,
        bootstrap_ci(hits, seed=seed),
        tied_misses=int((guesses[view.tie_rows] == view.tie_tokens).sum()),
        emergent_correct=int(hits[view.emergent].sum()),
        **run,
    )


def input_model_reach(input_top1: np.ndarray, target_top1: np.ndarray) -> dict[str, float]:
    """How often the target's top-1 is the top-1 of some input model, and of none of them.

    `input_top1` is (sentences, input models). The first is the best any strategy that picks
    one input model's top-1 per sentence can reach.
    """
    matches = input_top1 == target_top1[:, None]
    some = float(matches.any(axis=1).mean())
    return {
        "some_input_model": some,
        "no_input_model": 1.0 - some,
        "per_input_model": [float(m) for m in matches.mean(axis=0)],
    }


def emergent_prefixes(input_top1: np.ndarray, target_top1: np.ndarray) -> np.ndarray:
    """Boolean mask of the "emergent" prefixes: the target's top-1 is no input model's top-1.

    `input_top1` is (sentences, input models). No pick-one-model strategy can get these right,
    which is where predicting the larger model is hard.
    """
    return ~(input_top1 == target_top1[:, None]).any(axis=1)


def tie_note(tied: int, scores: list[tuple[str, int]]) -> str:
    """The leaderboard's line on float16 ties of the target's top-1 (`scores`: each (name, tied misses))."""
    misses = [f"{name} {count}" for name, count in scores if count]
    return (
        f"the target's top-1 is a float16 tie for {tied} {plural(tied, 'prefix', 'prefixes')}: the first tied "
        f"token counts as its top-1; guesses of another tied token, scored wrong: {', '.join(misses) or 'none'}"
    )
