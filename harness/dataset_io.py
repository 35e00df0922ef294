"""Dataset files: the challenge's pickle `(model_names, sentences, probs)` and its JSON sidecar.

The pickle format is the original challenge's, unchanged: a 3-tuple of the model names (the last
is the target), the prefixes, and a float16 array `probs[prefix, model, token]`. Metadata goes in
a JSON sidecar beside it (`wikipedia.pkl` -> `wikipedia.json`), which records the pickle's size and
SHA-256 so that a sidecar left beside another pickle (a crash between the two writes) is detected.

Loading never runs code from the file and never lets the file choose how much memory is used:
a pre-scan of the opcode stream (pickletools' opcode table) bounds every length, frame and memo
index by the file's size before anything is built, and the unpickler only resolves the few numpy
globals an array needs, each wrapped so that it builds no more bytes than the file holds.
Validation walks the array in chunks so that peak memory stays close to the array's own size.
Writing goes to a temporary file that is renamed into place, so a crash never leaves a
half-written dataset; stale temporary files of killed runs are removed by the next write.
`preprocess_train.py`'s resume cache is stored here too: one .npy slice per finished model, with
its summary row beside it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import pickle
import pickletools
import re
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from harness import InputError

# numpy's own pickling functions, taken from what numpy itself pickles: the same on numpy 1.x
# ("numpy.core") and 2.x ("numpy._core"), with no import of either private module.
_reconstruct = np.empty(0).__reduce__()[0]
_frombuffer = np.empty(1).__reduce_ex__(5)[0]
_scalar = np.float16(0).__reduce__()[0]

# The opcodes a pickle of (list of str, list of str, numeric array) can hold, in protocols 0-5.
# Left out: dicts, sets, object construction (INST, OBJ, NEWOBJ), the extension registry,
# persistent ids and out-of-band buffers. At most a few calls: numpy makes <= 4 REDUCE and 2 BUILD.
_ALLOWED_OPCODES = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK INT BININT BININT1 BININT2 LONG LONG1 NONE NEWTRUE NEWFALSE
    FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
    UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8 EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE
    TUPLE1 TUPLE2 TUPLE3 GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL
    REDUCE BUILD""".split())
_MAX_CALLS = {"REDUCE": 8, "BUILD": 4, "GLOBAL": 8, "STACK_GLOBAL": 8}
# A prefix costs 2 opcodes (a string and its memo entry): this allows 1.2 million prefixes and keeps
# the scan, ~1 us an opcode, to a few seconds whatever the file.
_MAX_OPCODES = 2_500_000
# How pickletools' counted arguments store their length (the data follows it).
_LENGTH_FORMATS = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
                   pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
# Numeric dtypes only: no object, string, void or structured dtype (their state sets sizes).
_DTYPE_SPECS = frozenset(f"{kind}{size}" for kind in "fiu" for size in (1, 2, 4, 8)) | {"b1"}

ROW_SUM_TOLERANCE = 0.02  # float16 rounding and underflow lose far less than this
_CHUNK_ELEMENTS = 1 << 18  # validate ~256K values at a time: the temporaries stay in cache (1.8x faster than 4M)
# Every float16 bit pattern's float32 value: a table look-up converts ~2x faster than numpy's
# float16 cast (measured on AVX2 x86), exactly.
_FLOAT16_VALUES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


class _Refused(pickle.UnpicklingError):
    """The file asks for something a dataset never needs (code, a codec, a view...)."""


