"""A network experiment replicated (issue 27): R independent draws of the data and of the
training seeds, each a full result folder, and their pooled answer.

Replication r = 0 .. R-1 of a config draws its data with seed `data.seed + r`, trains with
minibatch seed `train.seed + r` and starts seed i from the initialisation `train.init_seed +
r n_seeds + i`, with n_seeds = `replicate.n_seeds` when given (the seeds per replication;
default `train.n_seeds`): replication 0 is the config itself (with those seeds), and no two
replications share a data draw,
a minibatch stream (chain i's noise depends on (seed, i, step), `simulate.randomness`) or an
initialisation. The result folder `OUT/<name>/` holds `replication_<r>/` (a network result folder
each, resumable) and:

- `replications.csv`: each replication's seeds and the step size of its tuned baseline;
- `pooled.csv`: per method, step size and metric, the per-seed paired differences from the tuned
  baseline (`asgd.network.paired_differences`, each replication against its own) pooled over all
  replications and seeds: mean, standard error and 95% t-interval with the N seeds as one sample;
  the replications' own means, their standard deviation and the 95% t-interval over them (R - 1
  degrees of freedom: the data draw's variation included); Higgins' I^2 = max(0, (Q - (R-1)) / Q)
  with Cochran's Q = sum_r (m_r - m_w)^2 / se_r^2, m_w the inverse-variance weighted mean (the
  share of the spread between replications beyond their seeds' noise); and in how many
  replications the claim "the method beats the baseline" holds (`n_hold`: 95% interval above 0)
  or is reversed (`n_against`: below 0);
- `windows.csv` and `window_frequencies.csv`: every replication's averaging-window diagnostic
  (`asgd.averaging_window`) and its frequencies, pooled;
- `summary.md`: the pooled test-accuracy table and the window frequencies, as the networks guide (docs/networks.md) quotes them.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats

import objectives
from asgd import averaging_window, network, result_folder
from asgd.network_config import NetworkConfig
from asgd.schema import ConfigError

__all__ = [
    "POOLED_COLUMNS",
    "ReplicatedOutcome",
    "format_pooled_table",
    "pool_differences",
    "pool_folder",
    "replication_config",
    "run_replicated",
    "summary_markdown",
]

POOLED_COLUMNS = ["experiment", "method", "step_size", "metric", "baseline", "mean_difference", "se", "ci_low", "ci_high", "n_seeds",
                  "n_replications", "replication_sd", "replication_ci_low", "replication_ci_high", "i_squared", "n_hold", "n_against"]
REPLICATION_COLUMNS = ["experiment", "replication", "data_seed", "train_seed", "init_seed", "baseline_step_size", "wall_time_s"]


def _data_seed(config: NetworkConfig) -> int:
    """The config's data seed: `data.seed`, or its dataset's default."""
    if "seed" in config.data:
        return int(config.data["seed"])
    maker = getattr(objectives.datasets, config.data["dataset"])
    return int(inspect.signature(maker).parameters["seed"].default)


def replication_config(config: NetworkConfig, replication: int) -> NetworkConfig:
    """Replication `replication` of `config` (see the module): its seeds shifted, its raw table
    (what claims its folder and `asgd run` would read) saying so."""
    n_seeds = config.replication_seeds or config.n_seeds
    data_seed, seed = _data_seed(config) + replication, config.seed + replication
    init_seed = config.init_seed + replication * n_seeds
    if max(data_seed, seed, init_seed + n_seeds - 1) > 2**32 - 1:
        raise ConfigError(f"replicate.replications = {config.replications}: replication {replication} would need a seed above 2**32 - 1; use smaller seeds")
    raw = copy.deepcopy(config.raw)
    raw.pop("replicate", None)
    for section, key, value in (("data", "seed", data_seed), ("train", "seed", seed), ("train", "init_seed", init_seed), ("train", "n_seeds", n_seeds)):
        raw.setdefault(section, {})[key] = value
        raw.get("quick", {}).pop(key, None)
    return dataclasses.replace(config, data={**config.data, "seed": data_seed}, seed=seed, init_seed=init_seed, n_seeds=n_seeds,
                               replications=1, replication_seeds=None, raw=raw)


@dataclasses.dataclass
class ReplicatedOutcome:
    out_dir: Path
    outcomes: list  # `network.NetworkOutcome` per replication
    pooled: list[dict]
    windows: list[dict]
    wall_time: float


def _t_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """mean, se, and the 95% t-interval of a sample (NaN where it has fewer than two values)."""
    n = values.size
    mean = float(values.mean()) if n else math.nan
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * se if n > 1 else math.nan
    return mean, se, mean - half, mean + half


def pool_differences(name: str, per_replication: list[dict]) -> list[dict]:
    """The `pooled.csv` rows from each replication's per-seed differences (a list, one dict
    (method, step size, metric) -> differences per replication); see the module for the columns."""
    rows = []
    for key in per_replication[0]:
        method, eta, metric = key
        samples = [differences[key] for differences in per_replication]
        mean, se, low, high = _t_interval(np.concatenate(samples))
        per = [_t_interval(sample) for sample in samples]
        means = np.array([p[0] for p in per])
        _, _, rep_low, rep_high = _t_interval(means)
        weights = np.array([1 / p[1] ** 2 if p[1] > 0 else math.nan for p in per])
        i_squared = math.nan
        if len(per) > 1 and np.all(np.isfinite(weights)):
            weighted = float(np.sum(weights * means) / np.sum(weights))
            q = float(np.sum(weights * (means - weighted) ** 2))
            i_squared = max(0.0, (q - (len(per) - 1)) / q) if q > 0 else 0.0
        rows.append({
            "experiment": name, "method": method, "step_size": eta, "metric": metric, "baseline": "cosine",
            "mean_difference": mean, "se": se, "ci_low": low, "ci_high": high, "n_seeds": int(sum(s.size for s in samples)),
            "n_replications": len(samples), "replication_sd": float(means.std(ddof=1)) if len(means) > 1 else math.nan,
            "replication_ci_low": rep_low, "replication_ci_high": rep_high, "i_squared": i_squared,
            "n_hold": int(sum(p[2] > 0 for p in per)), "n_against": int(sum(p[3] < 0 for p in per)),
        })
    return rows


def run_replicated(config: NetworkConfig, out_dir, *, replications: int | None = None, fresh: bool = False, quiet: bool = False) -> ReplicatedOutcome:
    """Run `replications` (default `config.replications`) replications of a network experiment
    with the cosine baseline among its methods; write each replication's folder and the pooled
    files. Resumes finished training runs of every replication."""
    replications = config.replications if replications is None else replications
    if not isinstance(replications, int) or isinstance(replications, bool) or replications < 2:
        raise ConfigError(f"replications = {replications!r}: must be an integer >= 2 to pool (1 is the plain run)")
    if "cosine" not in config.methods:
        raise ConfigError(f"train.methods = {list(config.methods)}: replications pool the differences from the cosine baseline; add \"cosine\"")
    start = time.perf_counter()
    out = result_folder.check_out_dir(out_dir)
    configs = [replication_config(config, r) for r in range(replications)]  # seed errors before anything is written
    result_folder.claim_folder(out, config.name, {**config.raw, "replicate": {"replications": replications}}, fresh=fresh)
    outcomes, table, windows = [], [], []
    for r, replicated in enumerate(configs):
        outcome = network.run_network(replicated, out / f"replication_{r}", quiet=quiet)
        network.draw_network_figures(outcome.out_dir)
        outcomes.append(outcome)
        windows += [{"replication": r, **row} for row in outcome.windows]
        table.append({"experiment": config.name, "replication": r, "data_seed": replicated.data["seed"], "train_seed": replicated.seed,
                      "init_seed": replicated.init_seed, "baseline_step_size": outcome.paired[0]["baseline_step_size"],
                      "wall_time_s": outcome.wall_time})
    pooled = pool_differences(config.name, [network.seed_differences(c, o.metrics, o.diverged)[1] for c, o in zip(configs, outcomes)])
    _write_pooled(out, table, pooled, windows)
    return ReplicatedOutcome(out, outcomes, pooled, windows, time.perf_counter() - start)


def _write_pooled(out: Path, table: list[dict], pooled: list[dict], windows: list[dict]) -> None:
    frequencies = averaging_window.window_frequencies(windows)
    result_folder.write_csv(out / "replications.csv", table, REPLICATION_COLUMNS)
    result_folder.write_csv(out / "pooled.csv", pooled, POOLED_COLUMNS)
    if windows:
        result_folder.write_csv(out / "windows.csv", windows, ["replication", *averaging_window.WINDOW_COLUMNS])
        result_folder.write_csv(out / "window_frequencies.csv", frequencies, averaging_window.FREQUENCY_COLUMNS)
    result_folder.write_text(out / "summary.md", summary_markdown(pooled, frequencies))


def pool_folder(folder) -> list[dict]:
    """Pool the finished replications of a replicated result folder from their files alone (each
    `replication_<r>/` with `metadata.json`: its `arrays.npz` per-seed metrics and its training
    runs' divergence flags) and write the pooled files as `run_replicated` does; an unfinished
    replication (no `metadata.json`) is left out. Returns the `pooled.csv` rows."""
    folder = Path(folder)
    finished = sorted((p for p in folder.glob("replication_*") if (p / "metadata.json").exists()), key=lambda p: int(p.name.split("_")[1]))
    if len(finished) < 2:
        raise ConfigError(f"{str(folder)!r}: {len(finished)} finished replication(s); pooling needs 2")
    table, differences, windows, name = [], [], [], None
    for path in finished:
        r, metadata = int(path.name.split("_")[1]), result_folder.read_metadata(path)
        raw, name = metadata["config"], metadata["experiment"]
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            step_sizes = tuple(float(eta) for eta in arrays["step_sizes"])
            methods = tuple(m for m in dict.fromkeys(f.split("/")[0] for f in arrays.files) if m in network.ALL_METHODS)  # the config's order
            metrics = {m: {metric: arrays[f"{m}/{metric}"] for metric in network.PAIRED_METRICS} for m in methods}
        diverged = {}
        for run in dict.fromkeys(network.ALL_METHODS[m][0] for m in methods):
            with np.load(path / "points" / f"{run}.npz", allow_pickle=False) as saved:
                diverged[run] = saved["diverged"]
        shape = dataclasses.make_dataclass("Shape", ["methods", "step_sizes"])(methods, step_sizes)
        best, mine = network.seed_differences(shape, metrics, diverged)
        differences.append(mine)
        windows += [{"replication": r, **row} for row in result_folder.read_csv(path / "windows.csv")] if (path / "windows.csv").exists() else []
        table.append({"experiment": name, "replication": r, "data_seed": raw["data"]["seed"], "train_seed": raw["train"]["seed"],
                      "init_seed": raw["train"]["init_seed"], "baseline_step_size": best, "wall_time_s": metadata["wall_time_s"]})
    pooled = pool_differences(name, differences)
    _write_pooled(folder, table, pooled, windows)
    return pooled


# ---- tables ------------------------------------------------------------------------------------


def _cell(row: dict) -> str:
    return (f"{row['mean_difference']:+.3f} [{row['replication_ci_low']:+.3f}, {row['replication_ci_high']:+.3f}] "
            f"{row['n_hold']}/{row['n_replications']}")


def format_pooled_table(pooled: list[dict], metric: str = "test_accuracy") -> str:
    """Method x step size: pooled mean difference [95% CI over replications] and the replications
    in which the method beats the baseline."""
    rows = [r for r in pooled if r["metric"] == metric]
    step_sizes = sorted({float(r["step_size"]) for r in rows})
    lookup = {(r["method"], float(r["step_size"])): r for r in rows}
    methods = [m for m in network.ALL_METHODS if any(r["method"] == m for r in rows)]
    lines = [f"{'method':>16} " + " ".join(f"{'eta = ' + format(eta, 'g'):>30}" for eta in step_sizes)]
    for method in methods:
        lines.append(f"{method:>16} " + " ".join(f"{_cell(lookup[(method, eta)]):>30}" for eta in step_sizes))
    return "\n".join(lines)


def _markdown_header(step_sizes) -> list[str]:
    """A Markdown table's header and rule: a method column, then one column per step size."""
    return ["| method | " + " | ".join(f"$\\eta$ = {eta:g}" for eta in step_sizes) + " |", "|---|" + "---|" * len(step_sizes)]


def summary_markdown(pooled: list[dict], frequencies: list[dict]) -> str:
    """The pooled test-accuracy table and the window frequencies as Markdown (`summary.md`)."""
    rows = [r for r in pooled if r["metric"] == "test_accuracy"]
    name = rows[0]["experiment"]
    step_sizes = sorted({float(r["step_size"]) for r in rows})
    lookup = {(r["method"], float(r["step_size"])): r for r in rows}
    methods = [m for m in network.ALL_METHODS if any(r["method"] == m for r in rows)]
    first = rows[0]
    lines = [
        f"### {name}: test accuracy minus the tuned cosine baseline, {first['n_replications']} replications",
        "",
        "Pooled mean difference [95% CI over the replications' means] and the replications whose own 95% CI is above 0.",
        "",
        *_markdown_header(step_sizes),
    ]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(_cell(lookup[(method, eta)]) for eta in step_sizes) + " |")
    if frequencies:
        lines += [
            "",
            f"### {name}: averaging windows that are not one basin (average's loss above its iterates')",
            "",
            "flagged / seeds; below: the average's test accuracy under its run's last iterate's; both: flagged and below.",
            "",
            *_markdown_header(step_sizes),
        ]
        found = {(r["method"], float(r["step_size"])): r for r in frequencies}
        for method in dict.fromkeys(r["method"] for r in frequencies):
            cells = []
            for eta in step_sizes:
                r = found.get((method, eta))
                cells.append(f"{r['n_flagged']}/{r['n_seeds']}; below {r['n_below_last']}, both {r['n_flagged_and_below']}" if r else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
