"""The safe unpickler: a dataset pickle loads without running code from the file, and without
letting the file choose how much memory is used.

A pre-scan of the opcode stream (pickletools' opcode table) bounds every length, frame and memo
index by the file's size before anything is built, and the unpickler only resolves the few numpy
globals an array needs, each wrapped so that it builds no more bytes than the file holds.

The array is memory-mapped where its bytes lie in the file, not read: the scan notes where the
largest counted bytes object (numpy's array data, protocols 3-5) lies, and the unpickler reads a
stream in which that object is replaced by a one-off placeholder. numpy's `_frombuffer` (protocol
5) or the array's BUILD state (protocols 3 and 4) receives the placeholder and maps the file there,
once, for an array whose size is exactly those bytes. Protocols 0-2 (the data is a latin-1 string)
are read. `load_pickle` is the one entry point; `harness.data.dataset` checks that what it returns is a
dataset.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import secrets
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness import InputError, one_line
from harness.data.files import unreadable

# numpy's own pickling functions, taken from what numpy itself pickles: the same on numpy 1.x
# ("numpy.core") and 2.x ("numpy._core"), with no import of either private module.
_reconstruct = np.empty(0).__reduce__()[0]
_frombuffer = np.empty(1).__reduce_ex__(5)[0]
_scalar = np.float16(0).__reduce__()[0]

# The opcodes a pickle of (list of str, list of str, numeric array) can hold, in protocols 0-5.
# Left out: dicts, sets, object construction (INST, OBJ, NEWOBJ), the extension registry,
# persistent ids and out-of-band buffers. At most a few calls: numpy makes <= 4 REDUCE and 2 BUILD.
_ALLOWED_OPCODES = frozenset(
    """
    PROTO FRAME STOP MARK POP POP_MARK INT BININT BININT1 BININT2 LONG LONG1 NONE NEWTRUE NEWFALSE
    FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
    UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8 EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE
    TUPLE1 TUPLE2 TUPLE3 GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL
    REDUCE BUILD""".split()
)
_MAX_CALLS = {"REDUCE": 8, "BUILD": 4, "GLOBAL": 8, "STACK_GLOBAL": 8}
# A prefix costs 2 opcodes (a string and its memo entry): this allows 1.2 million prefixes and keeps
# the scan, ~1 us an opcode, to a few seconds whatever the file.
_MAX_OPCODES = 2_500_000
# How pickletools' counted arguments store their length (the data follows it).
_LENGTH_FORMATS = {
    pickletools.TAKEN_FROM_ARGUMENT1: "<B",
    pickletools.TAKEN_FROM_ARGUMENT4: "<i",
    pickletools.TAKEN_FROM_ARGUMENT4U: "<I",
    pickletools.TAKEN_FROM_ARGUMENT8U: "<Q",
}
# Numeric dtypes only: no object, string, void or structured dtype (their state sets sizes).
_DTYPE_SPECS = frozenset(f"{kind}{size}" for kind in "fiu" for size in (1, 2, 4, 8)) | {"b1"}
# The opcodes that can hold an array's data as raw bytes, and the smallest data worth a map (a
# page: smaller arrays are read, which costs less than a map).
_BYTES_OPCODES = frozenset({"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"})
MAP_MIN_BYTES = 4096


class _Refused(pickle.UnpicklingError):
    """The file asks for something a dataset never needs (code, a codec, a view...)."""


class _Malformed(pickle.UnpicklingError):
    """The pre-scan found the bytes are no dataset pickle (or lie about their lengths)."""


@dataclass
class Payload:
    """Where the largest counted bytes object lies: its opcode at `opcode_at`, its data at
    `offset`, `length` bytes long; inside a frame, where that frame's 8-byte length is stored."""

    opcode_at: int
    offset: int
    length: int
    frame_length_at: int | None = None


