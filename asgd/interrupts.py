"""Ctrl-C in the command line: the run stops, at once or at the next sweep point, and exits 130.

Python turns SIGINT into a `KeyboardInterrupt` wherever the main thread is. In a garbage
collection callback (JAX registers one) the exception is printed as "Exception ignored" and
dropped, and the run went on to the end with exit 0. So while the CLI runs, a handler also
records the interrupt, and the sweep calls `check()` between points: a dropped interrupt still
stops the run there. Python's "Exception ignored" report of the dropped one (a traceback that
would read like a crash) is silenced: the interrupt is not lost.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

__all__ = ["check", "recorded"]

_interrupted = False


def _on_sigint(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def recorded():
    """Within the block, SIGINT raises `KeyboardInterrupt` and is remembered for `check()`.
    Outside the main thread (where signals cannot be handled) it does nothing."""
    global _interrupted
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted = False
    previous, previous_hook = signal.signal(signal.SIGINT, _on_sigint), sys.unraisablehook

    def unraisable(report):
        if not (_interrupted and isinstance(report.exc_value, KeyboardInterrupt)):
            previous_hook(report)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook


def check() -> None:
    """Raise `KeyboardInterrupt` if SIGINT arrived within `recorded()`, even if it was dropped."""
    if _interrupted:
        raise KeyboardInterrupt