class _Malformed(pickle.UnpicklingError):
    """The pre-scan found the bytes are no dataset pickle (or lie about their lengths)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())  # some of CPython's messages hold newlines


def _scan(f: BinaryIO, size: int) -> None:
    """Walk the opcode stream without building anything: refuse opcodes a dataset never holds,
    and any length, frame or memo index that the file's size cannot back (the unpickler would
    allocate it before finding out)."""
    opcodes, calls = 0, dict.fromkeys(_MAX_CALLS, 0)
    while True:
        pos = f.tell()
        code = f.read(1)
        if not code:
            raise _Malformed("the file ends before the pickle's STOP opcode")
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None:
            raise _Malformed(f"unknown opcode {code!r} at byte {pos}")
        if op.name not in _ALLOWED_OPCODES:
            raise _Malformed(f"it uses the {op.name} opcode (byte {pos}), which a dataset never holds")
        opcodes += 1
        if opcodes > _MAX_OPCODES:
            raise _Refused(f"it has more than {_MAX_OPCODES} opcodes (over a million prefixes)")
        if op.name in calls:
            calls[op.name] += 1
            if calls[op.name] > _MAX_CALLS[op.name]:
                raise _Refused(f"it has more than {_MAX_CALLS[op.name]} {op.name} opcodes; a dataset has a few")
        if op.name == "STOP":
            return
        if op.arg is None:
            continue
        if op.arg.n in _LENGTH_FORMATS:  # counted data: check the length, skip the data unread
            fmt = _LENGTH_FORMATS[op.arg.n]
            raw = f.read(struct.calcsize(fmt))
            if len(raw) < struct.calcsize(fmt):
                raise _Malformed(f"the file ends inside {op.name} at byte {pos}")
            length = struct.unpack(fmt, raw)[0]
            if not 0 <= length <= size - f.tell():
                raise _Malformed(f"{op.name} at byte {pos} claims {length} bytes, more than the file holds")
            f.seek(length, os.SEEK_CUR)
            continue
        arg = op.arg.reader(f)  # small fixed-size or newline-terminated arguments
        if op.name == "FRAME" and arg > size - f.tell():
            raise _Malformed(f"FRAME at byte {pos} claims {arg} bytes, more than the file holds")
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg < opcodes:
            # Writers number memo entries 0, 1, 2...; the unpickler sizes its memo by the index.
            raise _Malformed(f"{op.name} at byte {pos} stores memo entry {arg}, past any the pickle can have")


class _NdarrayClass:
    """Stands for numpy.ndarray in a pickle: numpy passes it to _reconstruct, never calls it (a
    call could make a view of any size, e.g. zero strides over a 2-byte buffer)."""

    def __call__(self, *args: Any) -> None:
        raise _Refused("it calls numpy.ndarray directly, which numpy's own pickles never do")


_NDARRAY = _NdarrayClass()


def _plain(dtype: Any) -> bool:
    """A numeric dtype as np.dtype makes it: the pickle's dtype state can set other sizes, or flags
    that claim object references (numpy then misreads the data and cannot even free the array)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype:
        return False
    canonical = np.dtype(dtype.str)
    return (dtype.flags, dtype.itemsize, dtype.alignment) == (canonical.flags, canonical.itemsize, canonical.alignment)


