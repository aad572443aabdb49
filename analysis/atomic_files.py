"""Files the library writes (CSV tables, figure bytes), atomically, and CSV read back.

A temporary name in the same folder, then `os.replace` (`simulate.result.atomic_write`): an
interrupted run never leaves a half-written file under a final name. Formats are plain: CSV
with a header row, numbers parsed back to int/float on reading.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from simulate.result import atomic_write

__all__ = ["write_bytes", "write_text", "write_csv", "read_csv", "to_json"]


def write_bytes(path, data: bytes) -> Path:
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def to_json(value):
    """`json.dumps(default=...)` for arrays, NumPy scalars and paths; anything else as its repr."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def write_csv(path, rows: Iterable[Mapping], columns: list[str] | None = None) -> Path:
    """Rows (dicts) as CSV with a header; `columns` fixes the order (default: first row's keys)."""
    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: to_json(v) if isinstance(v, (np.ndarray, np.generic)) else v for k, v in row.items()})
    return write_text(path, buffer.getvalue())


def read_csv(path) -> list[dict]:
    """Rows of a CSV written by `write_csv`, numbers parsed back to int/float."""

    def parse(value: str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with open(path, newline="") as handle:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(handle)]
