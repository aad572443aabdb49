"""What the tests share: running the `asgd` command line as a user does, and small configs
written from one base with each test's overrides (`tests/conftest.py` offers both as fixtures)."""

import copy
import os
import subprocess
import sys
from pathlib import Path

from asgd import cli

#: A small sharp_flat sweep: the base of the command-line tests' configs. Each test overrides
#: what it is about (step sizes, horizons, seeds, figures, targets, [theory]).
SHARP_FLAT = {
    "name": "small",
    "objective": {"kind": "sharp_flat"},
    "noise": {"family": "gaussian", "scale": 1.0},
    "run": {"step_sizes": [0.05, 0.3], "n_steps": [200], "n_chains": 64, "seeds": [0, 1], "x0": [-1.0], "checkpoints": 3},
    "output": {"figures": []},
}


def asgd(*args, cwd=None, timeout: float = 300, env: dict | None = None, popen: bool = False):
    """`python -m asgd ARGS` in a subprocess with the Agg backend: the finished
    `CompletedProcess` (text output captured), or with `popen` the running `Popen`. `env`: variables
    to set on top of this process's (a value of None removes the variable)."""
    environment = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    environment = {name: value for name, value in environment.items() if value is not None}
    command = [sys.executable, "-m", "asgd", *map(str, args)]
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environment)


def run_main(capsys, *args) -> tuple[int, str]:
    """`asgd ARGS` in this process (no start-up cost): (exit code, what it printed to stderr)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def config(base: dict = SHARP_FLAT, **tables) -> dict:
    """`base` with `tables` merged in: a dict updates that table key by key (a value of None
    removes the key), anything else replaces the top-level key (None removes it)."""
    merged = copy.deepcopy(base)
    for key, value in tables.items():
        if isinstance(value, dict):
            table = merged.setdefault(key, {})
            for name, entry in value.items():
                table.pop(name, None) if entry is None else table.__setitem__(name, entry)
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def to_toml(data: dict) -> str:
    """TOML text of a config: top-level keys first, then one [table] per dict (one level deep,
    which is all our configs use)."""
    lines = [f"{key} = {_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{name} = {_value(value)}" for name, value in table.items()]
    return "\n".join(lines) + "\n"


def write_config(path, base: dict = SHARP_FLAT, **tables) -> Path:
    """Write `config(base, **tables)` as TOML at `path`; returns the path."""
    path = Path(path)
    path.write_text(to_toml(config(base, **tables)))
    return path