class _CheckedArray(np.ndarray):
    """What _reconstruct builds: numpy's BUILD state then goes through a check of its dtype first."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and _plain(state[2])):
            raise _Refused("its array state has a dtype that a dataset never holds")
        super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's pickling globals, each checked, and charges what they build to a
    budget of the file's size."""

    def __init__(self, file: BinaryIO, size: int):
        super().__init__(file)
        self.budget = size

    def _spend(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise _Refused("its calls build more bytes than the file holds")

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            module = "multiarray"  # numpy 1.x and 2.x writers
        found = {("_codecs", "encode"): self._encode, ("numpy", "ndarray"): _NDARRAY,
                 ("numpy", "dtype"): self._dtype, ("multiarray", "_reconstruct"): self._reconstruct,
                 ("multiarray", "scalar"): self._scalar, ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
                 ("numpy._core.numeric", "_frombuffer"): self._frombuffer}.get((module, name))
        if found is None:
            raise _Refused(f"it refers to {module}.{name}, which a dataset never holds "
                           "(refused: no code from the file was run)")
        return found

    def _encode(self, text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # Protocol 2 stores bytes as _codecs.encode(str, "latin1"); other codecs can grow their input.
        if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _Refused("it calls _codecs.encode other than as numpy's pickles do (a str, latin1)")
        self._spend(len(text))
        return text.encode("latin-1")

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if not isinstance(spec, str) or spec not in _DTYPE_SPECS or not isinstance(align, bool):
            raise _Refused(f"it has dtype {_one_line(repr(spec))[:40]}; a dataset's arrays are numeric")
        return np.dtype(spec, align, True)  # a copy: the pickle's state must not change numpy's own dtypes

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> np.ndarray:
        if cls is not _NDARRAY or not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused("it calls numpy's _reconstruct other than as numpy's pickles do")
        self._spend(int(np.prod(shape, dtype=object)))  # typecode is one byte
        return _reconstruct(_CheckedArray, shape, typecode)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not (isinstance(buffer, (bytes, bytearray)) and _plain(dtype)):  # reshape checks the size
            raise _Refused("it calls numpy's _frombuffer other than as numpy's pickles do")
        return _frombuffer(buffer, dtype, shape, order)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        if not _plain(dtype):
            raise _Refused("it calls numpy's scalar other than as numpy's pickles do")
        self._spend(dtype.itemsize)
        return _scalar(dtype, data)


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
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            _scan(f, size)
            f.seek(0)
            obj = _RestrictedUnpickler(f, size).load()
    except OSError as e:
        raise InputError(unreadable(path, e, "a dataset pickle")) from None
    except _Refused as e:
        raise InputError(f"{path}: not a loadable dataset pickle: {_one_line(e)}") from None
    except _Malformed as e:
        raise InputError(f"{path}: truncated or malformed pickle ({_one_line(e)})") from None
    except Exception as e:  # the unpickler and numpy raise many kinds on bad bytes: all are bad input
        raise InputError(f"{path}: truncated or malformed pickle ({type(e).__name__}: {_one_line(e)})") from None
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
    if probs.dtype.kind != "f" or not _plain(probs.dtype):
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


def _remove_stale_temps(path: Path) -> None:
    """Delete the temporary files that killed writers of `path` left (their process is gone)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = re.fullmatch(rf"\.{re.escape(path.name)}\.(\d+)\.tmp", tmp.name)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            os.kill(int(match[1]), 0)
        except ProcessLookupError:  # no such process: the writer died
            tmp.unlink(missing_ok=True)
        except (PermissionError, OverflowError):  # alive under another user, or not a pid
            pass


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    _remove_stale_temps(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    _remove_stale_temps(path)
    tmp = _temp_path(path)
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
        raise InputError(f"{path}: malformed sidecar JSON ({_one_line(e)})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({_one_line(e.strerror or e)})") from None
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


def model_sizes(dataset: Dataset, metadata: dict | None = None) -> dict[str, dict]:
    """Each model's parameter counts from the sidecar, {name: {"non_embedding_params": ...,
    "total_params": ...}} (None where unknown), or {} without a sidecar that lists the pickle's
    own models in its order: sizes are a property of the models, so that check is what matters.
    `metadata`: the sidecar, where the caller has read it already."""
    metadata = read_sidecar(dataset.path, verify_hash=False) if metadata is None else metadata
    models = metadata.get("models") if isinstance(metadata, dict) else None
    if not isinstance(models, list) or [m.get("name") if isinstance(m, dict) else None
                                        for m in models] != dataset.model_names:
        return {}
    counts = lambda value: value if isinstance(value, int) and not isinstance(value, bool) else None
    return {m["name"]: {"non_embedding_params": counts(m.get("non_embedding_params")),
                        "total_params": counts(m.get("total_params", m.get("parameters")))} for m in models}


def read_cached_slice(cache_dir: Path, key: str, shape: tuple[int, ...]) -> tuple[np.ndarray, dict] | None:
    """A finished model's cached slice of `shape` and its summary row, or None: absent, damaged or
    of another shape, the slice is recomputed, not trusted."""
    try:
        probs = np.load(cache_dir / f"{key}.npy", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if probs.shape != shape:
        return None
    try:
        summary = json.loads((cache_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        summary = None
    return probs, summary if isinstance(summary, dict) else {}


def write_cached_slice(cache_dir: Path, key: str, probs: np.ndarray, summary: dict) -> None:
    """The slice, and beside it the model's summary row (sizes, timings) for a resumed run's sidecar:
    the row first, so that a slice on disk always has its row."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_dir / f"{key}.json", lambda f: json.dump(summary, f), mode="w")
    atomic_write(cache_dir / f"{key}.npy", lambda f: np.save(f, probs, allow_pickle=False))


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


def check_writable(path: Path, folder: bool = False) -> None:
    """Fail now, before any work, if output `path` (a file, or with `folder` a folder) cannot be
    written: create the folder it needs, and try a file there."""
    try:
        if folder and path.exists() and not path.is_dir():
            raise InputError(f"{path}: is a file; a folder is needed")
        if not folder and path.is_dir():
            raise InputError(f"{path}: is a folder; give a file name")
        directory = path if folder else path.parent
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".{path.name}.{os.getpid()}.probe"
        probe.open("w").close()
        probe.unlink()
    except OSError as e:
        in_the_way = f": {e.filename}" if e.filename and Path(e.filename) != path else ""
        raise InputError(f"{path}: cannot be written ({e.strerror or type(e).__name__}{in_the_way})") from None


def write_output(path: Path, write: Callable[[Any], None]) -> bool:
    """Write one text output file atomically; False (and a one-line error) if the disk refuses it."""
    try:
        atomic_write(path, write, mode="w")
        return True
    except OSError as e:
        print(f"error: {path}: cannot be written ({e.strerror or type(e).__name__}); nothing was written",
              file=sys.stderr)
        return False


def read_text_file(path: str | os.PathLike, expected: str) -> str:
    """A user's UTF-8 text file (a leading byte-order mark dropped), or a one-line InputError that
    names it and says what was `expected` there ("a predictions CSV")."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise InputError(unreadable(path, e, expected)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}); expected {expected}") from None


def unreadable(path: str | os.PathLike, error: OSError, expected: str) -> str:
    """The one-line message for an input file that cannot be opened or read."""
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file"
    if isinstance(error, IsADirectoryError):
        return f"{path}: is a directory, not {expected}"
    return f"{path}: cannot read it ({_one_line(error.strerror or error)})"
