"""The small-network check (issue 8): does averaging SGD's iterates at a large step size help a
real model trained on minibatches, as Nitanda et al. (2024) report for deep networks?

One experiment = one model on one dataset, trained by minibatch SGD from `n_seeds` random
initialisations at once (the seeds are the chains of `simulate.run`, so seed i's minibatches
depend only on (seed, i, step)), for every step size of a grid in the same compiled call.
Methods compared at every step size:

- `sgd`: the last iterate x_T (the left end of the grid is "SGD with a small step");
- `uniform_average`: (1/T) sum_k x_k;
- `tail_average`: the average of the last `tail_fraction` T iterates (SWA-style, from a burn-in);
- `ema`: the debiased exponential moving average of the iterates (decay `ema_decay`);
- `sam`: the last iterate of sharpness-aware minimisation (Foret et al. 2021) with radius
  `sam_radius`, the explicit flatness-seeking baseline; same minibatches as SGD;
- `cosine` (issue 17): the last iterate of SGD under a cosine-decaying step size (peak eta, the
  grid's step size, down to `cosine_final` eta), the usual tuned baseline;
- `swa` (issue 17): SWA (Izmailov et al. 2018): the step size decays linearly from eta to
  `swa_final` eta over the first `swa_start` of the run, then stays constant, and the iterates of
  that constant phase are averaged.

The methods run are `config.methods` (default the first five). With `cosine` among them, the
result folder also holds `paired.csv`: per method and step size, the per-seed difference of test
accuracy and test loss from the cosine baseline at its best step size (by mean test accuracy:
the tuned baseline), mean, standard error and 95% t-interval (the seeds share initialisation and
minibatches across methods, so the differences are paired).

Metrics at the returned parameters, per seed, then mean and standard error across seeds
(diverged seeds excluded and counted): train loss, test loss, test accuracy, train accuracy,
the Hessian trace of the training loss (Hutchinson, Rademacher probes) and its top eigenvalue
(power iteration). Results go to a folder like the other reproductions: `results.csv`,
`arrays.npz` (returned parameters), `metadata.json`, figures; each training run is saved under
`points/` as soon as it finishes, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import objectives
import simulate
import figures as plots
from asgd import averaging_window, result_folder
from asgd.network_config import NetworkConfig
from asgd.schema import ConfigError
from asgd.sweep import Point, claim, resume_points

__all__ = [
    "ALL_METHODS",
    "METHODS",
    "METRICS",
    "NetworkOutcome",
    "draw_network_figures",
    "evaluate",
    "format_table",
    "paired_differences",
    "seed_differences",
    "plot_network",
    "run_network",
]

#: Method name -> (training run, estimator of `simulate.run`): the default methods of a config.
METHODS = {
    "sgd": ("sgd", "x"),
    "uniform_average": ("sgd", "x_avg"),
    "tail_average": ("sgd", "x_tail"),
    "ema": ("sgd", "x_ema"),
    "sam": ("sam", "x"),
}
#: Every method a config may list (`train.methods`): the default five and issue 17's two.
ALL_METHODS = {**METHODS, "cosine": ("cosine", "x"), "swa": ("swa", "x_tail")}
METHOD_LABELS = {
    "sgd": r"SGD, last iterate",
    "uniform_average": r"uniform average",
    "tail_average": r"tail average (SWA)",
    "ema": r"EMA",
    "sam": r"SAM, last iterate",
    "cosine": r"SGD, cosine decay",
    "swa": r"SWA (decay, then average)",
}
METHOD_STYLE = {
    "sgd": dict(color=plots.OKABE_ITO[6], marker="o"),
    "uniform_average": dict(color=plots.OKABE_ITO[5], marker="s"),
    "tail_average": dict(color=plots.OKABE_ITO[3], marker="^"),
    "ema": dict(color=plots.OKABE_ITO[2], marker="D"),
    "sam": dict(color=plots.OKABE_ITO[7], marker="v"),
    "cosine": dict(color=plots.OKABE_ITO[1], marker="x"),
    "swa": dict(color=plots.OKABE_ITO[4], marker="P"),
}
METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "hessian_trace", "top_eigenvalue")
RESULT_COLUMNS = ["experiment", "method", "step_size", "metric", "mean", "se", "n_seeds", "n_diverged"]
PAIRED_COLUMNS = ["experiment", "method", "step_size", "metric", "baseline", "baseline_step_size", "mean_difference", "se", "ci_low", "ci_high", "n_seeds"]
PAIRED_METRICS = ("test_accuracy", "test_loss")

# ---- data and model ----------------------------------------------------------------------------


def load_dataset(config: NetworkConfig):
    """The config's dataset (`objectives.datasets`)."""
    options = {k: v for k, v in config.data.items() if k != "dataset"}
    if config.data["dataset"] == "digits":
        return objectives.datasets.digits(**options)
    if config.data["dataset"] == "mnist1d":
        return objectives.datasets.mnist1d(**options)
    return objectives.datasets.teacher_student(**options)


