"""The blind test: a public file without the target, a private answers file, and checks on the
participants' predictions against it.

- `public_metadata` / `answers_record`: what `blind_test.py split` writes. The public sidecar keeps
  the input models' names and sizes only; the answers (JSON, never a pickle) hold the target's
  top-1 and its float16 ties for every prefix, and the public pickle's SHA-256.
- `load_answers`: the answers file, validated (it is the organizer's own file, but a hand-edited
  or truncated one must fail in one line, not in the middle of scoring).
- `read_predictions` / `check_submission`: a participant's predictions CSV (`challenge.py
  --predict-only --predictions`), one submission per strategy in it, checked against the answers.

numpy only.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import InputError, plural
from harness.data.dataset import Dataset, model_sizes, read_sidecar
from harness.data.files import read_text_file
from harness.scoring.top1 import StrategyScore, TargetView, target_view

REQUIRED_COLUMNS = ("strategy", "index", "sentence", "guess")
ANSWERS_FORMAT = (
    "blind test answers (private): target_top1[i] is the target model's top-1 token after "
    "sentences[i]; tied_tokens[i] the other tokens tying it in float16 (the first counts); "
    "emergent_prefixes the indices where it is no input model's top-1"
)
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")  # longer is outside int64, and outside any vocabulary
_SHOWN = 5  # how many indices or lines an error shows


def public_metadata(dataset: Dataset, input_names: list[str]) -> dict:
    """The public file's sidecar: the input models' names and sizes, and nothing about the target
    (no command line, no `extra`, no paths: any of them can name it)."""
    sizes = model_sizes(dataset.model_names, read_sidecar(dataset.path, verify_hash=False))
    models = [
        {"name": name, **{key: value for key, value in sizes.get(name, {}).items() if value is not None}}
        for name in input_names
    ]
    return {
        "format": "pickle of (model_names, sentences, probs), the public file of a blind test: every "
        "model is an input; the target's top-1 is with the organizer",
        "public": True,
        "target_model": "hidden",
        "models": models,
        "num_prefixes": len(dataset.sentences),
        "vocab_size": dataset.vocab_size,
    }


def answers_record(dataset: Dataset, target: int, public_pickle: dict) -> dict:
    """The private answers of a blind test on `dataset`, model `target` hidden. `public_pickle`:
    {"path", "bytes", "sha256"} of the public file the participants get."""
    view = target_view(dataset.probs, target)
    n = len(dataset.sentences)
    # The ties come row by row: split their tokens at each row's first position.
    tied_tokens = [part.tolist() for part in np.split(view.tie_tokens, np.searchsorted(view.tie_rows, np.arange(1, n)))]
    target_top1, emergent = view.target_top1, np.flatnonzero(view.emergent)
    return {
        "format": ANSWERS_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(dataset.path),
        "public_pickle": public_pickle,
        "target_model": dataset.model_names[target],
        "input_models": [name for i, name in enumerate(dataset.model_names) if i != target],
        "vocab_size": dataset.vocab_size,
        "sentences": list(dataset.sentences),
        "target_top1": target_top1.tolist(),
        "tied_tokens": tied_tokens,
        "emergent_prefixes": emergent.tolist(),
    }


@dataclass
class Answers:
    target_model: str
    input_models: list[str]
    vocab_size: int
    sentences: np.ndarray  # (n,) object array of str, for vectorized comparison
    target_top1: np.ndarray  # (n,) int64
    tie_rows: np.ndarray  # with tie_tokens: every (prefix, token) that ties the target's top-1
    tie_tokens: np.ndarray
    emergent: np.ndarray  # (n,) bool: the target's top-1 is no input model's top-1
    public_sha256: str

    @property
    def n(self) -> int:
        return len(self.sentences)

    def view(self) -> TargetView:
        """The target view that guesses are scored against (the answers record no input model's top-1)."""
        return TargetView(self.target_top1[:, None], 0, self.emergent, self.tie_rows, self.tie_tokens)


@dataclass
class Submission:
    """One strategy of one predictions file, scored against the answers, or the one-line reason it was refused."""

    name: str
    file: Path
    strategy: str | None  # None: the file itself was refused
    score: StrategyScore | None = None
    error: str | None = None

    def to_json(self) -> dict:
        row = {"name": self.name, "file": str(self.file), "strategy": self.strategy}
        if self.error is not None:
            return (
                {**row, "error": self.error}
                if self.strategy is not None
                else {"file": str(self.file), "error": self.error}
            )
        score = self.score
        return {
            **row,
            "accuracy": score.accuracy,
            "correct": score.correct,
            "n": score.n,
            "ci95": list(score.ci95),
            "emergent_correct": score.emergent_correct,
            "tied_misses": score.tied_misses,
            **({"vs_best": score.versus} if score.versus else {}),
        }


@dataclass
class BlindResult:
    """`blind_test.py score`: every submission against the answers, best first, then the refused ones."""

    answers_path: Path
    answers: Answers
    seed: int
    submissions: list[Submission]
    pairs: list[dict]  # every pair of scored submissions: a `paired_comparison` (a, b)

    @property
    def scored(self) -> list[Submission]:
        return [s for s in self.submissions if s.error is None]

    @property
    def failed(self) -> bool:
        return any(s.error is not None for s in self.submissions)

    def to_json(self) -> dict:
        answers = self.answers
        return {
            "answers": str(self.answers_path),
            "public_sha256": answers.public_sha256,
            "target": answers.target_model,
            "inputs": answers.input_models,
            "n": answers.n,
            "vocab_size": answers.vocab_size,
            "seed": self.seed,
            "emergent_prefixes": int(answers.emergent.sum()),
            "tied_targets": len(np.unique(answers.tie_rows)),
            "submissions": [s.to_json() for s in self.submissions],
            "pairs": self.pairs,
        }


def _int_array(value: object, what: str, path: Path, low: int, high: int) -> np.ndarray:
    """A JSON list of integers in [low, high) as an int64 array, or a one-line InputError."""
    array = np.asarray(value) if isinstance(value, list) and value else np.zeros(0, np.int64)
    if not isinstance(value, list) or array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError(f"{path}: malformed answers file: {what} must be a list of integers")
    if ((array < low) | (array >= high)).any():
        raise InputError(
            f"{path}: malformed answers file: {what} holds {array[(array < low) | (array >= high)][0]}, "
            f"outside [{low}, {high})"
        )
    return array.astype(np.int64)


def load_answers(path: Path) -> Answers:
    """Read and validate an answers file written by `blind_test.py split`."""
    try:
        record = json.loads(read_text_file(path, "an answers file"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not an answers file: malformed JSON ({' '.join(str(e).split())})") from None
    keys = (
        "target_model",
        "input_models",
        "vocab_size",
        "sentences",
        "target_top1",
        "tied_tokens",
        "emergent_prefixes",
        "public_pickle",
    )
    missing = [key for key in keys if not isinstance(record, dict) or key not in record]
    if missing:
        raise InputError(f"{path}: not an answers file of blind_test.py split: no {', '.join(missing)}")
    sentences, vocab_size = record["sentences"], record["vocab_size"]
    bad = lambda what: InputError(f"{path}: malformed answers file: {what}")
    if not (isinstance(sentences, list) and all(isinstance(s, str) for s in sentences)):
        raise bad("sentences must be a list of strings")
    if not (isinstance(vocab_size, int) and not isinstance(vocab_size, bool) and vocab_size >= 2):
        raise bad("vocab_size must be an integer >= 2")
    if not isinstance(record["target_model"], str):
        raise bad("target_model must be a string")
    if not (isinstance(record["input_models"], list) and all(isinstance(m, str) for m in record["input_models"])):
        raise bad("input_models must be a list of strings")
    public = record["public_pickle"]
    if not (isinstance(public, dict) and isinstance(public.get("sha256"), str)):
        raise bad("public_pickle must record the public file's sha256")
    n = len(sentences)
    target_top1 = _int_array(record["target_top1"], "target_top1", path, 0, vocab_size)
    if len(target_top1) != n:
        raise bad(f"{len(target_top1)} target_top1 values for {n} sentences")
    ties = record["tied_tokens"]
    if not (isinstance(ties, list) and len(ties) == n and all(isinstance(t, list) for t in ties)):
        raise bad(f"tied_tokens must be one list per sentence ({n})")
    tie_tokens = _int_array([token for tokens in ties for token in tokens], "tied_tokens", path, 0, vocab_size)
    tie_rows = np.repeat(np.arange(n), [len(tokens) for tokens in ties])
    emergent = np.zeros(n, bool)
    emergent[_int_array(record["emergent_prefixes"], "emergent_prefixes", path, 0, n)] = True
    return Answers(
        record["target_model"],
        record["input_models"],
        vocab_size,
        np.array(sentences, dtype=object),
        target_top1,
        tie_rows,
        tie_tokens,
        emergent,
        public["sha256"],
    )


@dataclass
class Predictions:
    """One strategy's rows of a predictions CSV, as written (not yet checked)."""

    strategy: str
    lines: np.ndarray  # each row's line in the file
    raw_index: list[str]
    raw_guess: list[str]
    sentences: np.ndarray  # object array of str


def read_predictions(path: Path) -> list[Predictions]:
    """Each strategy's rows of a predictions CSV (columns strategy, index, sentence, guess; others
    ignored), in order of first appearance; a file that is no such CSV raises a one-line InputError."""
    text = read_text_file(path, "a predictions CSV")  # a spreadsheet's byte-order mark is fine
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(field.strip() for field in header):
            raise InputError(f"{path}: empty, no header line (expected the columns {','.join(REQUIRED_COLUMNS)})")
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise InputError(
                f"{path}: no column {', '.join(missing)} in its header "
                f"({','.join(header)[:80]}; expected at least {','.join(REQUIRED_COLUMNS)})"
            )
        # The dataset column, where there is one, tells a file of several datasets' predictions.
        where = [header.index(column) for column in REQUIRED_COLUMNS + ("dataset",) * ("dataset" in header)]
        rows, lines = [], []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise InputError(f"{path}: line {reader.line_num} has {len(row)} fields, its header {len(header)}")
            rows.append([row[i] for i in where])
            lines.append(reader.line_num)
    except csv.Error as e:
        raise InputError(f"{path}: malformed CSV at line {reader.line_num} ({e})") from None
    if not rows:
        raise InputError(f"{path}: has a header but no predictions")
    columns = np.array(rows, dtype=object)
    if columns.shape[1] > len(REQUIRED_COLUMNS) and len(set(columns[:, -1])) > 1:
        raise InputError(
            f"{path}: holds predictions for {len(set(columns[:, -1]))} datasets (its dataset column); "
            "give the predictions for the public file only"
        )
    lines = np.array(lines)
    strategies, first = np.unique(columns[:, 0].astype(str), return_index=True)
    out = []
    for strategy in strategies[np.argsort(first)]:
        mine = columns[:, 0] == strategy
        out.append(
            Predictions(
                str(strategy), lines[mine], columns[mine, 1].tolist(), columns[mine, 3].tolist(), columns[mine, 2]
            )
        )
    return out


def _integers(values: list[str]) -> np.ndarray:
    """Decimal integers as int64; anything else (a float, a blank, 20 digits) becomes -1, which no
    index or token id is."""
    return np.array([int(v) if _INTEGER.fullmatch(v.strip()) else -1 for v in values], dtype=np.int64)


def _first(items, count: int) -> str:
    shown = ", ".join(str(item) for item in list(items[:_SHOWN]))
    return shown + (", ..." if count > _SHOWN else "")


def _lines(bad: np.ndarray, lines: np.ndarray, raw: list[str]) -> str:
    """The first few bad rows as `line L: 'value'`."""
    shown = [f"line {line}: {value!r}" for line, value in zip(lines[bad][:_SHOWN], np.array(raw, dtype=object)[bad])]
    return _first(shown, int(bad.sum()))


def check_submission(predictions: Predictions, answers: Answers) -> tuple[np.ndarray | None, str | None]:
    """(the guesses in the answers' prefix order, None), or (None, what is wrong, in one line):
    every prefix of the answers exactly once, with the answers' sentence, and token ids in [0, V)."""
    n, vocab, lines = answers.n, answers.vocab_size, predictions.lines
    index, guess = _integers(predictions.raw_index), _integers(predictions.raw_guess)
    problems = []
    unknown = (index < 0) | (index >= n)
    if unknown.any():
        problems.append(
            f"{unknown.sum()} {plural(unknown.sum(), 'row', 'rows')} with an index that is no prefix "
            f"of the answers (0 to {n - 1}): {_lines(unknown, lines, predictions.raw_index)}"
        )
    known = index[~unknown]
    counts = np.bincount(known, minlength=n)
    missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    if len(missing):
        problems.append(f"{len(missing)} of {n} prefixes missing (index {_first(missing, len(missing))})")
    if len(repeated):
        problems.append(
            f"{len(repeated)} {plural(len(repeated), 'prefix', 'prefixes')} given more than once "
            f"(index {_first(repeated, len(repeated))})"
        )
    foreign = predictions.sentences[~unknown] != answers.sentences[known]
    if foreign.any():
        problems.append(
            f"{foreign.sum()} {plural(foreign.sum(), 'row', 'rows')} whose sentence is not the answers' "
            f"prefix at that index, predictions for another file? "
            f"(index {_first(known[foreign], foreign.sum())})"
        )
    bad_guess = (guess < 0) | (guess >= vocab)
    if bad_guess.any():
        problems.append(
            f"{bad_guess.sum()} {plural(bad_guess.sum(), 'guess', 'guesses')} not a token id in [0, {vocab}): "
            f"{_lines(bad_guess, lines, predictions.raw_guess)}"
        )
    if problems:
        return None, "; ".join(problems)
    guesses = np.empty(n, np.int64)
    guesses[index] = guess
    return guesses, None
