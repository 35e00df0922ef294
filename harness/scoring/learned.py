"""Learned strategies: fit on some prefixes, scored only on prefixes the fit never saw.

A learned strategy is a *fit function*: it receives a `TrainingSplit` (the training prefixes, the
input models' distributions, the target's distributions and top-1s) and returns an ordinary
4-argument strategy, which then predicts other prefixes from the input models alone. The harness
scores it in one of two ways:

- on a separate test file: `challenge.py --train TRAIN.pkl --dataset TEST.pkl` (the two files may
  share no prefix: `check_disjoint`);
- by K-fold cross-validation by prefix (`--folds`, `fold_indices`): each fold is predicted by a fit
  on the other folds only, and the guesses of all folds are scored like any other strategy's.

The engine (`harness.scoring.evaluate`) builds the training splits and makes every fit before it predicts
anything. numpy only. Every array a strategy receives is read-only, so nothing it does leaks into
another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from harness import InputError, plural
from harness.scoring.top1 import CHUNK_BYTES, StrategyError, chunk_prefixes  # noqa: F401 (chunk sizes: also from here)


@dataclass(frozen=True)
class TrainingChunk:
    """Consecutive training prefixes: what `TrainingSplit.chunks()` yields (every array read-only)."""

    sentences: tuple[str, ...]
    probs_per_sentences: np.ndarray  # (C, M-1, V) float16, the input models
    target_probs: np.ndarray  # (C, V) float16, the target model
    target_top1: np.ndarray  # (C,) int64, the target's top-1 token


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

    def __init__(
        self,
        sentences: Sequence[str],
        model_names: Sequence[str],
        target_model_name: str,
        probs: np.ndarray,
        rows: np.ndarray,
        input_columns: Sequence[int],
        target_column: int,
        target_top1: np.ndarray,
        chunk_size: int | None = None,
    ):
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
    def from_arrays(
        cls,
        sentences: Sequence[str],
        model_names: Sequence[str],
        target_model_name: str,
        inputs: np.ndarray,
        target_probs: np.ndarray,
        target_top1: np.ndarray,
        chunk_size: int | None = None,
    ) -> TrainingSplit:
        """A training split of in-memory arrays: inputs (N, M-1, V) and the target's (N, V)."""
        probs = np.concatenate([inputs, np.asarray(target_probs)[:, None]], axis=1)
        m = probs.shape[1]
        return cls(
            sentences,
            model_names,
            target_model_name,
            probs,
            np.arange(len(probs)),
            range(m - 1),
            m - 1,
            target_top1,
            chunk_size,
        )

    def __len__(self) -> int:
        return len(self._rows)

    def chunks(self) -> Iterator[TrainingChunk]:
        """The training prefixes in order, `chunk_size` at a time, each chunk a fresh read-only copy."""
        for start in range(0, len(self._rows), self.chunk_size):
            rows = self._rows[start : start + self.chunk_size]
            yield TrainingChunk(
                self.sentences[start : start + len(rows)],
                read_only(self._probs[rows[:, None], self._inputs[None, :]]),
                read_only(self._probs[rows, self._target]),
                self.target_top1[start : start + len(rows)],
            )

    def sample(self, count: int, seed: int = 0) -> TrainingSplit:
        """A split of `count` of these prefixes drawn at random without replacement, in their order
        (this split itself when it has no more than `count`): its chunks read only those prefixes."""
        if len(self) <= count:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=count, replace=False))
        return TrainingSplit(
            [self.sentences[i] for i in keep],
            self.model_names,
            self.target_model_name,
            self._probs,
            self._rows[keep],
            self._inputs,
            self._target,
            self.target_top1[keep],
            self.chunk_size,
        )

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


def sealed(array: np.ndarray) -> np.ndarray:
    """A read-only copy whose memory is a `bytes` object: no view, base or buffer of it can be made
    writeable (`read_only`'s view of a writeable array can be reached through its memoryview's
    `.obj`), so one copy can be handed to several strategies in turn."""
    return np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=array.dtype).reshape(array.shape)


def fit_strategy(fit: Callable, train: TrainingSplit) -> Callable:
    """A learned strategy's fit step on `train`: the strategy function it returns."""
    predict = fit(train)
    if not callable(predict):
        raise StrategyError(f"its fit step returned {type(predict).__name__}, expected a strategy function")
    return predict


def fold_indices(num_sentences: int, folds: int, seed: int) -> list[np.ndarray]:
    """K disjoint folds of a seeded permutation of the prefixes, each sorted (sizes differ by at most 1)."""
    if not 2 <= folds <= num_sentences:
        raise InputError(f"--folds must be between 2 and the number of prefixes ({num_sentences}), got {folds}")
    order = np.random.default_rng(seed).permutation(num_sentences)
    return [np.sort(fold) for fold in np.array_split(order, folds)]


def check_disjoint(
    train_path: object, train_sentences: Sequence[str], test_path: object, test_sentences: Sequence[str]
) -> None:
    """Refuse a training file that shares any prefix with the test file."""
    shared = set(train_sentences).intersection(test_sentences)
    if shared:
        example = min(shared)
        raise InputError(
            f"{train_path}: shares {len(shared)} {plural(len(shared), 'prefix', 'prefixes')} with {test_path} "
            f"(e.g. {example[:60]!r}); a learned strategy must be scored on prefixes it never saw"
        )