def build_model(config: NetworkConfig, dataset):
    """(training objective, test objective, x0 of shape (n_seeds, dim)): seed i starts from the
    model's initialisation with seed `config.init_seed` + i."""
    inputs, labels = dataset.train
    kind, l2 = config.model["kind"], config.model["l2"]
    if kind == "cnn1d":
        train = objectives.cnn1d(
            inputs, labels, channels=config.model["channels"], kernel_size=config.model["kernel_size"],
            stride=config.model["stride"], n_classes=dataset.n_classes, l2=l2,
        )
    elif kind == "mlp":
        train = objectives.mlp(
            inputs, labels, hidden=config.model["hidden"], n_classes=dataset.n_classes,
            activation=config.model["activation"], l2=l2,
        )
    else:
        train = objectives.logistic_regression(inputs, labels, n_classes=dataset.n_classes, l2=l2)
    x0 = np.stack([train.init(config.init_seed + seed) for seed in range(config.n_seeds)])
    test = train.with_data(dataset.test)
    return train, test, x0


# ---- metrics ------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("hutchinson_probes", "power_iterations"))
def _metrics(train, test, curved, flat, keys, *, hutchinson_probes: int, power_iterations: int) -> dict:
    """Every metric at each row of `flat` `(n, dim)`, one point at a time (`lax.map`: the
    Hessian-vector products of one point at once are what fits in memory). Compiled once per
    model and shape, not once per method: the objectives are pytrees (data as leaves)."""

    def one(args):
        x, point_keys = args
        trace, _ = objectives.hutchinson_trace(curved, x, point_keys[0], n_probes=hutchinson_probes)
        top = objectives.top_eigenvalue(curved, x, point_keys[1], n_iterations=power_iterations)
        return {
            "train_loss": train.point_value(x),
            "test_loss": test.point_value(x),
            "train_accuracy": objectives.accuracy(train, x),
            "test_accuracy": objectives.accuracy(test, x),
            "hessian_trace": trace,
            "top_eigenvalue": top,
        }

    return jax.lax.map(one, (flat, keys))


def evaluate(train, test, points, *, key, hutchinson_probes: int, power_iterations: int, sharpness_examples: int | None = None) -> dict[str, np.ndarray]:
    """Every metric at `points` `(..., dim)`: a dict metric -> array `(...)`.

    The Hessian is that of the training objective (the full-data mean loss), or with
    `sharpness_examples` = m that of the mean loss on the first m training examples (a cheaper
    estimate of the same curvature). Each point gets its own probes (keys split from `key`).
    """
    curved = train
    if sharpness_examples is not None and sharpness_examples < train.n_examples:
        curved = train.with_data(jax.tree.map(lambda leaf: leaf[:sharpness_examples], train.params))
    points = jnp.asarray(points)
    shape = points.shape[:-1]
    flat = points.reshape(-1, points.shape[-1])
    keys = jax.random.split(key, flat.shape[0] * 2).reshape(flat.shape[0], 2)
    values = _metrics(train, test, curved, flat, keys, hutchinson_probes=hutchinson_probes, power_iterations=power_iterations)
    return {name: np.asarray(values[name]).reshape(shape) for name in METRICS}


# ---- running -----------------------------------------------------------------------------------


@dataclasses.dataclass
class NetworkOutcome:
    out_dir: Path
    rows: list[dict]
    metrics: dict  # method -> metric -> (S, C) per-seed values
    diverged: dict  # run -> (S, C)
    resumed: int
    wall_time: float
    paired: list = dataclasses.field(default_factory=list)  # `paired_differences` rows (with cosine)
    windows: list = dataclasses.field(default_factory=list)  # `averaging_window.window_rows`


