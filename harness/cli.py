"""What every entry point does alike: bad input is one line and exit 1, Ctrl-C exits 130, a closed
pipe (`challenge.py | head`) ends quietly, and warnings are one line each; and the flags they
share, defined once (`add_seed`, `add_device`, ...; docs/cli.md), with argparse types whose bad
values are one line and exit 2.

    if __name__ == "__main__":
        harness.cli.run(main)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

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
    return textwrap.fill(
        text,
        width or terminal_width(),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    ).replace(NO_BREAK, " ")


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
            lines.append(
                indent
                + "  ".join(
                    f"{cell:>{w}}" if c.right else f"{cell:<{w}}" for cell, w, c in zip(row, shown_widths, shown)
                ).rstrip()
            )
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
        print(
            f"error: the {e.name} package is not installed: python3 -m pip install -r requirements.txt "
            "(requirements-dev.txt to build datasets)",
            file=sys.stderr,
        )
        code = 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        code = 130
    except BrokenPipeError:  # where SIGPIPE cannot be reset: stdout's reader is gone, so nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit flush would fail again
        code = 1
    sys.exit(code)


# ---- One command-line vocabulary (docs/cli.md): every entry script and benchmark defines its shared
# flags through these, so a concept has one name, type, default and set of choices everywhere. A bad
# value is argparse's one-line error and exit 2, before anything loads.

DTYPES = ("auto", "float16", "bfloat16", "float32")
DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer of at least {minimum}"
    return parse


positive_int = at_least(1)
non_negative_int = at_least(0)


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""

    def parse(text: str) -> int:
        value = non_negative_int(text) if low >= 0 else int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {value}")
        return value

    return parse


def _number(low: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low <= value if inclusive else low < value) or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be a number {'of at least' if inclusive else 'above'} {low:g}, got {text}"
            )
        return value

    return parse


positive_float = _number(0, inclusive=False)  # an argparse type: a finite number above 0
non_negative_float = _number(0, inclusive=True)  # an argparse type: a finite number of at least 0


def device(text: str) -> str:
    """An argparse type: cpu, cuda, cuda:N or mps (whether this machine has it is checked before models load)."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


class _Renamed(argparse.Action):
    """An old spelling of a flag, hidden from --help: it still works, with a one-line warning."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now {self.new}; the old name will go", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_num_prefixes(
    parser,
    help: str,
    default: int | list[int] | None = None,
    nargs: str | None = None,
    required: bool = False,
    old_name: str | None = None,
) -> None:
    """--num-prefixes N: how many prefixes (prompts, questions) a run takes. `old_name`: a former
    spelling, kept working but hidden (users' scripts use it)."""
    parser.add_argument(
        "--num-prefixes", type=positive_int, default=default, nargs=nargs, required=required, metavar="N", help=help
    )
    if old_name is not None:
        parser.add_argument(
            old_name,
            type=positive_int,
            nargs=nargs,
            dest="num_prefixes",
            action=_Renamed,
            new="--num-prefixes",
            help=argparse.SUPPRESS,
        )


def add_seed(parser, help: str, default: int = 0, option: str = "--seed") -> None:
    """--seed S: a non-negative integer (numpy refuses negative seeds); 0 by default."""
    parser.add_argument(
        option, type=non_negative_int, default=default, metavar="S", help=f"{help} (default: {default})"
    )


def add_device(
    parser,
    help: str = "cuda, cuda:N, cpu or mps (default: cuda where this machine has it, else cpu)",
    default: str | None = None,
) -> None:
    """--device: None (the default) means cuda where there is one, else cpu (harness.models.processes.check_device,
    which also refuses cuda on a machine without it, before any model loads)."""
    parser.add_argument("--device", type=device, default=default, help=help)


def add_dtype(parser) -> None:
    """--dtype: the models' precision; auto is half precision on a GPU, float32 on CPU."""
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="model dtype (default: auto, half precision on a GPU and float32 on CPU)",
    )


def add_batch_size(parser, help: str, default: int | None = None) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=default, metavar="B", help=help)


def add_no_progress(parser) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (they are shown on a terminal only)"
    )


def add_json(parser, help: str) -> None:
    """--json FILE: an output, checked writable (check_outputs) before any long work."""
    parser.add_argument("--json", type=Path, metavar="FILE", help=help)


def add_report(parser, help: str) -> None:
    """--report DIR: pictures (matplotlib), the folder checked writable before any long work."""
    parser.add_argument("--report", type=Path, metavar="DIR", help=help)


def add_revision(parser) -> None:
    parser.add_argument(
        "--revision",
        action="append",
        default=[],
        help="checkpoint for all models (e.g. step143000) or MODEL=REVISION for one (repeatable)",
    )


def add_task_options(parser, shots: str, digits: str, digits_nargs: str | None = None) -> None:
    """--shots, --digits and --operation: the few-shot and arithmetic builders' options."""
    from harness.data.prefixes import MAX_DIGITS, OPERATIONS

    parser.add_argument("--shots", type=non_negative_int, metavar="K", help=shots)
    parser.add_argument(
        "--digits",
        type=int_range(1, MAX_DIGITS),
        nargs=digits_nargs,
        metavar="D",
        help=f"operand digits, 1-{MAX_DIGITS}: {digits}",
    )
    parser.add_argument("--operation", choices=list(OPERATIONS), help="arithmetic's operation (default: add)")
