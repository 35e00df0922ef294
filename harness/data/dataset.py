"""The dataset format: the challenge's pickle `(model_names, sentences, probs)` and its JSON sidecar.

The pickle format is the original challenge's, unchanged: a 3-tuple of the model names (the last
is the target), the prefixes, and a float16 array `probs[prefix, model, token]`. Metadata goes in
a JSON sidecar beside it (`wikipedia.pkl` -> `wikipedia.json`), which records the pickle's size and
SHA-256 so that a sidecar left beside another pickle (a crash between the two writes) is detected,
and, for prefix sets with answers, each prefix's gold answer and its token ids (`sidecar_answers`).

Loading goes through `harness.data.safe_pickle` (no code from the file runs), which memory-maps the
array where the file holds it (protocols 3-5): `Dataset.probs` is a read-only map, read from the
page cache as it is used, and validation streams through it in chunks. Writing (`DatasetFile`)
fills the array in place in the file, so neither side holds the whole array in memory. Models are
named in full (`EleutherAI/pythia-12b`) or by their last path component (`pythia-12b`, `short_name`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness import InputError, one_line
from harness.data.files import atomic_write, remove_stale_temps, temp_path
from harness.data.safe_pickle import find_payload, load_pickle, plain_dtype

FORMAT = (
    "pickle of (model_names, sentences, probs); probs[i, j, k] = P(token k | sentence i) under model j, "
    "float16; the last model is the target"
)  # as sidecars describe it
ROW_SUM_TOLERANCE = 0.02  # float16 rounding and underflow lose far less than this
_CHUNK_ELEMENTS = 1 << 18  # validate ~256K values at a time: the temporaries stay in cache (1.8x faster than 4M)
# Every float16 bit pattern's float32 value: a table look-up converts ~2x faster than numpy's
# float16 cast (measured on AVX2 x86), exactly.
_FLOAT16_VALUES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


@dataclass
class Dataset:
    path: Path
    model_names: list[str]
    sentences: list[str]
    probs: np.ndarray  # (len(sentences), len(model_names), vocab_size), float16, read-only (usually a map of the file)

    @property
    def vocab_size(self) -> int:
        return self.probs.shape[2]


def sidecar_path(dataset_path: str | os.PathLike) -> Path:
    return Path(dataset_path).with_suffix(".json")


def load_dataset(path: str | os.PathLike, check_values: bool = True) -> Dataset:
    """Load and validate a dataset pickle, its array read-only (and memory-mapped, unless the pickle
    stores it as text: protocols 0-2); any problem, whatever the file's bytes, raises a one-line
    InputError."""
    path = Path(path)
    obj, size = load_pickle(path)
    dataset = _check_structure(path, obj, size)
    if check_values:
        check_probabilities(dataset)
    dataset.probs.flags.writeable = False  # callers read it; scoring copies what strategies get
    # A plain ndarray over the map: pickling it (or a slice, as a researcher may) then writes the
    # original format, not a numpy.memmap.
    dataset.probs = dataset.probs.view(np.ndarray)
    return dataset


def _check_structure(path: Path, obj: Any, size: int) -> Dataset:
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise InputError(
            f"{path}: expected a tuple (model_names, sentences, probs), got {type(obj).__name__}"
            + (f" of length {len(obj)}" if isinstance(obj, tuple) else "")
        )
    model_names, sentences, probs = obj
    if not (isinstance(model_names, list) and all(isinstance(m, str) for m in model_names)):
        raise InputError(f"{path}: model_names must be a list of str")
    if len(model_names) < 2:
        raise InputError(f"{path}: needs at least 2 models (inputs + target), has {len(model_names)}")
    if not (isinstance(sentences, list) and all(isinstance(s, str) for s in sentences)):
        raise InputError(f"{path}: sentences must be a list of str")
    if not isinstance(probs, np.ndarray):
        raise InputError(f"{path}: probs must be a numpy array, got {type(probs).__name__}")
    if not isinstance(probs, np.memmap):
        probs = probs.view(np.ndarray)  # _reconstruct built a _CheckedArray
    if probs.dtype.kind != "f" or not plain_dtype(probs.dtype):
        raise InputError(f"{path}: probs must be floating point (float16), got dtype {probs.dtype}")
    expected = (len(sentences), len(model_names))
    if probs.ndim != 3 or probs.shape[:2] != expected or probs.shape[2] < 2:
        raise InputError(
            f"{path}: probs has shape {probs.shape}, expected "
            f"({expected[0]} sentences, {expected[1]} models, vocabulary size)"
        )
    # Every value must be in the file: no zero-stride view can pass for a huge array.
    if not probs.flags.c_contiguous or probs.nbytes > size:
        raise InputError(
            f"{path}: probs must be a C-contiguous array stored in the file ({probs.nbytes} bytes, file {size} bytes)"
        )
    return Dataset(path, model_names, sentences, probs)


def check_probabilities(dataset: Dataset) -> None:
    """Every row finite, non-negative (-0.0 counts as 0, and is rewritten as +0.0 so that float16
    values order like their bit patterns, as `scoring.orderable` needs) and summing to about 1,
    checked chunk by chunk on all cores (numpy releases the GIL in these loops): a map is read
    through, not into memory."""
    probs, path = dataset.probs, dataset.path
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (probs.shape[1] * probs.shape[2]))
    starts = range(0, probs.shape[0], rows_per_chunk)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda start: _check_chunk(probs[start : start + rows_per_chunk]), starts))
    for start, (bad_values, sums, _) in zip(starts, results):
        if bad_values.any():
            i, j = np.argwhere(bad_values)[0]
            raise InputError(
                f"{path}: probs has NaN, inf or negative values "
                f"(sentence {start + i}, model {dataset.model_names[j]!r})"
            )
        bad_sums = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if bad_sums.any():
            i, j = np.argwhere(bad_sums)[0]
            raise InputError(
                f"{path}: probabilities of sentence {start + i}, model {dataset.model_names[j]!r} "
                f"sum to {sums[i, j]:.4g}, not 1"
            )
    negative_zeros = [start for start, (_, _, negative_zero) in zip(starts, results) if negative_zero]
    if negative_zeros:
        dataset.probs = _without_negative_zeros(probs, negative_zeros, rows_per_chunk)


def _check_chunk(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rows with NaN/inf/negative values, row sums, whether it holds -0.0) of a (sentences, models,
    vocab) chunk."""
    if chunk.dtype != np.float16:
        return ~(np.isfinite(chunk) & (chunk >= 0)).all(axis=2), chunk.sum(axis=2, dtype=np.float64), False
    # As uint16, a float16 is >= 0x7C00 exactly when it is negative, -0.0, inf or NaN: one integer
    # pass instead of numpy's slow float16 arithmetic; the sums go through the float32 table.
    bits = chunk.view(np.uint16)
    suspect = bits.max(axis=2) >= 0x7C00
    negative_zero = False
    if suspect.any():  # rare: look again at those rows, where -0.0 (0x8000) is no error
        rows = bits[suspect]
        zeros = rows == 0x8000
        negative_zero = bool(zeros.any())
        rows[zeros] = 0
        suspect[suspect] = (rows >= 0x7C00).any(axis=1)  # what is left: negative, inf or NaN
    return suspect, np.take(_FLOAT16_VALUES, bits).sum(axis=2), negative_zero


