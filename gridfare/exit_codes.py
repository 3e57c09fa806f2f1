"""Exit codes of the ``gridfare`` command and of the Ray jobs: one table, by error class.

A script can tell "fix the input" from "the data centre needs a look" from "start a
cluster" without reading messages; ``docs/errors.md`` lists every error with its code.
"""

from __future__ import annotations

from gridfare.errors import ClusterUnavailable, DataCentreError, DataCentreFull, GridfareError

__all__ = ["BROKEN_PIPE", "EXIT_CODES", "INTERRUPTED", "OK", "SECTIONS_FAILED",
           "error_line", "exit_code"]

OK = 0
SECTIONS_FAILED = 1  # a billing run ended with failed sections (each listed with its error)

# Looked up along the error's class hierarchy: the most specific class listed wins.
EXIT_CODES: dict[type[GridfareError], int] = {
    GridfareError: 2,  # the request was refused: fix it and run again (argparse's code too)
    DataCentreError: 3,  # the data centre cannot be read or written, or holds foreign files
    DataCentreFull: 4,  # out of space; nothing partial is visible: free space and rerun
    ClusterUnavailable: 5,  # no Ray cluster given, found or reachable
}
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # the reader of stdout went away (`| head`), as 128 + SIGPIPE


def _cause(exc: BaseException) -> BaseException:
    # A remote error re-raised by Ray is also an instance of its cause's class, with the
    # remote traceback as its text: the cause is what was refused.
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, GridfareError) else exc


def exit_code(exc: GridfareError) -> int:
    """The exit code for ``exc``: its nearest class in ``EXIT_CODES``."""
    for cls in type(_cause(exc)).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_CODES[GridfareError]


def error_line(exc: BaseException, prog: str = "gridfare") -> str:
    """``prog: error: <message>`` on one line (a message's own line breaks folded)."""
    exc = _cause(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{prog}: error: {text}"
