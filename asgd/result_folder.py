"""A result folder: its files written atomically, its claim by one config, the environment.

Every reproduction writes a folder `OUT/<experiment>/` holding `results.csv`, `arrays.npz`,
`metadata.json`, the figures, and `points/` (finished pieces of work, saved as they finish so
that the same command resumes an interrupted run). A file that exists is complete: every write
goes to a temporary name in the same folder, then `os.replace`. Formats are plain: CSV with a
header, `.npz`, JSON.

`sweep.json` claims the folder for one config (its fingerprint, and the config itself, which
must hash to that fingerprint: an edited fingerprint is refused) and records what else fixes the
numbers (`provenance()`): a resume under another config, precision, library version or
randomness contract is refused; under another JAX version it warns. Each saved point is also
checked against its file name and the config (`asgd.sweep.point_disagreement`). A damaged folder is reported as one
line naming the file and what is wrong (`ResultFolderError`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import warnings
import zipfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import jax

from asgd.schema import ConfigError
from simulate.files import read_csv, write_bytes, write_csv, write_json, write_npz, write_text
from simulate.randomness import RANDOMNESS_CONTRACT_VERSION

__all__ = [
    "DAMAGED_FILE_ERRORS",
    "ResultFolderError",
    "ResultFolderWarning",
    "check_out_dir",
    "load_or_redo",
    "claim_folder",
    "released_on_failure",
    "environment",
    "fingerprint",
    "provenance",
    "read_csv",
    "read_metadata",
    "read_results",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_npz",
    "write_results",
    "write_text",
]


class ResultFolderError(ValueError):
    """A result folder (or `--out`) that cannot be used: names the path and what is wrong."""


class ResultFolderWarning(UserWarning):
    """Something about a result folder worth a line, that does not stop the command."""


#: What a damaged `.npz` raises on loading: a truncated or overwritten zip, a missing member,
#: bad JSON in `__fields__`, fields the type lacks.
DAMAGED_FILE_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile)


def fingerprint(raw_config: dict) -> str:
    """A short hash of the config as read: a folder holds the results of one config only."""
    canonical = json.dumps(raw_config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


#: Provenance keys whose change changes the numbers a sweep point gets: a folder started under
#: other values is refused, like one of another config.
REFUSED_PROVENANCE = ("x64", "asgd-smoothing", "randomness_contract")
#: Provenance keys whose change may move the last bits (XLA's fusion and rounding) but not the
#: law of the results: a resume warns. Refusing would discard every finished point at each JAX
#: upgrade; jax.random's bits for a key do not depend on the JAX version.
WARNED_PROVENANCE = ("jax", "jaxlib")


def provenance() -> dict:
    """What fixes a run's numbers beside its config: precision (`x64`, JAX_ENABLE_X64), the
    library's version, the randomness contract's version
    (`simulate.randomness.RANDOMNESS_CONTRACT_VERSION`), and the JAX and jaxlib versions."""
    return {
        "x64": bool(jax.config.jax_enable_x64),
        "asgd-smoothing": _version("asgd-smoothing"),
        "randomness_contract": RANDOMNESS_CONTRACT_VERSION,
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
    }


def _version(package: str) -> str | None:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def _describe(key: str, value) -> str:
    if key == "x64":
        return "float64 (JAX_ENABLE_X64 on)" if value else "float32 (JAX_ENABLE_X64 off)"
    if key == "randomness_contract":
        return f"randomness contract version {value}"
    return f"{key} {value}"


def load_or_redo(path, load, what: str, redo: str):
    """`load(path)`, or `None` with a `ResultFolderWarning` naming the file when it is damaged
    (`DAMAGED_FILE_ERRORS`): the caller then computes `what` again (`redo` says how)."""
    try:
        return load(path)
    except DAMAGED_FILE_ERRORS as error:
        warnings.warn(f"{str(path)!r}: damaged {what} ({type(error).__name__}: {error}); {redo}", ResultFolderWarning, stacklevel=3)
        return None


def check_out_dir(out_dir) -> Path:
    """Refuse, before anything is written, a result folder that cannot be made or written:
    a path through a file, or a folder without write permission. Returns `Path(out_dir)`."""
    out = Path(out_dir)
    existing = out
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ResultFolderError(f"--out {str(out)!r}: {str(existing)!r} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise ResultFolderError(f"--out {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultFolderError(f"--out {str(out)!r}: the folder {str(existing)!r} is not writable (permission denied)")
    return out


def _discard(out: Path) -> None:
    """Remove the result folder `out` in one step, as seen from `out`: rename it to a hidden
    sibling (atomic), then delete that. Killed at any moment, `out` is the whole old folder or
    absent, never a mix; a leftover sibling is deleted by the next claim."""
    discarded = out.parent / f".{out.name}.discarded-{secrets.token_hex(4)}"
    os.replace(out, discarded)
    shutil.rmtree(discarded)


def claim_folder(out_dir, name: str, raw_config: dict, *, fresh: bool) -> Path:
    """Make `out_dir` the result folder of the config `name` (`raw_config`, as read); returns
    its `points/` folder, where finished pieces of work are saved for resuming.

    A folder holding another config's results, or results made under another precision,
    library version or randomness contract (`provenance()`), is refused (`ConfigError`) unless
    `fresh`; another JAX version gives a warning. So is a folder that holds files but no
    `sweep.json` (not a result folder: a user's own files, or a folder of an older asgd). With
    `fresh`, a previous result folder (one with `sweep.json`) is removed as a whole first
    (`_discard`), so an interrupted `--fresh` leaves the old folder whole or a new one that the
    same command resumes, never a mix; in a folder without `sweep.json` only `points/` is removed
    and the run writes beside the other files.
    """
    out = check_out_dir(out_dir)
    for leftover in out.parent.glob(f".{out.name}.discarded-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    config_fingerprint = fingerprint(raw_config)
    points_dir = out / "points"
    manifest_path = out / "sweep.json"
    current = provenance()
    if fresh and manifest_path.exists():
        _discard(out)
    elif fresh:  # not a result folder (no claim): remove only what a sweep would reuse
        shutil.rmtree(points_dir, ignore_errors=True)
    if manifest_path.exists():
        previous = _read_json(manifest_path)
        recorded_config = previous.get("config")
        if recorded_config is not None and fingerprint(recorded_config) != previous.get("fingerprint"):
            raise ConfigError(
                f"{str(manifest_path)!r}: its fingerprint {previous.get('fingerprint')} is not that of the config it "
                f"records ({fingerprint(recorded_config)}): edited or copied by hand, so the folder's config is unknown; "
                "use --fresh to overwrite or another --out"
            )
        if previous.get("fingerprint") != config_fingerprint:
            raise ConfigError(
                f"--out {str(out)!r} holds results of a different config ({previous.get('experiment')!r}, "
                f"fingerprint {previous.get('fingerprint')}); use --fresh to overwrite or another --out"
            )
        recorded = previous.get("provenance")
        if not isinstance(recorded, dict):
            raise ConfigError(
                f"--out {str(out)!r} was started by an older asgd that did not record precision, version and "
                "randomness contract, so its points cannot be safely resumed; use --fresh to overwrite or another --out"
            )
        for key in REFUSED_PROVENANCE:
            if recorded.get(key) != current[key]:
                raise ConfigError(
                    f"--out {str(out)!r} holds results made under {_describe(key, recorded.get(key))}; this run is "
                    f"under {_describe(key, current[key])}, and a folder must not mix them; use --fresh to overwrite "
                    "or another --out"
                )
        changed = [key for key in WARNED_PROVENANCE if recorded.get(key) != current[key]]
        if changed:
            warnings.warn(
                f"--out {str(out)!r} was started under "
                + ", ".join(_describe(k, recorded.get(k)) for k in changed)
                + "; this run uses " + ", ".join(_describe(k, current[k]) for k in changed)
                + ": resumed and new points may differ in the last bits; --fresh recomputes them all",
                ResultFolderWarning,
                stacklevel=2,
            )
        return points_dir
    foreign = _foreign_files(out)
    if foreign and not fresh:
        raise ConfigError(
            f"--out {str(out)!r} holds files but no sweep.json ({', '.join(foreign)}): it is not a result folder "
            "of asgd (or was made before folders were claimed), and a folder must not mix runs; use --fresh to "
            "write into it anyway or another --out"
        )
    write_json(manifest_path, {"experiment": name, "fingerprint": config_fingerprint, "config": raw_config, "provenance": current})
    return points_dir


@contextlib.contextmanager
def released_on_failure(out_dir):
    """Run the body of a claimed folder's work; if it fails (any exception, Ctrl-C included)
    before anything was saved in it (no file under `points/`, no `results.csv`), remove the
    claim (`sweep.json`, an empty `points/`): a late check that fails must not leave the folder
    claimed by a config that produced nothing, or the corrected config would be refused as "a
    different config". A folder holding saved work keeps its claim: that work is resumable."""
    out = Path(out_dir)
    try:
        yield
    except BaseException:
        points = out / "points"
        saved = points.is_dir() and any(not p.name.startswith(".") for p in points.iterdir())
        if not saved and not (out / "results.csv").exists():
            with contextlib.suppress(OSError):
                (out / "sweep.json").unlink()
                if points.is_dir():
                    shutil.rmtree(points)
        raise


def _foreign_files(out: Path, shown: int = 3) -> list[str]:
    """The first `shown` names in `out` (sorted), and "... (N in all)" if more. Hidden names are
    not counted: they are temporary files of an interrupted atomic write, which a killed claim
    can leave before `sweep.json` exists."""
    if not out.is_dir():
        return []
    names = sorted(entry.name for entry in out.iterdir() if not entry.name.startswith("."))
    return names[:shown] + ([f"... ({len(names)} in all)"] if len(names) > shown else [])


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ResultFolderError(f"{str(path)!r}: missing") from None
    except UnicodeDecodeError as error:
        raise ResultFolderError(f"{str(path)!r}: damaged, not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ResultFolderError(
            f"{str(path)!r}: damaged, not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ResultFolderError(f"{str(path)!r}: damaged, a JSON object was expected")
    return data


def read_metadata(folder) -> dict:
    """`folder/metadata.json` as a dict; a missing or damaged file is a `ResultFolderError`
    naming it."""
    return _read_json(Path(folder) / "metadata.json")


def read_results(path, columns, numeric=()) -> list[dict]:
    """The rows of a `results.csv` (`read_csv`), checked: UTF-8, a header with every name in
    `columns`, at least one row, every row complete, and the `numeric` columns numbers (NaN
    allowed) or empty. Anything else is a `ResultFolderError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ResultFolderError(f"{str(path)!r}: missing") from None
    except UnicodeDecodeError as error:
        raise ResultFolderError(
            f"{str(path)!r}: damaged, not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if not header:
        raise ResultFolderError(f"{str(path)!r}: empty file (no header, no rows)")
    missing = [c for c in columns if c not in header]
    if missing:
        raise ResultFolderError(f"{str(path)!r}: damaged, the header lacks the columns {missing}")
    raw = list(reader)
    if not raw:
        raise ResultFolderError(f"{str(path)!r}: has a header but no rows")
    for index, row in enumerate(raw):  # csv fills a short row with None, puts extra cells under None
        if None in row or any(value is None for value in row.values()):
            cells = sum(row[c] is not None for c in header) + len(row.get(None) or [])
            raise ResultFolderError(
                f"{str(path)!r}: line {index + 2} has {cells} cells, the header {len(header)}: truncated or damaged file"
            )
    rows = read_csv(path)
    for index, row in enumerate(rows):
        for column in numeric:
            if column in row and row[column] != "" and not isinstance(row[column], (int, float)):
                raise ResultFolderError(
                    f"{str(path)!r}: line {index + 2}, column {column} = {row[column]!r}: not a number"
                )
    return rows


def write_results(out_dir, rows: list[dict], columns: list[str], arrays: dict, metadata: dict) -> None:
    """A finished run's files: `results.csv` (the rows, `columns` in order), `arrays.npz` and
    `metadata.json` (`metadata` plus `environment()`)."""
    out = Path(out_dir)
    write_csv(out / "results.csv", rows, columns)
    write_npz(out / "arrays.npz", **arrays)
    write_json(out / "metadata.json", {**metadata, **environment()})


def environment() -> dict:
    """Versions, backend and devices, git commit: what is needed to re-run a result."""
    versions = {"python": platform.python_version()}
    versions.update({package: _version(package) for package in ("asgd-smoothing", "jax", "jaxlib", "numpy", "scipy", "matplotlib")})
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "versions": versions,
        "jax_backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "git_commit": commit,
        "platform": platform.platform(),
        "command": sys.argv,
    }
