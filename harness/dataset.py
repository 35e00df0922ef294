"""The dataset format: the challenge's pickle `(model_names, sentences, probs)` and its JSON sidecar.

The pickle format is the original challenge's, unchanged: a 3-tuple of the model names (the last
is the target), the prefixes, and a float16 array `probs[prefix, model, token]`. Metadata goes in
a JSON sidecar beside it (`wikipedia.pkl` -> `wikipedia.json`), which records the pickle's size and
SHA-256 so that a sidecar left beside another pickle (a crash between the two writes) is detected.

Loading goes through `harness.safe_pickle` (no code from the file runs); validation walks the
array in chunks, so peak memory stays close to the array's own size. Models are named in full
(`EleutherAI/pythia-12b`) or by their last path component (`pythia-12b`, `short_name`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness import InputError, one_line
from harness.files import atomic_write, remove_stale_temps, temp_path
from harness.safe_pickle import load_pickle, plain_dtype

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
    probs: np.ndarray  # (len(sentences), len(model_names), vocab_size), float16

    @property
    def vocab_size(self) -> int:
        return self.probs.shape[2]


def sidecar_path(dataset_path: str | os.PathLike) -> Path:
    return Path(dataset_path).with_suffix(".json")



def load_dataset(path: str | os.PathLike, check_values: bool = True) -> Dataset:
    """Load and validate a dataset pickle; any problem, whatever the file's bytes, raises a
    one-line InputError."""
    path = Path(path)
    obj, size = load_pickle(path)
    dataset = _check_structure(path, obj, size)
    if check_values:
        check_probabilities(dataset)
    return dataset


def _check_structure(path: Path, obj: Any, size: int) -> Dataset:
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise InputError(f"{path}: expected a tuple (model_names, sentences, probs), got {type(obj).__name__}"
                           + (f" of length {len(obj)}" if isinstance(obj, tuple) else ""))
    model_names, sentences, probs = obj
    if not (isinstance(model_names, list) and all(isinstance(m, str) for m in model_names)):
        raise InputError(f"{path}: model_names must be a list of str")
    if len(model_names) < 2:
        raise InputError(f"{path}: needs at least 2 models (inputs + target), has {len(model_names)}")
    if not (isinstance(sentences, list) and all(isinstance(s, str) for s in sentences)):
        raise InputError(f"{path}: sentences must be a list of str")
    if not isinstance(probs, np.ndarray):
        raise InputError(f"{path}: probs must be a numpy array, got {type(probs).__name__}")
    probs = probs.view(np.ndarray)  # _reconstruct built a _CheckedArray
    if probs.dtype.kind != "f" or not plain_dtype(probs.dtype):
        raise InputError(f"{path}: probs must be floating point (float16), got dtype {probs.dtype}")
    expected = (len(sentences), len(model_names))
    if probs.ndim != 3 or probs.shape[:2] != expected or probs.shape[2] < 2:
        raise InputError(f"{path}: probs has shape {probs.shape}, expected "
                         f"({expected[0]} sentences, {expected[1]} models, vocabulary size)")
    # Every value must be in the file: no zero-stride view can pass for a huge array.
    if not probs.flags.c_contiguous or probs.nbytes > size:
        raise InputError(f"{path}: probs must be a C-contiguous array stored in the file "
                         f"({probs.nbytes} bytes, file {size} bytes)")
    return Dataset(path, model_names, sentences, probs)


def check_probabilities(dataset: Dataset) -> None:
    """Every row finite, non-negative (-0.0 counts as 0, and is rewritten as +0.0 so that float16
    values order like their bit patterns, as `scoring.orderable` needs) and summing to about 1,
    checked chunk by chunk on all cores (numpy releases the GIL in these loops) with little memory
    beyond the array."""
    probs, path = dataset.probs, dataset.path
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (probs.shape[1] * probs.shape[2]))
    starts = range(0, probs.shape[0], rows_per_chunk)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda start: _check_chunk(probs[start:start + rows_per_chunk]), starts))
    if not probs.flags.writeable and any(negative_zero for _, _, negative_zero in results):
        # Read-only (protocol 5 can load so): -0.0 is rewritten in a copy, the rare case.
        dataset.probs = probs.copy()
        bits = dataset.probs.view(np.uint16)
        bits[bits == 0x8000] = 0
    for start, (bad_values, sums, _) in zip(starts, results):
        if bad_values.any():
            i, j = np.argwhere(bad_values)[0]
            raise InputError(f"{path}: probs has NaN, inf or negative values "
                             f"(sentence {start + i}, model {dataset.model_names[j]!r})")
        bad_sums = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if bad_sums.any():
            i, j = np.argwhere(bad_sums)[0]
            raise InputError(f"{path}: probabilities of sentence {start + i}, model {dataset.model_names[j]!r} "
                             f"sum to {sums[i, j]:.4g}, not 1")


def _check_chunk(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rows with NaN/inf/negative values, row sums, whether it holds -0.0) of a (sentences, models,
    vocab) chunk; a writable float16 chunk's -0.0 are rewritten as +0.0 in place."""
    if chunk.dtype != np.float16:
        return ~(np.isfinite(chunk) & (chunk >= 0)).all(axis=2), chunk.sum(axis=2, dtype=np.float64), False
    # As uint16, a float16 is >= 0x7C00 exactly when it is negative, -0.0, inf or NaN: one integer
    # pass instead of numpy's slow float16 arithmetic; the sums go through the float32 table.
    bits = chunk.view(np.uint16)
    suspect = bits.max(axis=2) >= 0x7C00
    negative_zero = False
    if suspect.any():  # rare: look again at those rows, where -0.0 (0x8000) is no error but becomes +0.0
        rows = bits[suspect]
        zeros = rows == 0x8000
        negative_zero = bool(zeros.any())
        rows[zeros] = 0
        if negative_zero and bits.flags.writeable:
            bits[suspect] = rows
        suspect[suspect] = (rows >= 0x7C00).any(axis=1)  # what is left: negative, inf or NaN
    return suspect, np.take(_FLOAT16_VALUES, bits).sum(axis=2), negative_zero



