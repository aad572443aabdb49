"""Files the library writes (results, CSV tables, JSON, `.npz`, figure bytes), atomically, and
CSV read back: the one home of file writing for every package above.

A temporary name in the same folder, then `os.replace` (`atomic_write`): an interrupted run never
leaves a half-written file under a final name. Formats are plain: CSV with a header row (numbers
parsed back to int/float on reading), JSON, `.npz`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "read_csv", "to_json", "write_bytes", "write_csv", "write_json", "write_npz", "write_text"]


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb"):
    """Open a temporary file beside `path`; on success fsync it and rename it to `path`.

    An interrupted write never leaves a half-written file under the final name: a file that
    exists is complete (`os.replace` is atomic on one file system). The file's mode honours the
    umask, as a file made by `open` would.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: it creates mode 0600 whatever the umask, so collaborators could not
    # read the results. os.open with 0o666 lets the umask decide (0644 under umask 022), like open().
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # another writer drew the same name: draw again
            continue
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


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


def write_json(path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=to_json) + "\n")


def write_npz(path, **arrays) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())
