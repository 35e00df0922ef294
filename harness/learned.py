"""Learned strategies: fit on some prefixes, scored only on prefixes the fit never saw.

A learned strategy is a *fit function*: it receives a `TrainingSplit` (the training prefixes, the
input models' distributions, the target's distributions and top-1s) and returns an ordinary
4-argument strategy, which then predicts other prefixes from the input models alone. The harness
scores it in one of two ways:

- on a separate test file: `challenge.py --train TRAIN.pkl --dataset TEST.pkl` (the two files may
  share no prefix: `check_disjoint`);
- by K-fold cross-validation by prefix (`--folds`): each fold is predicted by a fit on the other
  folds only (`cross_validated_guesses`), and the concatenated guesses are scored like any other.

numpy only. Every array a strategy receives is read-only, so nothing it does leaks into another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from harness import InputError, plural
from harness.scoring import StrategyError, check_guesses


@dataclass(frozen=True)
class TrainingSplit:
    """What a learned strategy may learn from: everything about the training prefixes."""
    sentences: tuple[str, ...]
    model_names: tuple[str, ...]     # the input models, smallest first (sizes: see strategies/template.py)
    target_model_name: str
    probs_per_sentences: np.ndarray  # (N, M-1, V) float16, the input models
    target_probs: np.ndarray         # (N, V) float16, the target model
    target_top1: np.ndarray          # (N,) int64, the target's top-1 token (the score's reference)


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view (no copy): a write raises inside the strategy that tries it.

    numpy lets a view be made writeable again when the memory at the bottom of its base chain is
    writeable (a loaded pickle's bytearray is), so a contiguous array is viewed through a read-only
    buffer, which no view of it can unlock."""
    if array.flags.c_contiguous and array.size:
        return np.frombuffer(memoryview(array).toreadonly(), dtype=array.dtype).reshape(array.shape)
    view = array.view()
    view.flags.writeable = False
    return view


def training_split(sentences: Sequence[str], model_names: Sequence[str], target_model_name: str,
                   inputs: np.ndarray, target_probs: np.ndarray, target_top1: np.ndarray) -> TrainingSplit:
    return TrainingSplit(tuple(sentences), tuple(model_names), target_model_name, read_only(inputs),
                         read_only(target_probs), read_only(np.asarray(target_top1, dtype=np.int64)))


def fit_and_predict(fit: Callable, train: TrainingSplit, sentences: Sequence[str], model_names: Sequence[str],
                    target_model_name: str, inputs: np.ndarray, vocab_size: int) -> np.ndarray:
    """Fit on `train`, then predict `inputs` (never the test target), checked like any strategy's output."""
    predict = fit(train)
    if not callable(predict):
        raise StrategyError(f"its fit step returned {type(predict).__name__}, expected a strategy function")
    guesses = predict(list(sentences), list(model_names), target_model_name, read_only(inputs))
    return check_guesses(guesses, len(sentences), vocab_size)


def fold_indices(num_sentences: int, folds: int, seed: int) -> list[np.ndarray]:
    """K disjoint folds of a seeded permutation of the prefixes, each sorted (sizes differ by at most 1)."""
    if not 2 <= folds <= num_sentences:
        raise InputError(f"--folds must be between 2 and the number of prefixes ({num_sentences}), got {folds}")
    order = np.random.default_rng(seed).permutation(num_sentences)
    return [np.sort(fold) for fold in np.array_split(order, folds)]


def cross_validated_guesses(fit: Callable, sentences: Sequence[str], model_names: Sequence[str],
                            target_model_name: str, inputs: np.ndarray, target_probs: np.ndarray,
                            target_top1: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Every prefix's guess from a fit that never saw it: fit on K-1 folds, predict the K-th."""
    n, vocab_size = len(sentences), inputs.shape[2]
    guesses = np.empty(n, dtype=np.int64)
    for held_out in fold_indices(n, folds, seed):
        train_rows = np.setdiff1d(np.arange(n), held_out, assume_unique=True)
        # Fancy indexing copies: the fit never holds a view that reaches the held-out rows.
        train = training_split([sentences[i] for i in train_rows], model_names, target_model_name,
                               inputs[train_rows], target_probs[train_rows], target_top1[train_rows])
        guesses[held_out] = fit_and_predict(fit, train, [sentences[i] for i in held_out], model_names,
                                            target_model_name, inputs[held_out], vocab_size)
    return guesses


def check_disjoint(train_path: object, train_sentences: Sequence[str], test_path: object,
                   test_sentences: Sequence[str]) -> None:
    """Refuse a training file that shares any prefix with the test file."""
    shared = set(train_sentences).intersection(test_sentences)
    if shared:
        example = min(shared)
        raise InputError(f"{train_path}: shares {len(shared)} {plural(len(shared), 'prefix', 'prefixes')} with {test_path} "
                         f"(e.g. {example[:60]!r}); a learned strategy must be scored on prefixes it never saw")