def _scan(f: BinaryIO, size: int) -> Payload | None:
    """Walk the opcode stream without building anything: refuse opcodes a dataset never holds,
    and any length, frame or memo index that the file's size cannot back (the unpickler would
    allocate it before finding out). Returns where the largest bytes object lies (None if none)."""
    opcodes, calls = 0, dict.fromkeys(_MAX_CALLS, 0)
    largest, frame_length_at, frame_end = None, None, 0
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
            return largest
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
            in_frame = pos < frame_end
            if in_frame and f.tell() + length > frame_end:
                raise _Malformed(f"{op.name} at byte {pos} runs past the end of its frame")
            if op.name in _BYTES_OPCODES and (largest is None or length > largest.length):
                largest = Payload(pos, f.tell(), length, frame_length_at if in_frame else None)
            f.seek(length, os.SEEK_CUR)
            continue
        arg = op.arg.reader(f)  # small fixed-size or newline-terminated arguments
        if op.name == "FRAME":
            if arg > size - f.tell():
                raise _Malformed(f"FRAME at byte {pos} claims {arg} bytes, more than the file holds")
            if pos < frame_end:  # pickle's pure-Python unpickler refuses this too
                raise _Malformed(f"FRAME at byte {pos} starts inside the frame before it")
            frame_length_at, frame_end = pos + 1, f.tell() + arg
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg < opcodes:
            # Writers number memo entries 0, 1, 2...; the unpickler sizes its memo by the index.
            raise _Malformed(f"{op.name} at byte {pos} stores memo entry {arg}, past any the pickle can have")


class _NdarrayClass:
    """Stands for numpy.ndarray in a pickle: numpy passes it to _reconstruct, never calls it (a
    call could make a view of any size, e.g. zero strides over a 2-byte buffer)."""

    def __call__(self, *args: Any) -> None:
        raise _Refused("it calls numpy.ndarray directly, which numpy's own pickles never do")


_NDARRAY = _NdarrayClass()