def _train(config: NetworkConfig, train, x0, which: str, progress, checkpoints) -> simulate.SimulationResult:
    kwargs = dict(
        step_sizes=config.step_sizes, n_steps=config.n_steps, n_chains=config.n_seeds, x0=x0,
        noise=simulate.noise.minibatch(config.batch_size, replace=config.replace), seed=config.seed,
        tail_fraction=config.tail_fraction, checkpoints=checkpoints, progress=progress,
        warn_on_divergence=False,
    )
    if which == "sgd":
        return simulate.run(train, ema_decay=config.ema_decay, **kwargs)
    if which == "cosine":
        return simulate.run(train, schedule=simulate.cosine_decay(config.n_steps, config.cosine_final), **kwargs)
    if which == "swa":
        decay_end = max(1, min(config.n_steps - 1, round(config.swa_start * config.n_steps)))
        kwargs["tail_fraction"] = (config.n_steps - decay_end) / config.n_steps  # the constant phase
        return simulate.run(train, schedule=simulate.swa(0, decay_end, config.swa_final), **kwargs)
    return simulate.run(train, algorithm=simulate.sam(config.sam_radius), **kwargs)


def _runs(config: NetworkConfig) -> list[str]:
    """The training runs the config's methods need, in order ("sgd" serves four methods)."""
    return list(dict.fromkeys(ALL_METHODS[method][0] for method in config.methods))


def seed_differences(config: NetworkConfig, metrics: dict, diverged: dict, baseline: str = "cosine") -> tuple[float, dict]:
    """(the baseline's best step size, {(method, step size, metric): per-seed differences}): the
    differences metric(method) - metric(baseline at its best step size) for `PAIRED_METRICS`, over
    the seeds where neither diverged. The best step size maximises the baseline's mean test
    accuracy (the tuned baseline)."""
    which = ALL_METHODS[baseline][0]
    accuracy = metrics[baseline]["test_accuracy"]
    means = [accuracy[s][~diverged[which][s]].mean() if (~diverged[which][s]).any() else -np.inf for s in range(len(config.step_sizes))]
    best = int(np.argmax(means))
    differences = {}
    for method in config.methods:
        for s, eta in enumerate(config.step_sizes):
            good = ~diverged[ALL_METHODS[method][0]][s] & ~diverged[which][best]
            for metric in PAIRED_METRICS:
                differences[(method, eta, metric)] = (metrics[method][metric][s] - metrics[baseline][metric][best])[good].astype(np.float64)
    return config.step_sizes[best], differences


def paired_differences(config: NetworkConfig, metrics: dict, diverged: dict, baseline: str = "cosine") -> list[dict]:
    """Per method and step size, the per-seed differences of `seed_differences`: mean, standard
    error and the 95% t-interval over the seeds."""
    best, differences = seed_differences(config, metrics, diverged, baseline)
    rows = []
    for (method, eta, metric), values in differences.items():
        n = values.size
        mean = float(values.mean()) if n else math.nan
        se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        half = float(stats.t.ppf(0.975, n - 1)) * se if n > 1 else math.nan
        rows.append({
            "experiment": config.name, "method": method, "step_size": eta, "metric": metric, "baseline": baseline,
            "baseline_step_size": best, "mean_difference": mean, "se": se,
            "ci_low": mean - half, "ci_high": mean + half, "n_seeds": int(n),
        })
    return rows


def _summarise(config: NetworkConfig, metrics: dict, diverged: dict) -> list[dict]:
    rows = []
    for method in config.methods:
        which = ALL_METHODS[method][0]
        for s, eta in enumerate(config.step_sizes):
            good = ~diverged[which][s]
            for metric in METRICS:
                values = metrics[method][metric][s][good]
                n = values.size
                rows.append(
                    {
                        "experiment": config.name, "method": method, "step_size": eta, "metric": metric,
                        "mean": float(values.mean()) if n else math.nan,
                        "se": float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                        "n_seeds": int(n), "n_diverged": int((~good).sum()),
                    }
                )
    return rows


