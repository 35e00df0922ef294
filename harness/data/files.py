"""File helpers shared by the entry points: atomic writes, output paths checked before any work,
and user text files read with one-line errors.

Writing goes to a temporary file that is renamed into place, so a crash never leaves a
half-written file; stale temporary files of killed runs are removed by the next write.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from harness import InputError, one_line


def remove_stale_temps(path: Path) -> None:
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


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise



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
    return f"{path}: cannot read it ({one_line(error.strerror or error)})"

