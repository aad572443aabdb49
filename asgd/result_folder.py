"""A result folder: its files written atomically, its claim by one config, the environment.

Every reproduction writes a folder `OUT/<experiment>/` holding `results.csv`, `arrays.npz`,
`metadata.json`, the figures, and `points/` (finished pieces of work, saved as they finish so
that the same command resumes an interrupted run). A file that exists is complete: every write
goes to a temporary name in the same folder, then `os.replace`. Formats are plain: CSV with a
header, `.npz`, JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

import jax
import numpy as np

from analysis.atomic_files import read_csv, to_json, write_bytes, write_csv, write_text
from asgd.schema import ConfigError

__all__ = [
    "claim_folder",
    "environment",
    "fingerprint",
    "read_csv",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_npz",
    "write_results",
    "write_text",
]


def write_json(path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=to_json) + "\n")


def write_npz(path, **arrays) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def fingerprint(raw_config: dict) -> str:
    """A short hash of the config as read: a folder holds the results of one config only."""
    canonical = json.dumps(raw_config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def claim_folder(out_dir, name: str, raw_config: dict, *, fresh: bool) -> Path:
    """Make `out_dir` the result folder of the config `name` (`raw_config`, as read); returns
    its `points/` folder, where finished pieces of work are saved for resuming.

    A folder holding another config's results is refused (`ConfigError`) unless `fresh`, which
    discards the saved points.
    """
    out = Path(out_dir)
    config_fingerprint = fingerprint(raw_config)
    points_dir = out / "points"
    manifest_path = out / "sweep.json"
    if fresh and out.exists():
        shutil.rmtree(points_dir, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("fingerprint") != config_fingerprint:
            raise ConfigError(
                f"--out {str(out)!r} holds results of a different config ({previous.get('experiment')!r}, "
                f"fingerprint {previous.get('fingerprint')}); use --fresh to overwrite or another --out"
            )
    write_json(manifest_path, {"experiment": name, "fingerprint": config_fingerprint})
    return points_dir


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
    for package in ("asgd-smoothing", "jax", "jaxlib", "numpy", "scipy", "matplotlib"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
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