def _methods_of(config: NetworkConfig, which: str) -> list[str]:
    """The config's methods that the training run `which` serves, in the config's order."""
    return [m for m in config.methods if ALL_METHODS[m][0] == which]


def _load_training_run(path: Path, names: list[str]) -> dict | None:
    """The arrays `names` of a saved training run, or `None` with a warning naming the file when
    it is damaged or lacks one (the run is then trained again)."""
    def load(path):
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in names}

    return result_folder.load_or_redo(path, load, "training run", "training it again")


def run_network(config: NetworkConfig, out_dir, *, fresh: bool = False, quiet: bool = False) -> NetworkOutcome:
    """Train every method, evaluate, write the result folder; resumes finished training runs."""
    start = time.perf_counter()
    out = result_folder.check_out_dir(out_dir)
    dataset = load_dataset(config)
    train, test, x0 = build_model(config, dataset)  # errors here come before anything is written
    n_train = len(dataset.train[1])
    if not config.replace and config.batch_size > n_train:
        raise ConfigError(
            f"train.batch_size = {config.batch_size}: must be <= the {n_train} training examples of the dataset "
            "(batches are drawn without replacement; or set train.replace = true)"
        )
    out, points = claim(config, out, fresh=fresh)
    with result_folder.released_on_failure(out):
        return _train_and_write(config, out, points, dataset, train, test, x0, start, quiet)


def _train_and_write(config, out, points, dataset, train, test, x0, start, quiet) -> NetworkOutcome:
    """`run_network` once the folder is claimed: train (or resume) every run, evaluate, write."""
    runs = _runs(config)
    windows = averaging_window.averaging_windows(config)
    steps = averaging_window.trace_steps(config)
    diagnosed = averaging_window.diagnostic_objective(train, config.diagnostic_examples)
    traced = {run: ["trace_loss", "last_iterate", *(f"first/{w.method}" for w in windows.values() if w.run == run)]
              for run in runs if any(w.run == run for w in windows.values())}

    def run(which, progress) -> dict:  # what a training run saves: its divergences, its methods' points, its trace
        result = _train(config, train, x0, which, progress, steps if which in traced else [config.n_steps])
        record = averaging_window.trace_record(diagnosed, steps, result.checkpoints["x"], windows, which) if which in traced else {}
        return {"diverged": result.diverged, **{m: getattr(result, ALL_METHODS[m][1]) for m in _methods_of(config, which)}, **record}

    saved, resumed = resume_points(
        [Point(which, points / f"{which}.npz", config.n_steps) for which in runs],
        load=lambda which, path: _load_training_run(path, ["diverged", *_methods_of(config, which), *traced.get(which, [])]),
        compute=run, save=lambda path, arrays: result_folder.write_npz(path, **arrays), label=config.name, quiet=quiet,
    )
    estimates = {m: saved[which][m] for which in runs for m in _methods_of(config, which)}
    diverged = {which: saved[which]["diverged"] for which in runs}
    records = {which: {name: saved[which][name] for name in traced[which]} for which in runs if which in traced}

    metrics = {}
    key = jax.random.key(config.seed)
    for method in config.methods:
        metrics[method] = evaluate(
            train, test, estimates[method], key=jax.random.fold_in(key, list(ALL_METHODS).index(method)),
            hutchinson_probes=config.hutchinson_probes, power_iterations=config.power_iterations,
            sharpness_examples=config.sharpness_examples,
        )
    rows = _summarise(config, metrics, diverged)
    paired = paired_differences(config, metrics, diverged) if "cosine" in config.methods else []
    if paired:
        result_folder.write_csv(out / "paired.csv", paired, PAIRED_COLUMNS)
    window_rows = _diagnose_windows(config, diagnosed, test, steps, records, estimates, metrics, diverged)
    if window_rows:
        result_folder.write_csv(out / "windows.csv", window_rows, averaging_window.WINDOW_COLUMNS)
        result_folder.write_csv(out / "window_frequencies.csv", averaging_window.window_frequencies(window_rows), averaging_window.FREQUENCY_COLUMNS)
    wall_time = time.perf_counter() - start
    result_folder.write_results(
        out, rows, RESULT_COLUMNS,
        {
            "step_sizes": np.asarray(config.step_sizes), "x0": x0,
            **{f"{method}/params": estimates[method] for method in config.methods},
            **{f"{method}/{metric}": metrics[method][metric] for method in config.methods for metric in METRICS},
            **({"trace/steps": steps} if records else {}), **{f"trace/{run}_loss": record["trace_loss"] for run, record in records.items()},
        },
        {
            "experiment": config.name, "kind": "network", "description": config.description, "config": config.raw,
            "dim": train.dim, "n_train": int(dataset.train[0].shape[0]), "n_test": int(dataset.test[0].shape[0]),
            "resumed_points": resumed, "wall_time_s": wall_time,
        },
    )
    return NetworkOutcome(out, rows, metrics, diverged, resumed, wall_time, paired, window_rows)