def _without_negative_zeros(probs: np.ndarray, starts: list[int], rows: int) -> np.ndarray:
    """`probs` with -0.0 rewritten as +0.0 in the chunks at `starts`: in place if it is writable;
    a read-only map is mapped again copy-on-write, so that only the pages that hold -0.0 are
    copied into memory; any other read-only array is copied."""
    if isinstance(probs, np.memmap) and not probs.flags.writeable:
        probs = np.memmap(probs.filename, probs.dtype, mode="c", offset=probs.offset, shape=probs.shape)
    elif not probs.flags.writeable:
        probs = probs.copy()
    for start in starts:
        bits = probs[start : start + rows].view(np.uint16)
        bits[bits == 0x8000] = 0  # writes only where the mask is set: the other pages stay shared
    return probs


# The array's bytes start at a multiple of this in files written here: an unaligned float16 map
# is slower to read (measured: argmax over float16 1.3-1.6x, top1's uint16 argmax ~1.1x).
PAYLOAD_ALIGNMENT = 64
_COPY_CHUNK_BYTES = 1 << 24  # copy_rows' chunk: 16 MB


class _PayloadSkipper:
    """The file `pickle.dump` writes through: numpy's protocol-5 array data (a PickleBuffer, which
    the pickler writes outside any frame once it is 64 KB or more) is not written but allocated on
    disk, after padding that aligns it (SHORT_BINBYTES k, k bytes, POP: a no-op to any unpickler).
    One write is held back, because the data's opcode ends the write before it."""

    def __init__(self, f: BinaryIO):
        self.f, self.held = f, b""

    def write(self, data: Any) -> int:
        if isinstance(data, pickle.PickleBuffer):
            nbytes = memoryview(data).nbytes
            header = b"\x96" + struct.pack("<Q", nbytes)  # BYTEARRAY8 and the data's length
            if not self.held.endswith(header):
                raise RuntimeError("numpy pickled its array in an unexpected way")
            self.f.write(self.held[: -len(header)])
            pad = -(self.f.tell() + 3 + len(header)) % PAYLOAD_ALIGNMENT
            self.f.write(b"C" + bytes([pad]) + bytes(pad) + b"0" + header)
            _allocate(self.f, nbytes)
            self.held = b""
            return nbytes
        self.f.write(self.held)
        self.held = bytes(data)
        return len(self.held)

    def close(self) -> None:
        self.f.write(self.held)


