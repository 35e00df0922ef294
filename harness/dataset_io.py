"""Dataset files: the challenge's pickle `(model_names, sentences, probs)` and its JSON sidecar.

The pickle format is the original challenge's, unchanged: a 3-tuple of the model names (the last
is the target), the prefixes, and a float16 array `probs[prefix, model, token]`. Metadata goes in
a JSON sidecar beside it (`wikipedia.pkl` -> `wikipedia.json`).

Loading never runs code from the file: the unpickler only resolves the handful of numpy globals
that an array needs. Validation walks the array in chunks so that peak memory stays close to the
array's own size. Writing goes to a temporary file that is renamed into place, so a crash never
leaves a half-written dataset.
"""

from __future__ import annotations

import codecs
import json
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import InputError

# Every global a dataset pickle may name, for numpy 1.x ("numpy.core") and 2.x ("numpy._core")
# writers and for pickle protocols 2-5. Anything else (os.system, builtins.eval, ...) is refused.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # protocol 2 stores bytes this way
}
for _core in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
    _SAFE_GLOBALS[(f"{_core}.multiarray", "scalar")] = np._core.multiarray.scalar
    _SAFE_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = np._core.numeric._frombuffer

ROW_SUM_TOLERANCE = 0.02  # float16 rounding and underflow lose far less than this
_CHUNK_ELEMENTS = 1 << 18  # validate ~256K values at a time: the temporaries stay in cache (1.8x faster than 4M)
# Every float16 bit pattern's float32 value: a table look-up converts ~2x faster than numpy's
# float16 cast (measured on AVX2 x86), exactly.
_FLOAT16_VALUES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


class _Refused(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(
                f"it refers to {module}.{name}, which a dataset never holds "
                "(refused: no code from the file was run)"
            ) from None


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
    """Load and validate a dataset pickle; any problem raises a one-line InputError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a dataset pickle") from None
    except _Refused as e:
        raise InputError(f"{path}: not a loadable dataset pickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as e:
        raise InputError(f"{path}: truncated or malformed pickle ({type(e).__name__}: {e})") from None
    dataset = _check_structure(path, obj)
    if check_values:
        check_probabilities(dataset)
    return dataset


def _check_structure(path: Path, obj: Any) -> Dataset:
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
    if probs.dtype.kind != "f":
        raise InputError(f"{path}: probs must be floating point (float16), got dtype {probs.dtype}")
    expected = (len(sentences), len(model_names))
    if probs.ndim != 3 or probs.shape[:2] != expected or probs.shape[2] < 2:
        raise InputError(f"{path}: probs has shape {probs.shape}, expected "
                         f"({expected[0]} sentences, {expected[1]} models, vocabulary size)")
    return Dataset(path, model_names, sentences, probs)


def check_probabilities(dataset: Dataset) -> None:
    """Every row finite, non-negative and summing to about 1, checked chunk by chunk on all cores
    (numpy releases the GIL in these loops) with little memory beyond the array itself."""
    probs, path = dataset.probs, dataset.path
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (probs.shape[1] * probs.shape[2]))
    starts = range(0, probs.shape[0], rows_per_chunk)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda start: _check_chunk(probs[start:start + rows_per_chunk]), starts))
    for start, (bad_values, sums) in zip(starts, results):
        if bad_values.any():
            i, j = np.argwhere(bad_values)[0]
            raise InputError(f"{path}: probs has NaN, inf or negative values "
                             f"(sentence {start + i}, model {dataset.model_names[j]!r})")
        bad_sums = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if bad_sums.any():
            i, j = np.argwhere(bad_sums)[0]
            raise InputError(f"{path}: probabilities of sentence {start + i}, model {dataset.model_names[j]!r} "
                             f"sum to {sums[i, j]:.4g}, not 1")


def _check_chunk(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows with NaN/inf/negative values, row sums) of a (sentences, models, vocab) chunk."""
    if chunk.dtype != np.float16:
        return ~(np.isfinite(chunk) & (chunk >= 0)).all(axis=2), chunk.sum(axis=2, dtype=np.float64)
    # As uint16, a float16 is >= 0x7C00 exactly when it is negative, inf or NaN: one integer pass
    # instead of numpy's slow float16 arithmetic; the sums go through the float32 table.
    bits = chunk.view(np.uint16)
    return bits.max(axis=2) >= 0x7C00, np.take(_FLOAT16_VALUES, bits).sum(axis=2)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_dataset(path: str | os.PathLike, model_names: list[str], sentences: list[str],
                 probs: np.ndarray, metadata: dict | None = None) -> None:
    """Write the pickle (protocol 5: loads without copying the array) and, if given, the sidecar."""
    if probs.shape != (len(sentences), len(model_names), probs.shape[2]):
        raise ValueError(f"probs shape {probs.shape} does not match {len(sentences)} sentences x {len(model_names)} models")
    probs = np.ascontiguousarray(probs, dtype=np.float16)
    atomic_write(path, lambda f: pickle.dump((list(model_names), list(sentences), probs), f, protocol=5))
    if metadata is not None:
        atomic_write(sidecar_path(path), lambda f: json.dump(metadata, f, indent=2, sort_keys=False), mode="w")


def read_sidecar(dataset_path: str | os.PathLike) -> dict | None:
    """The dataset's metadata, or None when it has no sidecar (the original challenge's pickles)."""
    path = sidecar_path(dataset_path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: malformed sidecar JSON ({e})") from None
