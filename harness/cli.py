"""What every entry point does alike: bad input is one line and exit 1, Ctrl-C exits 130, a closed
pipe (`challenge.py | head`) ends quietly, and warnings are one line each.

    if __name__ == "__main__":
        harness.cli.run(main)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import textwrap
import warnings
from dataclasses import dataclass
from typing import Callable, NoReturn

from harness import InputError

NO_BREAK = "\xa0"  # textwrap breaks lines at ASCII whitespace only

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


def progress(iterable=None, **tqdm_options):
    """A tqdm progress bar (tqdm.auto: a widget in notebooks) as wide as the terminal's text: tqdm
    alone sizes its bar by the terminal and ignores $COLUMNS."""
    from tqdm.auto import tqdm  # here, not at the top: `run` reports a missing tqdm in one line

    if sys.stderr.isatty():
        tqdm_options.setdefault("ncols", terminal_width())
    return tqdm(iterable, **tqdm_options)


def wrapped(text: str, width: int | None = None, indent: str = "  ") -> str:
    """A line of output in `width` columns (default: the terminal's), continued 2 further in. An
    interval `[a, b]`, and words joined by a no-break space (a model's label and its number), stay on
    one line."""
    text = re.sub(r"\[[^\]]*\]", lambda interval: interval.group(0).replace(" ", NO_BREAK), text)
    return textwrap.fill(text, width or terminal_width(), initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False, break_long_words=False).replace(NO_BREAK, " ")


@dataclass(eq=False)  # columns are told apart by identity: two may hold the same cells
class Column:
    """One column of a printed table: its title, its cells (strings), how it aligns, and when it folds:
    0 stays in the first part; where the terminal is narrow, the columns of highest `fold` move first
    to a part printed below, which repeats the first column so that each row is still named, and
    titles them by `folded_title` where the title alone says too little away from its neighbours."""
    title: str
    cells: list[str]
    right: bool = False
    fold: int = 0
    folded_title: str | None = None


def table(columns: list[Column], width: int | None = None, indent: str = "  ") -> list[str]:
    """The lines of a table whose first column names the rows, in at most `width` columns (default:
    the terminal's): folded into parts where it is wider (`Column.fold`). Every number stays on screen."""
    width = width or terminal_width()
    key, rest, lines = columns[0], columns[1:], []
    while rest:
        first = not lines
        titles = lambda part: [key.title, *(c.title if first else c.folded_title or c.title for c in part)]
        widths = lambda part: [max([len(t), *map(len, c.cells)]) for t, c in zip(titles(part), [key, *part])]
        part = list(rest)
        while len(part) > 1 and len(indent) + sum(w + 2 for w in widths(part)) - 2 > width:
            part.remove(max(reversed(part), key=lambda c: c.fold))  # the highest fold, the rightmost of those
        shown, shown_widths = [key, *part], widths(part)
        for row in [titles(part), *zip(*(c.cells for c in shown))]:
            lines.append(indent + "  ".join(f"{cell:>{w}}" if c.right else f"{cell:<{w}}"
                                            for cell, w, c in zip(row, shown_widths, shown)).rstrip())
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
    except ModuleNotFoundError as e:  # a package of requirements.txt (or -dev) never installed
        print(f"error: the {e.name} package is not installed: python3 -m pip install -r requirements.txt "
              "(requirements-dev.txt to build datasets)", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        code = 130
    except BrokenPipeError:  # where SIGPIPE cannot be reset: stdout's reader is gone, so nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit flush would fail again
        code = 1
    sys.exit(code)
