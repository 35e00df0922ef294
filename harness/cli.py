"""What every entry point does alike: bad input is one line and exit 1, Ctrl-C exits 130, a closed
pipe (`challenge.py | head`) ends quietly, and warnings are one line each.

    if __name__ == "__main__":
        harness.cli.run(main)
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
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
    """The width tables fit: the terminal's (or $COLUMNS), at least `minimum`; 100 when not a terminal."""
    import shutil

    return max(minimum, shutil.get_terminal_size((100, 24)).columns)


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