def plain_dtype(dtype: Any) -> bool:
    """A numeric dtype as np.dtype makes it: the pickle's dtype state can set other sizes, or flags
    that claim object references (numpy then misreads the data and cannot even free the array)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype:
        return False
    canonical = np.dtype(dtype.str)
    return (dtype.flags, dtype.itemsize, dtype.alignment) == (canonical.flags, canonical.itemsize, canonical.alignment)


class _MappedBytes:
    """Stands for the array's bytes in the stream the unpickler reads (the bytes themselves are
    never read): the one call that receives it maps the file there instead, and the unpickler then
    holds a placeholder for the map (the map itself would take BUILD state past the dtype check)."""

    def __init__(self, file: BinaryIO, payload: Payload):
        self.file, self.payload = file, payload  # the open file scanned: a file renamed over its path is not mapped
        self.array: np.memmap | None = None  # the map, once made
        self.placeholder: Any = None  # what the unpickler holds in the map's place

    def __setstate__(self, state: Any) -> None:
        raise _Refused("it builds its array other than as numpy's pickles do")

    def map(self, dtype: Any, shape: Any, order: Any) -> np.memmap:
        if self.array is not None:
            raise _Refused("it uses its array's bytes twice")
        if not (
            plain_dtype(dtype)
            and isinstance(shape, tuple)
            and all(type(n) is int and n >= 0 for n in shape)
            and order in ("C", "F")
        ):
            raise _Refused("it builds its array other than as numpy's pickles do")
        if dtype.itemsize * math.prod(shape) != self.payload.length:
            raise _Refused(
                f"its array of shape {shape} and dtype {dtype} does not fill its {self.payload.length} bytes of data"
            )
        self.array = np.memmap(self.file, dtype=dtype, mode="r", offset=self.payload.offset, shape=shape, order=order)
        return self.array


class _CheckedArray(np.ndarray):
    """What _reconstruct builds: numpy's BUILD state then goes through a check of its dtype first;
    state whose data is the mapped bytes makes this array the map's placeholder."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and plain_dtype(state[2])):
            raise _Refused("its array state has a dtype that a dataset never holds")
        if getattr(self, "mapped", False):
            raise _Refused("it builds its mapped array twice")
        if isinstance(state[4], _MappedBytes):
            state[4].map(state[2], state[1], "F" if state[3] is True else "C")
            state[4].placeholder, self.mapped = self, True
            return
        super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's pickling globals, each checked, and charges what they build to a
    budget of the file's size."""

    def __init__(self, file: BinaryIO, size: int, mapped: tuple[str, _MappedBytes] | None = None):
        super().__init__(file)
        self.budget = size
        self.mapped = mapped  # the placeholder's one-off global name, and the placeholder

    def _spend(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise _Refused("its calls build more bytes than the file holds")

    def find_class(self, module: str, name: str) -> Any:
        if self.mapped is not None and (module, name) == (__name__, self.mapped[0]):
            return self.mapped[1]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            module = "multiarray"  # numpy 1.x and 2.x writers
        found = {
            ("_codecs", "encode"): self._encode,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "memmap"): _NDARRAY,  # a pickled memmap (e.g. a slice of a loaded map) is an array
            ("numpy", "dtype"): self._dtype,
            ("multiarray", "_reconstruct"): self._reconstruct,
            ("multiarray", "scalar"): self._scalar,
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,
        }.get((module, name))
        if found is None:
            raise _Refused(
                f"it refers to {module}.{name}, which a dataset never holds (refused: no code from the file was run)"
            )
        return found

    def _encode(self, text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # Protocol 2 stores bytes as _codecs.encode(str, "latin1"); other codecs can grow their input.
        if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _Refused("it calls _codecs.encode other than as numpy's pickles do (a str, latin1)")
        self._spend(len(text))
        return text.encode("latin-1")

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if not isinstance(spec, str) or spec not in _DTYPE_SPECS or not isinstance(align, bool):
            raise _Refused(f"it has dtype {one_line(repr(spec))[:40]}; a dataset's arrays are numeric")
        return np.dtype(spec, align, True)  # a copy: the pickle's state must not change numpy's own dtypes

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> np.ndarray:
        if cls is not _NDARRAY or not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused("it calls numpy's _reconstruct other than as numpy's pickles do")
        self._spend(int(np.prod(shape, dtype=object)))  # typecode is one byte
        return _reconstruct(_CheckedArray, shape, typecode)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if isinstance(buffer, _MappedBytes):
            buffer.map(dtype, shape, order)
            buffer.placeholder = buffer  # inert: BUILD refuses it, and no other call takes it
            return buffer
        if not (isinstance(buffer, (bytes, bytearray)) and plain_dtype(dtype)):  # reshape checks the size
            raise _Refused("it calls numpy's _frombuffer other than as numpy's pickles do")
        return _frombuffer(buffer, dtype, shape, order)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        if not plain_dtype(dtype):
            raise _Refused("it calls numpy's scalar other than as numpy's pickles do")
        self._spend(dtype.itemsize)
        return _scalar(dtype, data)


def _without_payload(f: BinaryIO, payload: Payload, name: str) -> io.BytesIO:
    """The pickle with the payload's opcode and data replaced by a GLOBAL opcode that loads `name`
    (a random name, which no file can hold), and the length of the frame around it, if any,
    changed to match: the stream the unpickler reads, without the array's bytes."""
    f.seek(0)
    head = bytearray(f.read(payload.opcode_at))
    f.seek(payload.offset + payload.length)
    tail = f.read()
    stand_in = f"c{__name__}\n{name}\n".encode()
    if payload.frame_length_at is not None:
        at = payload.frame_length_at
        (frame_length,) = struct.unpack_from("<Q", head, at)
        removed = payload.offset + payload.length - payload.opcode_at
        struct.pack_into("<Q", head, at, frame_length - removed + len(stand_in))
    return io.BytesIO(head + stand_in + tail)


def find_payload(path: Path) -> Payload | None:
    """Where the pickle's largest bytes object lies, as load_pickle finds a dataset's array data
    (for a writer that fills the array in place)."""
    with open(path, "rb") as f:
        return _scan(f, os.fstat(f.fileno()).st_size)


def load_pickle(path: Path) -> tuple[Any, int]:
    """The object a dataset pickle holds, and the file's size; its array memory-mapped read-only
    where the file holds it raw (protocols 3-5), else read. Any problem, whatever the file's bytes,
    raises a one-line InputError naming the file."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            size = info.st_size
            payload = _scan(f, size)
            if payload is None or payload.length < MAP_MIN_BYTES or not stat.S_ISREG(info.st_mode):
                f.seek(0)
                return _RestrictedUnpickler(f, size).load(), size
            name = f"mapped_bytes_{secrets.token_hex(16)}"
            mapped = _MappedBytes(f, payload)
            obj = _RestrictedUnpickler(_without_payload(f, payload, name), size, (name, mapped)).load()
        if isinstance(obj, tuple) and len(obj) == 3 and obj[2] is mapped.placeholder:
            return (obj[0], obj[1], mapped.array), size
        # Anything else is no dataset (harness.data.dataset says what it is instead): a placeholder
        # left in it is no str and no array of the dataset's shape.
        return obj, size
    except OSError as e:
        raise InputError(unreadable(path, e, "a dataset pickle")) from None
    except _Refused as e:
        raise InputError(f"{path}: not a loadable dataset pickle: {one_line(e)}") from None
    except _Malformed as e:
        raise InputError(f"{path}: truncated or malformed pickle ({one_line(e)})") from None
    except Exception as e:  # the unpickler and numpy raise many kinds on bad bytes: all are bad input
        raise InputError(f"{path}: truncated or malformed pickle ({type(e).__name__}: {one_line(e)})") from None