class _HashingWriter:
    """A binary file that hashes what is written through it."""

    def __init__(self, f: BinaryIO):
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += memoryview(data).nbytes
        return self.f.write(data)


def save_dataset(path: str | os.PathLike, model_names: list[str], sentences: list[str],
                 probs: np.ndarray, metadata: dict | None = None) -> dict:
    """Write the pickle (protocol 5: loads without copying the array) and, if given, the sidecar;
    return the pickle's {"bytes", "sha256"}, as the sidecar records them.

    Order, so that any kill leaves a consistent pair: the pickle goes to a temporary file; then the
    sidecar, recording that pickle's size and SHA-256, is renamed into place; then the pickle is. A
    kill in between leaves the old pickle beside a sidecar that no longer matches it, which
    read_sidecar detects; the temporary file is removed by the next write."""
    path = Path(path)
    if probs.shape != (len(sentences), len(model_names), probs.shape[2]):
        raise ValueError(f"probs shape {probs.shape} does not match {len(sentences)} sentences x {len(model_names)} models")
    probs = np.ascontiguousarray(probs, dtype=np.float16)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            writer = _HashingWriter(f)
            pickle.dump((list(model_names), list(sentences), probs), writer, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        written = {"bytes": writer.size, "sha256": writer.sha256.hexdigest()}
        if metadata is not None:
            record = {**metadata, "pickle": written}
            atomic_write(sidecar_path(path), lambda f: json.dump(record, f, indent=2, sort_keys=False), mode="w")
        else:
            sidecar_path(path).unlink(missing_ok=True)  # an old one would describe another pickle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
            actual = {"bytes": os.path.getsize(dataset_path),
                      "sha256": _file_sha256(Path(dataset_path)) if verify_hash else recorded.get("sha256")}
        except OSError:
            actual = None
        if actual != {"bytes": recorded.get("bytes"), "sha256": recorded.get("sha256")}:
            warnings.warn(f"{path}: describes another version of {dataset_path} (size or SHA-256 differ; "
                          "a run was interrupted between the two writes?): its metadata is ignored", stacklevel=2)
            return None
    return metadata


def model_sizes(model_names: list[str], metadata: dict | None) -> dict[str, dict]:
    """Each model's parameter counts from a sidecar's `metadata` (`read_sidecar`: read it once),
    {name: {"non_embedding_params": ..., "total_params": ...}} (None where unknown), or {} without
    a sidecar that lists the pickle's own models in its order: sizes are a property of the models,
    so that check is what matters."""
    models = metadata.get("models") if isinstance(metadata, dict) else None
    if not isinstance(models, list) or [m.get("name") if isinstance(m, dict) else None
                                        for m in models] != list(model_names):
        return {}
    counts = lambda value: value if isinstance(value, int) and not isinstance(value, bool) else None
    return {m["name"]: {"non_embedding_params": counts(m.get("non_embedding_params")),
                        "total_params": counts(m.get("total_params", m.get("parameters")))} for m in models}



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