def _diagnose_windows(config, diagnosed, test, steps, records, estimates, metrics, diverged) -> list[dict]:
    """`averaging_window.window_rows` for the averaged methods: each average against its run's
    last iterate."""
    windows = averaging_window.averaging_windows(config)
    if not windows:
        return []
    last_accuracy = {run: evaluate_accuracy(test, record["last_iterate"]) for run, record in records.items()}
    return averaging_window.window_rows(
        config, steps, records, diagnosed, {m: estimates[m] for m in windows},
        {m: metrics[m]["test_accuracy"] for m in windows}, last_accuracy, diverged,
    )


@jax.jit
def _accuracies(objective, flat):
    return jax.lax.map(lambda x: objectives.accuracy(objective, x), flat, batch_size=8)


def evaluate_accuracy(objective, points) -> np.ndarray:
    """The classification accuracy of `objective`'s data at every row of `points` `(..., dim)`."""
    points = jnp.asarray(points)
    return np.asarray(_accuracies(objective, points.reshape(-1, points.shape[-1]))).reshape(points.shape[:-1])


# ---- tables and figures ------------------------------------------------------------------------


def format_paired_table(paired: list[dict], metric: str = "test_accuracy") -> str:
    """Method x step size: the mean paired difference from the tuned baseline [95% CI]."""
    paired = [r for r in paired if r["metric"] == metric]
    if not paired:
        return ""
    step_sizes = sorted({float(r["step_size"]) for r in paired})
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in paired)]
    lookup = {(r["method"], float(r["step_size"])): r for r in paired}
    lines = [f"{'step_size':>10} " + " ".join(f"{m:>26}" for m in methods)]
    for eta in step_sizes:
        cells = []
        for method in methods:
            r = lookup.get((method, eta))
            ok = r and r["n_seeds"] > 1
            cells.append(f"{r['mean_difference']:>+8.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" if ok else f"{'-':>26}")
        lines.append(f"{eta:>10.4g} " + " ".join(cells))
    return "\n".join(lines)


def format_table(rows: list[dict], metric: str = "test_accuracy") -> str:
    """Method x step size: mean +- se of `metric`."""
    rows = [r for r in rows if r["metric"] == metric]
    step_sizes = sorted({float(r["step_size"]) for r in rows})
    lookup = {(r["method"], float(r["step_size"])): r for r in rows}
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in rows)]
    lines = [f"{'step_size':>10} " + " ".join(f"{m:>20}" for m in methods)]
    for eta in step_sizes:
        cells = []
        for method in methods:
            r = lookup.get((method, eta))
            cells.append(f"{r['mean']:>9.4f} +- {r['se']:<7.2g}" if r and r["n_seeds"] else f"{'diverged':>20}")
        lines.append(f"{eta:>10.4g} " + " ".join(cells))
    return "\n".join(lines)


_METRIC_LABELS = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "train_accuracy": "training accuracy",
    "test_accuracy": "test accuracy",
    "hessian_trace": r"sharpness: tr $\nabla^2 L_{\mathrm{train}}$",
    "top_eigenvalue": r"top Hessian eigenvalue $\lambda_{\max}$",
}


