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
from typing import Callable, Iterator, Sequence

import numpy as np

from harness import InputError, plural
from harness.scoring import StrategyError, check_guesses


# Strategies see a dataset a chunk of prefixes at a time: this many bytes of input probabilities
# per chunk bounds memory by the chunk, not by N (about 190 prefixes of 7 models at Pythia's
# vocabulary of 50,277; a whole 1,000-prefix dataset of the bundled suite's 4,000).
CHUNK_BYTES = 128 * 2 ** 20


def chunk_prefixes(num_models: int, vocab_size: int, itemsize: int = 2) -> int:
    """How many prefixes of `num_models` x `vocab_size` probabilities make one chunk."""
    return max(1, CHUNK_BYTES // (num_models * vocab_size * itemsize))


@dataclass(frozen=True)
class TrainingChunk:
    """Consecutive training prefixes: what `TrainingSplit.chunks()` yields (every array read-only)."""
    sentences: tuple[str, ...]
    probs_per_sentences: np.ndarray  # (C, M-1, V) float16, the input models
    target_probs: np.ndarray         # (C, V) float16, the target model
    target_top1: np.ndarray          # (C,) int64, the target's top-1 token


class TrainingSplit:
    """What a learned strategy may learn from: everything about the training prefixes.

    The probabilities are read chunk by chunk, so a fit's memory is bounded by the chunk and not by
    the number of training prefixes:

        for chunk in train.chunks():   # every call reads the training prefixes again, in order
            chunk.probs_per_sentences, chunk.target_probs, chunk.target_top1

    `sentences`, `model_names`, `target_model_name` and `target_top1` (N,) are whole. So are
    `probs_per_sentences` (N, M-1, V) and `target_probs` (N, V), as in earlier versions, but each
    access reads every training prefix into memory (N x M x V x 2 bytes: 7 GB for 10,000 prefixes
    at Pythia's vocabulary), so use them on small datasets only.
    """

    def __init__(self, sentences: Sequence[str], model_names: Sequence[str], target_model_name: str,
                 probs: np.ndarray, rows: np.ndarray, input_columns: Sequence[int], target_column: int,
                 target_top1: np.ndarray, chunk_size: int | None = None):
        """`probs` (any N' x M x V array, e.g. a memory-mapped dataset) holds the training prefixes at
        `rows` (sorted), the input models at `input_columns` and the target at `target_column`."""
        self.sentences = tuple(sentences)
        self.model_names = tuple(model_names)
        self.target_model_name = target_model_name
        self.target_top1 = read_only(np.asarray(target_top1, dtype=np.int64))
        self._probs, self._rows = probs, np.asarray(rows, dtype=np.int64)
        self._inputs, self._target = np.asarray(input_columns, dtype=np.int64), int(target_column)
        self.chunk_size = chunk_size or chunk_prefixes(probs.shape[1], probs.shape[2], probs.dtype.itemsize)
        if not len(self.sentences) == len(self._rows) == len(self.target_top1):
            raise ValueError("a training split needs one sentence, row and target top-1 per prefix")

    @classmethod
    def from_arrays(cls, sentences: Sequence[str], model_names: Sequence[str], target_model_name: str,
                    inputs: np.ndarray, target_probs: np.ndarray, target_top1: np.ndarray,
                    chunk_size: int | None = None) -> "TrainingSplit":
        """A training split of in-memory arrays: inputs (N, M-1, V) and the target's (N, V)."""
        probs = np.concatenate([inputs, np.asarray(target_probs)[:, None]], axis=1)
        m = probs.shape[1]
        return cls(sentences, model_names, target_model_name, probs, np.arange(len(probs)), range(m - 1), m - 1,
                   target_top1, chunk_size)

    def __len__(self) -> int:
        return len(self._rows)

    def chunks(self) -> Iterator[TrainingChunk]:
        """The training prefixes in order, `chunk_size` at a time, each chunk a fresh read-only copy."""
        for start in range(0, len(self._rows), self.chunk_size):
            rows = self._rows[start:start + self.chunk_size]
            yield TrainingChunk(self.sentences[start:start + len(rows)],
                                read_only(self._probs[rows[:, None], self._inputs[None, :]]),
                                read_only(self._probs[rows, self._target]),
                                self.target_top1[start:start + len(rows)])

    @property
    def probs_per_sentences(self) -> np.ndarray:
        """Every training prefix's input probabilities at once, (N, M-1, V): memory grows with N."""
        return read_only(self._probs[self._rows[:, None], self._inputs[None, :]])

    @property
    def target_probs(self) -> np.ndarray:
        """Every training prefix's target probabilities at once, (N, V): memory grows with N."""
        return read_only(self._probs[self._rows, self._target])


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
    return TrainingSplit.from_arrays(sentences, model_names, target_model_name, inputs, target_probs, target_top1)


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
