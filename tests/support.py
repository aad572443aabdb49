"""What the tests share: running the `asgd` command line as a user does, and small configs
written from one base with each test's overrides (`tests/conftest.py` offers both as fixtures)."""

import contextlib
import copy
import io
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

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


#: A tiny MNIST-1D network experiment (an MLP, which compiles faster than the CNN; the CNN itself:
#: tests/test_mnist1d.py): the base of the network tests' configs, each overriding what it is about.
TINY_MNIST1D = {
    "kind": "network",
    "name": "tiny_mnist1d",
    "data": {"dataset": "mnist1d", "n_samples": 200},
    "model": {"kind": "mlp", "hidden": [8]},
    "train": {
        "methods": ["cosine", "sgd", "uniform_average", "tail_average", "ema", "swa", "sam"],
        "step_sizes": [0.05, 0.5], "n_steps": 64, "n_seeds": 3, "batch_size": 8,
    },
    "metrics": {"hutchinson_probes": 2, "power_iterations": 3, "sharpness_examples": 32},
}


#: A small sweep of a user's Python objective (`kind = "python"`), as TOML text (tests edit it as
#: text): `python_config` fills in the name, `objective.function` and an `[objective.args]` table.
PYTHON_CONFIG = textwrap.dedent('''
    name = "{name}"

    [objective]
    kind = "python"
    function = "{function}"
    {args}

    [noise]
    family = "gaussian"
    scale = 0.5

    [run]
    step_sizes = [0.05]
    n_steps = 40
    n_chains = 8
    x0 = [0.5]

    [target]
    kind = "point"
    point = [1.0]

    [output]
    figures = []
''')


def python_config(path, function: str, *, name: str = "python_study", args: str = "") -> Path:
    """Write `PYTHON_CONFIG` at `path` with `objective.function = function` and `args` (TOML text
    of an `[objective.args]` table, or ""); returns the path."""
    path = Path(path)
    path.write_text(PYTHON_CONFIG.format(name=name, function=function, args=args))
    return path


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


def run_config(folder, text: str) -> tuple[Path, Path, str]:
    """Write the config `text` (TOML) as folder/tiny.toml and `asgd run` it (in this process) into
    folder/results, quietly, from `folder`; it must succeed. Returns (the config, the result folder, stdout)."""
    folder = Path(folder)
    path = folder / "tiny.toml"
    path.write_text(text)
    out = main("run", path.name, "--out", "results", "--quiet", cwd=folder)
    assert out.returncode == 0, out.stderr[-3000:]
    name = text.split('name = "', 1)[1].split('"', 1)[0]
    return path, folder / "results" / name, out.stdout


def main(*args, cwd=None) -> subprocess.CompletedProcess:
    """`asgd ARGS` in this process, as `asgd` runs it in a subprocess but without its start-up
    (about 3 s of imports, and every compile again): the `CompletedProcess` with what it printed.
    Only what needs a process of its own (a signal, a crash, the environment, several hosts) uses
    `asgd`; one test per kind of error keeps the end-to-end check that no traceback escapes."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), contextlib.chdir(cwd or os.getcwd()):
        code = cli.main([str(a) for a in args])
    return subprocess.CompletedProcess(["asgd", *map(str, args)], code, stdout.getvalue(), stderr.getvalue())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (a coordinator's, in multi-process tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mean_check(values, expected, slack=0.0) -> None:
    """The sample mean of `values` within 4.5 standard errors (plus `slack`, a known bias) of `expected`."""
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - expected) <= 4.5 * se + slack, (values.mean(), expected, se, slack)


def variance_check(values, expected, slack=0.0) -> None:
    """The sample variance of `values` within 4.5 standard errors (from the fourth central moment)
    plus `slack` of `expected`."""
    centred = values - values.mean()
    variance = centred.var(ddof=1)
    se = math.sqrt(max(np.mean(centred**4) - variance**2, 0.0) / values.size)
    assert abs(variance - expected) <= 4.5 * se + slack, (variance, expected, se, slack)


def run_main(capsys, *args) -> tuple[int, str]:
    """`main(*args)` as (exit code, what it printed to stderr); `capsys` is kept for the callers'
    signature (output is captured by `main` itself)."""
    out = main(*args)
    return out.returncode, out.stderr


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
