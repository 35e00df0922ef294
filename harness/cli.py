"""What every entry point does alike: bad input is one line and exit 1, Ctrl-C exits 130, a closed
pipe (`challenge.py | head`) ends quietly, and warnings are one line each.

    if __name__ == "__main__":
        harness.cli.run(main)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import textwrap
import warnings
from dataclasses import dataclass
from typing import Callable, NoReturn

from harness import InputError

EXIT_CODES = """exit status:
  0    {ok}
  1    {bad}
  2    a bad command line
  130  interrupted (Ctrl-C)"""


def exit_codes(ok: str, bad: str) -> str:
    """An entry point's `--help` epilog: what its exit statuses mean."""
    return EXIT_CODES.format(ok=ok, bad=bad)


def terminal_width(minimum: int = 80) -> int:
    """The width output fits: the terminal's (or $COLUMNS), at least `minimum`; 100 when not a terminal."""
    return max(minimum, shutil.get_terminal_size((100, 24)).columns)


def wrapped(text: str, width: int | None = None) -> str:
    """A line of output in `width` columns (default: the terminal's), indented by 2, continued by 4."""
    return textwrap.fill(text, width or terminal_width(), initial_indent="  ", subsequent_indent="    ",
                         break_on_hyphens=False, break_long_words=False)


@dataclass
class Column:
    """One column of a printed table: its title, its cells (strings), how it aligns, and when it folds:
    0 stays in the first part; where the terminal is narrow, the columns of highest `fold` move first
    to a part printed below, which repeats the first column so that each row is still named."""
    title: str
    cells: list[str]
    right: bool = False
    fold: int = 0

    @property
    def width(self) -> int:
        return max(len(self.title), *(len(cell) for cell in self.cells)) if self.cells else len(self.title)


def table(columns: list[Column], width: int | None = None, indent: str = "  ") -> list[str]:
    """The lines of a table whose first column names the rows, in at most `width` columns (default:
    the terminal's): folded into parts where it is wider (`Column.fold`). Every number stays on screen."""
    width = width or terminal_width()
    key, rest = columns[0], columns[1:]
    fits = lambda part: len(indent) + sum(c.width + 2 for c in [key, *part]) - 2 <= width
    lines = []
    while rest:
        part = list(rest)
        while len(part) > 1 and not fits(part):
            part.remove(max(reversed(part), key=lambda c: c.fold))  # the highest fold, the rightmost of those
        for row in range(-1, len(key.cells)):
            cells = [c.title if row < 0 else c.cells[row] for c in [key, *part]]
            lines.append(indent + "  ".join(f"{cell:>{c.width}}" if c.right else f"{cell:<{c.width}}"
                                            for cell, c in zip(cells, [key, *part])).rstrip())
        rest = [c for c in rest if c not in part]
    return lines


def one_line_warnings() -> None:
    """`warning: MESSAGE` on one line, like every other message, instead of Python's two-line format."""
    warnings.formatwarning = lambda message, *_: f"warning: {' '.join(str(message).split())}\n"


def run(main: Callable[[], int], interrupted: str = "interrupted") -> NoReturn:
    """Run an entry point's `main` and exit with its status, or 1 on an InputError (its one line on
    stderr), 130 on Ctrl-C (`interrupted` on stderr), quietly on a closed stdout."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `challenge.py | head`: the reader left, so do we
    one_line_warnings()
    try:
        code = main()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        code = 130
    except BrokenPipeError:  # where SIGPIPE cannot be reset: stdout's reader is gone, so nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit flush would fail again
        code = 1
    sys.exit(code)