def _allocate(f: BinaryIO, nbytes: int) -> None:
    """Reserve `nbytes` of disk at the file's position and move past them: a full disk fails here,
    as an OSError, not later as a SIGBUS when a map of the file is written."""
    f.flush()
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(f.fileno(), f.tell(), nbytes)  # glibc writes zeros where the file system cannot
        f.seek(nbytes, os.SEEK_CUR)
    else:  # macOS
        zeros = bytes(min(nbytes, 1 << 20))
        for start in range(0, nbytes, len(zeros)):
            f.write(zeros[: nbytes - start])


@dataclass
class DatasetFile:
    """A dataset pickle being written: the pickle is in the temporary file `tmp`, its array's
    bytes (zeros so far) at `offset`. Fill them through `open()` (several processes may, each its
    own rows), then `finish` makes it the dataset at `path`, or `discard` removes it."""

    path: Path
    tmp: Path
    offset: int
    shape: tuple[int, int, int]

    def open(self) -> np.ndarray:
        """The array in the file, writable: a map, written to disk as the pages are filled."""
        if 0 in self.shape:
            return np.zeros(self.shape, np.float16)  # no bytes to map
        return np.memmap(self.tmp, np.float16, mode="r+", offset=self.offset, shape=self.shape)

    def fill(self, write: Callable[[np.ndarray], None]) -> None:
        """`write(array)` into the file's array through one `open()` map, flushed; any failure
        removes the file (`discard`) and is raised."""
        try:
            out = self.open()
            write(out)
            if isinstance(out, np.memmap):
                out.flush()
            del out
        except BaseException:
            self.discard()
            raise

    def finish(self, metadata: dict | None) -> dict:
        """Make the file the dataset (flush the maps from `open()` first) and write its sidecar;
        return the pickle's {"bytes", "sha256"}, as the sidecar records them.

        Order, so that any kill leaves a consistent pair: the pickle is synced and hashed; then the
        sidecar, recording that pickle's size and SHA-256, is renamed into place; then the pickle is.
        A kill in between leaves the old pickle beside a sidecar that no longer matches it, which
        read_sidecar detects; the temporary file is removed by the next write."""
        try:
            with open(self.tmp, "rb") as f:
                os.fsync(f.fileno())
                written = {"bytes": os.fstat(f.fileno()).st_size, "sha256": _sha256(f)}
            if metadata is not None:
                record = {**metadata, "pickle": written}
                atomic_write(
                    sidecar_path(self.path), lambda f: json.dump(record, f, indent=2, sort_keys=False), mode="w"
                )
            else:
                sidecar_path(self.path).unlink(missing_ok=True)  # an old one would describe another pickle
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return written

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def start_dataset(
    path: str | os.PathLike, model_names: list[str], sentences: list[str], vocab_size: int
) -> DatasetFile:
    """Write a dataset pickle (protocol 5, the original format) to a temporary file beside `path`,
    with its (sentences, models, vocab_size) float16 array all zeros, to be filled in place.

    The pickler writes the pickle of a zero array, whose data it is handed but never reads (np.zeros
    comes from calloc: untouched, it costs no memory) and which is allocated on disk instead of
    written; where the data lies is then found as the loader finds it."""
    path = Path(path)
    shape = (len(sentences), len(model_names), vocab_size)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            writer = _PayloadSkipper(f)
            pickle.dump((list(model_names), list(sentences), np.zeros(shape, np.float16)), writer, protocol=5)
            writer.close()
        payload = find_payload(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    nbytes = 2 * shape[0] * shape[1] * shape[2]
    if nbytes and (payload is None or payload.length != nbytes):
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{tmp}: the array's data is not where numpy's pickle puts it")
    return DatasetFile(path, tmp, payload.offset if payload else 0, shape)


def save_dataset(
    path: str | os.PathLike,
    model_names: list[str],
    sentences: list[str],
    probs: np.ndarray,
    metadata: dict | None = None,
    columns: list[int] | None = None,
) -> dict:
    """Write the pickle (`start_dataset`, filled from `probs` a chunk at a time) and, if given,
    the sidecar (`DatasetFile.finish`); return the pickle's {"bytes", "sha256"}. With `columns`,
    only those models of `probs` (e.g. a map of another dataset) are written, in that order."""
    models = len(model_names) if columns is None else len(columns)
    if probs.shape[0] != len(sentences) or probs.ndim != 3 or len(model_names) != models:
        raise ValueError(
            f"probs shape {probs.shape} does not match {len(sentences)} sentences x {len(model_names)} models"
        )
    file = start_dataset(path, model_names, sentences, probs.shape[2])
    file.fill(lambda out: copy_rows(out, probs, columns))
    return file.finish(metadata)


def copy_rows(out: np.ndarray, source: np.ndarray, columns: list[int] | None = None) -> None:
    """out[:] = source (or its models at `columns`; cast to out's dtype), 16 MB of rows at a time:
    when either is a map, no more than that is ever in memory."""
    rows = max(1, _COPY_CHUNK_BYTES // max(1, source[:1].nbytes))
    for start in range(0, len(source), rows):
        block = source[start : start + rows]
        out[start : start + rows] = block if columns is None else block[:, columns]


def _sha256(f: BinaryIO) -> str:
    """The SHA-256 of an open file, read 1 MB at a time (hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.sha256()
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256(f)


def read_sidecar(dataset_path: str | os.PathLike, verify_hash: bool = True) -> dict | None:
    """The dataset's metadata, or None when it has no sidecar (the original challenge's pickles)
    or one that does not match the pickle (a warning says so). The pickle is hashed here, not in
    load_dataset, so loading stays as fast as before; `verify_hash=False` checks the size only
    (for callers that also check the metadata against the pickle's own contents)."""
    path = sidecar_path(dataset_path)
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: malformed sidecar JSON ({one_line(e)})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({one_line(e.strerror or e)})") from None
    recorded = metadata.get("pickle") if isinstance(metadata, dict) else None
    if isinstance(recorded, dict):
        try:
            actual = {
                "bytes": os.path.getsize(dataset_path),
                "sha256": _file_sha256(Path(dataset_path)) if verify_hash else recorded.get("sha256"),
            }
        except OSError:
            actual = None
        if actual != {"bytes": recorded.get("bytes"), "sha256": recorded.get("sha256")}:
            warnings.warn(
                f"{path}: describes another version of {dataset_path} (size or SHA-256 differ; "
                "a run was interrupted between the two writes?): its metadata is ignored",
                stacklevel=2,
            )
            return None
    return metadata


def model_sizes(model_names: list[str], metadata: dict | None) -> dict[str, dict]:
    """Each model's parameter counts from a sidecar's `metadata` (`read_sidecar`: read it once),
    {name: {"non_embedding_params": ..., "total_params": ...}} (None where unknown), or {} without
    a sidecar that lists the pickle's own models in its order: sizes are a property of the models,
    so that check is what matters."""
    models = metadata.get("models") if isinstance(metadata, dict) else None
    if not isinstance(models, list) or [m.get("name") if isinstance(m, dict) else None for m in models] != list(
        model_names
    ):
        return {}
    counts = lambda value: value if isinstance(value, int) and not isinstance(value, bool) else None
    return {
        m["name"]: {
            "non_embedding_params": counts(m.get("non_embedding_params")),
            "total_params": counts(m.get("total_params", m.get("parameters"))),
        }
        for m in models
    }


@dataclass(frozen=True)
class Answer:
    """A prefix's gold continuation (" 73", " True") and its token ids under the dataset's tokenizer."""

    text: str
    ids: tuple[int, ...]


def sidecar_answers(dataset: Dataset, metadata: dict | None) -> list[Answer] | None:
    """Each sentence's gold answer from the sidecar's `metadata` (`read_sidecar`: read it once),
    aligned with `dataset.sentences`; None when the dataset has none (a plain prefix set, the
    original pickles, no sidecar). A malformed list is a one-line error naming the sidecar."""
    answers = metadata.get("answers") if isinstance(metadata, dict) else None
    if answers is None:
        return None
    where = sidecar_path(dataset.path)
    if not isinstance(answers, list) or len(answers) != len(dataset.sentences):
        raise InputError(f'{where}: "answers" must be a list with one answer per sentence ({len(dataset.sentences)})')
    parsed = []
    for i, answer in enumerate(answers):
        text, ids = (answer.get("text"), answer.get("ids")) if isinstance(answer, dict) else (None, None)
        if not (
            isinstance(text, str)
            and text
            and isinstance(ids, list)
            and ids
            and all(type(t) is int and 0 <= t < dataset.vocab_size for t in ids)
        ):
            raise InputError(
                f'{where}: answer {i} must be {{"text": a non-empty string, "ids": token ids below '
                f"the vocabulary size {dataset.vocab_size}}}"
            )
        parsed.append(Answer(text, tuple(ids)))
    return parsed


@dataclass
class AnswerScores:
    """What preprocessing's answer pass measured (`preprocess_train.py` on a prefix set with answers):
    arrays over (models in the file's order, prefixes)."""

    first_ids: np.ndarray  # (n,) each answer's first token id
    loglik: np.ndarray  # the whole answer's teacher-forced log-likelihood, in nats
    greedy: np.ndarray  # bool: greedy decoding writes the whole answer
    first_top1: np.ndarray  # bool: the answer's first token is the model's top-1
    choices: list[str] | None  # a choice task's answers (glue-rte: " True", " False"), else None
    choice_logprobs: (
        np.ndarray | None
    )  # (models, n, choices): each choice's log-likelihood as the prefix's continuation
    gold_choice: np.ndarray | None  # (n,) the gold answer's index in `choices`

    @property
    def correct(self) -> np.ndarray:
        """(models, n) whether each model answers each prefix right: of a choice task, its likeliest
        choice is the gold one (lm-evaluation-harness's multiple-choice accuracy); else greedy
        decoding writes the gold answer (its `is_greedy`, the arithmetic tasks' accuracy)."""
        if self.choice_logprobs is None:
            return self.greedy
        return self.choice_logprobs.argmax(axis=2) == self.gold_choice[None, :]


def sidecar_answer_scores(dataset: Dataset, metadata: dict | None) -> AnswerScores | None:
    """The answer pass's scores from the sidecar's `metadata`, one per sentence; None when it has
    none (no answers, or a sidecar written before the answer pass)."""
    answers = sidecar_answers(dataset, metadata)
    if answers is None or not all(isinstance(a, dict) and "loglik" in a for a in metadata["answers"]):
        return None
    where, models = sidecar_path(dataset.path), len(dataset.model_names)
    rows = metadata["answers"]
    choices = metadata.get("prefixes", {}).get("choices") if isinstance(metadata.get("prefixes"), dict) else None
    fields = ["loglik", "greedy", "first_top1"] + (["choice_logprobs"] if choices else [])
    arrays = {}
    for name in fields:
        try:
            arrays[name] = np.array([row[name] for row in rows], dtype=np.float64).swapaxes(0, 1)
        except (KeyError, TypeError, ValueError):
            arrays[name] = None
        if arrays[name] is None or arrays[name].shape[0] != models:
            raise InputError(f'{where}: every answer\'s "{name}" must hold one value per model ({models})')
    gold_choice = None
    if choices:
        if any(a.text not in choices for a in answers):
            raise InputError(f"{where}: an answer is not one of the choices {choices}")
        gold_choice = np.array([choices.index(a.text) for a in answers])
    return AnswerScores(
        np.array([a.ids[0] for a in answers]),
        arrays["loglik"],
        arrays["greedy"].astype(bool),
        arrays["first_top1"].astype(bool),
        choices,
        arrays.get("choice_logprobs"),
        gold_choice,
    )


@dataclass
class NoiseCeiling:
    """Another seed of the target, scored against it per prefix (`preprocess_train.py --ceiling-model`)."""

    model: str
    top1: np.ndarray  # (n,) its top-1 id
    kl: np.ndarray  # (n,) KL(target || it), nats
    alpha: np.ndarray  # (n,) 1 - TV(target, it)


def sidecar_noise_ceiling(dataset: Dataset, metadata: dict | None) -> NoiseCeiling | None:
    """The sidecar's noise ceiling, or None when it has none; a malformed one is a one-line error."""
    ceiling = metadata.get("noise_ceiling") if isinstance(metadata, dict) else None
    if ceiling is None:
        return None
    n = len(dataset.sentences)
    try:
        name = ceiling["model"]["name"]
        arrays = [
            np.asarray(ceiling[key], dtype=dtype)
            for key, dtype in (("top1", np.int64), ("kl", np.float64), ("alpha", np.float64))
        ]
        ok = (
            isinstance(name, str)
            and all(a.shape == (n,) for a in arrays)
            and arrays[0].min(initial=0) >= 0
            and arrays[0].max(initial=0) < dataset.vocab_size
        )
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            f'{sidecar_path(dataset.path)}: "noise_ceiling" must name its model and hold a top-1 id, '
            f"kl and alpha per sentence ({n})"
        )
    return NoiseCeiling(name, *arrays)


def short_name(model: str) -> str:
    """A model's name without its folders: `EleutherAI/pythia-12b` -> `pythia-12b`, `build/suite-1.5m/` -> `suite-1.5m`."""
    return model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def find_model(names: list[str], wanted: str, path: str | os.PathLike) -> int:
    """Index of a model given by its full name or by its last path component (`suite-1.5m`)."""
    if wanted in names:
        return names.index(wanted)
    matches = [i for i, name in enumerate(names) if short_name(name) == wanted]
    if len(matches) > 1:
        raise InputError(f"{path}: model {wanted!r} is ambiguous: it matches {', '.join(names[i] for i in matches)}")
    if not matches:
        raise InputError(f"{path}: no model {wanted!r} (models: {', '.join(names)})")
    return matches[0]
