"""Network experiments from Python: the public entry point (what notebooks 06 and 08 use).

    from asgd import networks

    config = networks.load("mnist1d_cnn", quick=True, overrides={"n_steps": 64, "n_seeds": 4})
    outcome = networks.run(config, "out/mnist1d_cnn")
    print(networks.format_table(outcome.rows, "test_accuracy"))

A thin layer over the application's modules (`asgd.network` trains and evaluates,
`asgd.network_config` validates, `asgd.averaging_window` and `asgd.replications` diagnose and
pool): these names are the ones a script needs, and they stay put when those modules move.
The methods, metrics and the result folder's files are described in `asgd.network` and in
docs/networks.md; every config key in the config reference.
"""

from __future__ import annotations

from pathlib import Path

from asgd.averaging_window import plot_windows, window_frequencies
from asgd.network import (
    METHOD_LABELS,
    METHOD_STYLE,
    METRICS,
    PAIRED_METRICS,
    NetworkOutcome,
    format_paired_table,
    format_table,
    plot_network,
    run_network,
)
from asgd.network_config import NetworkConfig, parse_network_config
from asgd.replications import format_pooled_table
from asgd.result_folder import read_csv
from asgd.schema import ConfigError, read_toml

__all__ = [
    "BUILT_IN",
    "EXPERIMENTS",
    "METHOD_LABELS",
    "METHOD_STYLE",
    "METRICS",
    "PAIRED_METRICS",
    "NetworkConfig",
    "NetworkOutcome",
    "built_in",
    "format_paired_table",
    "format_pooled_table",
    "format_table",
    "load",
    "plot_network",
    "plot_windows",
    "read_csv",
    "run",
    "window_frequencies",
]

EXPERIMENTS = Path(__file__).parent / "experiments"
"""The folder of the built-in experiment configs (`asgd list` shows them)."""


def built_in() -> list[str]:
    """The names of the built-in network experiments (`nn`, `mnist1d_cnn`, `mnist1d_mlp`)."""
    return sorted(path.stem for path in EXPERIMENTS.glob("*.toml") if read_toml(path).get("kind") == "network")


BUILT_IN = tuple(built_in())


def load(config: str | Path, *, quick: bool = False, overrides: dict | None = None) -> NetworkConfig:
    """A validated network experiment: a built-in name (`BUILT_IN`) or the path of a TOML file.

    **Arguments:**

    - `config`: `"nn"`, `"mnist1d_cnn"`, ... or a path ending in `.toml` (`kind = "network"`).
    - `quick`: apply the file's `[quick]` table (the sizes of `asgd reproduce --quick`).
    - `overrides`: keys of `[train]`, `[metrics]` or `[data]` (e.g. `{"n_steps": 64,
      "step_sizes": [0.1, 1.0]}`) applied last, over `[quick]` when `quick`; validated like
      the file's own (a bad one is a `ConfigError` naming it, as `quick.<key>`).

    Raises `ConfigError` for an unknown name, a file that is not a network experiment, or any
    invalid key or value.
    """
    if isinstance(config, str) and not config.endswith(".toml"):
        if config not in BUILT_IN:
            raise ConfigError(f"config = {config!r}: not a built-in network experiment; one of {list(BUILT_IN)} or the path of a .toml file")
        path = EXPERIMENTS / f"{config}.toml"
    else:
        path = Path(config)
    raw = read_toml(path)
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise ConfigError(f"overrides = {overrides!r}: must be a dict of [train], [metrics] or [data] keys")
        # The parser applies the [quick] table over [train]/[metrics]/[data] key by key: the
        # overrides ride on it, after the file's own quick sizes (or instead of them).
        raw["quick"] = {**(raw.get("quick", {}) if quick else {}), **overrides}
        quick = True
    return parse_network_config(raw, quick=quick, source=str(path))


def run(config: NetworkConfig, out_dir, *, fresh: bool = False, quiet: bool = True) -> NetworkOutcome:
    """Train and evaluate every method of `config` into the result folder `out_dir`
    (`asgd.network.run_network`): `results.csv`, `arrays.npz`, `metadata.json`, and `paired.csv`
    with the cosine baseline. Finished training runs in `out_dir` are resumed unless `fresh`.
    Returns the `NetworkOutcome`: `rows` (mean and SE per method, step size and metric),
    `metrics` (method -> metric -> per-seed values, shape (S, C)), `paired`, `windows`."""
    return run_network(config, out_dir, fresh=fresh, quiet=quiet)