def plot_network(rows: list[dict], metrics=("test_accuracy", "hessian_trace"), *, title=None, path=None, ax=None):
    """One panel per metric: mean +- 2 SE across seeds vs step size (log x), one line per method.

    `ax`: a sequence of Axes, one per metric, to draw into (a panel of a larger figure); they are
    returned. Without it, a new figure in the house style is returned (saved to `path` if given).
    """
    if ax is not None:
        panels = list(np.ravel(ax))
        if len(panels) != len(metrics):
            raise ValueError(f"ax must hold one Axes per metric ({len(metrics)}: {list(metrics)}), got {len(panels)}")
        _draw_network(panels, rows, metrics)
        return ax
    with plots.house_style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics) + 1.8, 3.4), squeeze=False)  # + the legend beside
        _draw_network(axes[0], rows, metrics)
        if title:
            fig.suptitle(title)  # the style's constrained layout fits it, also under a later savefig
    if path is not None:
        plots.save(fig, path)
    return fig


def _draw_network(axes, rows, metrics) -> None:
    for ax, metric in zip(axes, metrics):
        for method in ALL_METHODS:
            mine = sorted((r for r in rows if r["method"] == method and r["metric"] == metric and r["n_seeds"]), key=lambda r: float(r["step_size"]))
            if not mine:
                continue
            eta = np.array([float(r["step_size"]) for r in mine])
            mean = np.array([float(r["mean"]) for r in mine])
            se = np.nan_to_num(np.array([float(r["se"]) for r in mine]))
            style = METHOD_STYLE[method]
            ax.plot(eta, mean, label=METHOD_LABELS[method], color=style["color"], marker=style["marker"], markersize=4, linewidth=1.3)
            ax.fill_between(eta, mean - 2 * se, mean + 2 * se, color=style["color"], alpha=0.18, linewidth=0)
        ax.set_xscale("log")
        if metric in ("hessian_trace", "top_eigenvalue", "train_loss", "test_loss"):
            ax.set_yscale("log")
        ax.set_xlabel(r"step size $\eta$")
        ax.set_ylabel(_METRIC_LABELS[metric])
    # Beside the last panel, never over a curve.
    axes[-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _network_title(meta: dict, rows: list[dict]) -> str:
    """"nn: mlp on digits, batch 32 / T = 2000 steps, 8 seeds (mean +- 2 se)": the run's T is
    the config's, with its [quick] override when the command ran with --quick."""
    config = meta.get("config") or {}
    train, model, data = config.get("train") or {}, config.get("model") or {}, config.get("data") or {}
    n_steps = train.get("n_steps")
    if "--quick" in (meta.get("command") or []):
        n_steps = (config.get("quick") or {}).get("n_steps", n_steps)
    seeds = max((int(r["n_seeds"]) + int(r["n_diverged"]) for r in rows), default=0)
    what = f"{model.get('kind', 'network')} on {data.get('dataset', 'data')}" + (f", batch {train['batch_size']}" if "batch_size" in train else "")
    return f"{meta.get('experiment', config.get('name', ''))}: {what}\nT = {n_steps} steps, {seeds} seeds (mean $\\pm$ 2 se)"


def draw_network_figures(folder) -> list[Path]:
    """The figures of a network result folder, from its `results.csv` alone."""
    folder = Path(folder)
    rows = result_folder.read_results(folder / "results.csv", RESULT_COLUMNS, numeric=("step_size", "mean", "se", "n_seeds", "n_diverged"))
    written = []
    title = _network_title(result_folder.read_metadata(folder), rows)
    for name, metrics in (("accuracy_sharpness", ("test_accuracy", "hessian_trace")), ("losses", ("train_loss", "test_loss", "top_eigenvalue"))):
        fig = plot_network(rows, metrics, title=title, path=folder / name)
        plt.close(fig)
        written.append(folder / f"{name}.png")
    if (folder / "windows.csv").exists():
        written += _draw_windows(folder)
    return written


def _draw_windows(folder: Path) -> list[Path]:
    """`windows.png`: the seeds whose average falls below the last iterate (`averaging_window.plot_windows`)."""
    rows = result_folder.read_csv(folder / "windows.csv")
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
        losses = {name[len("trace/"):-len("_loss")]: arrays[name] for name in arrays.files if name.startswith("trace/") and name.endswith("_loss")}
        steps, step_sizes = arrays["trace/steps"], arrays["step_sizes"]
    fig = averaging_window.plot_windows(rows, steps, losses, step_sizes, path=folder / "windows")
    if fig is None:
        return []
    plt.close(fig)
    return [folder / "windows.png"]

