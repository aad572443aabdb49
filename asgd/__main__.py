"""`python -m asgd ...` and the `asgd` script run the command line.

Importing the command line imports JAX (seconds). A Ctrl-C in that time ends the process at
once with exit code 130 and one line, instead of a traceback: nothing has been written yet.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("\nasgd: interrupted while starting; nothing was written\n")
    sys.stderr.flush()
    os._exit(130)


_previous = signal.signal(signal.SIGINT, _interrupted_while_starting)
from asgd.cli import main  # noqa: E402

signal.signal(signal.SIGINT, _previous)

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
