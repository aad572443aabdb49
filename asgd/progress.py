"""A one-line progress bar with an ETA on stderr, shown only on a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Counts work units (e.g. SGD steps of finished sweep points) toward `total`.

    Off when `enabled` is False or stderr is not a terminal, so logs and CI stay clean.
    """

    def __init__(self, total: float, label: str = "", enabled: bool = True, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = max(float(total), 1e-12)
        self.done = 0.0
        self.label = label
        self.width = width
        self.start = time.perf_counter()
        self._draw()

    def update(self, done: float) -> None:
        """Set the work done so far (never beyond `total`)."""
        self.done = min(self.total, float(done))
        self._draw()

    def line(self) -> str:
        fraction = self.done / self.total
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        eta_text = "--" if eta != eta else f"{eta:5.0f}s"
        return f"{self.label} [{bar}] {100 * fraction:5.1f}%  elapsed {elapsed:5.0f}s  eta {eta_text}"

    def _draw(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
