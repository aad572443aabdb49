"""Is an average's window one basin? The averages' failure mode, measured (issue 27).

An average x_bar = (1/m) sum_{k in W} x_k of SGD's iterates over a window W helps when the
iterates of W sit in one basin of the training loss L: where L is convex on their hull, Jensen's
inequality gives

    L(x_bar) <= (1/m) sum_{k in W} L(x_k),

so the average is at least as good as a typical iterate (and, SGD's noise averaged out, better).
When W straddles a move between basins (a loss spike, a jump), x_bar lies between them, on the
barrier, and its loss can exceed that of every iterate. Per averaged estimator, step size and seed,
from the training loss at iterates sampled along the run (`trace_steps`):

- `jensen_gap` = L(x_bar) - mean of L(x_k) over the sampled iterates of W. **`flagged` = gap > 0**:
  the window is not one convex basin (the average is worse than the iterates it averages).
- `line_barrier` = max_t [L((1-t) x_a + t x_b) - ((1-t) L(x_a) + t L(x_b))], t on an even grid of
  [0, 1], the loss barrier on the straight line from the window's first iterate x_a to its last
  x_b (Frankle et al. 2020, "Linear mode connectivity"): > 0 where the line crosses a ridge.
- `spike` = max / median of L(x_k) over the sampled iterates of W: a loss spike inside the window.

The windows (`averaging_windows`): the uniform average steps 1..T; the tail average the last
m = ceil(tail_fraction T); the EMA with decay beta the last ceil(log 0.05 / log beta) steps, which
carry 95% of its weight; SWA its constant phase (of its own run).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import figures as plots
from simulate import tail_length

__all__ = [
    "AveragingWindow",
    "WindowDiagnostic",
    "averaging_windows",
    "diagnose_window",
    "line_points",
    "point_losses",
    "trace_steps",
]

#: The EMA's window carries this fraction of its weight.
EMA_WEIGHT = 0.95
#: Points on the line from the window's first iterate to its last (ends included).
LINE_POINTS = 9


class AveragingWindow(NamedTuple):
    """The iterates an averaged method averages: steps `first_step` .. T of training run `run`."""

    method: str
    run: str
    first_step: int


class WindowDiagnostic(NamedTuple):
    """The diagnostic of one window, each field `(...)` (step sizes, seeds): see the module."""

    average_loss: np.ndarray
    iterates_loss: np.ndarray  # mean of L over the sampled iterates of the window
    jensen_gap: np.ndarray
    line_barrier: np.ndarray
    spike: np.ndarray
    flagged: np.ndarray  # bool: jensen_gap > 0


def averaging_windows(config) -> dict[str, AveragingWindow]:
    """Method -> its window, for the averaged methods among `config.methods` (a `NetworkConfig`)."""
    n_steps = config.n_steps
    ema_steps = min(n_steps, math.ceil(math.log(1 - EMA_WEIGHT) / math.log(config.ema_decay)))
    decay_end = max(1, min(n_steps - 1, round(config.swa_start * n_steps)))  # as `asgd.network._train`
    windows = {
        "uniform_average": AveragingWindow("uniform_average", "sgd", 1),
        "tail_average": AveragingWindow("tail_average", "sgd", n_steps - tail_length(n_steps, config.tail_fraction) + 1),
        "ema": AveragingWindow("ema", "sgd", n_steps - ema_steps + 1),
        "swa": AveragingWindow("swa", "swa", decay_end + 1),
    }
    return {method: windows[method] for method in config.methods if method in windows}


def trace_steps(config) -> np.ndarray:
    """The steps at which a training run's iterates are kept: `config.trace_points` evenly spaced
    steps round(j T / K), j = 1..K, and every window's first step (so each window's first and last
    iterates are among them). Sorted, in [1, T]."""
    n_steps, count = config.n_steps, config.trace_points
    even = np.round(np.arange(1, count + 1) * n_steps / count).astype(np.int64)
    firsts = [window.first_step for window in averaging_windows(config).values()]
    return np.unique(np.clip(np.concatenate([even, firsts, [n_steps]]), 1, n_steps)).astype(np.int64)


@jax.jit
def _point_losses(objective, flat: jax.Array) -> jax.Array:
    return jax.lax.map(objective.point_value, flat, batch_size=8)


def point_losses(objective, points) -> np.ndarray:
    """L at every row of `points` `(..., dim)`: `(...)` (`objective.point_value`, compiled once
    per objective and shape)."""
    points = jnp.asarray(points)
    values = _point_losses(objective, points.reshape(-1, points.shape[-1]))
    return np.asarray(values, np.float64).reshape(points.shape[:-1])


def line_points(first, last, n_points: int = LINE_POINTS) -> np.ndarray:
    """(1 - t) first + t last for t = 0, 1/(n-1), .., 1: `(n_points, ...)`."""
    t = np.linspace(0.0, 1.0, n_points).reshape((n_points,) + (1,) * np.ndim(first))
    return ((1 - t) * np.asarray(first, np.float64) + t * np.asarray(last, np.float64)).astype(np.asarray(first).dtype)


def diagnose_window(steps, trace_losses, first_step: int, average_loss, line_losses) -> WindowDiagnostic:
    """The window's diagnostic from losses already computed.

    **Arguments:**

    - `steps`: `(K,)` the steps at which the iterates were sampled (`trace_steps`).
    - `trace_losses`: `(K, ...)` L(x_k) at those steps.
    - `first_step`: the window's first step; its sampled iterates are those at steps >= it.
    - `average_loss`: `(...)` L(x_bar).
    - `line_losses`: `(n, ...)` L on the line from the window's first iterate to its last
      (`line_points`), t = 0 .. 1 evenly.

    **Returns:** a `WindowDiagnostic`.
    """
    steps = np.asarray(steps)
    inside = np.asarray(trace_losses, np.float64)[steps >= first_step]
    if inside.shape[0] == 0:
        raise ValueError(f"first_step={first_step} is after the last sampled step {int(steps.max())}: the window has no sampled iterate")
    iterates = inside.mean(axis=0)
    average_loss = np.asarray(average_loss, np.float64)
    line_losses = np.asarray(line_losses, np.float64)
    t = np.linspace(0.0, 1.0, line_losses.shape[0]).reshape((-1,) + (1,) * (line_losses.ndim - 1))
    chord = (1 - t) * line_losses[:1] + t * line_losses[-1:]
    gap = average_loss - iterates
    return WindowDiagnostic(
        average_loss=average_loss, iterates_loss=iterates, jensen_gap=gap,
        line_barrier=(line_losses - chord).max(axis=0), spike=inside.max(axis=0) / np.median(inside, axis=0),
        flagged=gap > 0,
    )


# ---- the network experiment's windows ----------------------------------------------------------

WINDOW_COLUMNS = ["experiment", "method", "run", "step_size", "seed", "first_step", "last_step", "average_loss", "iterates_loss",
                  "jensen_gap", "line_barrier", "spike", "flagged", "average_test_accuracy", "last_test_accuracy", "below_last"]
FREQUENCY_COLUMNS = ["experiment", "method", "step_size", "n_seeds", "n_flagged", "n_below_last", "n_flagged_and_below",
                     "mean_jensen_gap", "max_line_barrier", "max_spike"]


def diagnostic_objective(train, examples: int | None):
    """The training objective on its first `examples` examples (all when `None`): the loss the
    diagnostic compares iterates and averages with."""
    if examples is None or examples >= train.n_examples:
        return train
    return train.with_data(jax.tree.map(lambda leaf: leaf[:examples], train.params))


def trace_record(objective, steps, path, windows, run: str) -> dict[str, np.ndarray]:
    """What a finished training run keeps for the diagnostic: `trace_loss` `(K, S, C)` L at the
    iterates `path` `(K, S, C, dim)` sampled at `steps`, `last_iterate` `(S, C, dim)`, and
    `first/<method>` `(S, C, dim)`, the first iterate of each window of this run."""
    index = {int(step): k for k, step in enumerate(steps)}
    record = {"trace_loss": point_losses(objective, path), "last_iterate": np.asarray(path[-1])}
    for window in windows.values():
        if window.run == run:
            record[f"first/{window.method}"] = np.asarray(path[index[window.first_step]])
    return record


def window_rows(config, steps, records: dict, objective, averages: dict, average_accuracy: dict, last_accuracy: dict, diverged: dict) -> list[dict]:
    """Per averaged method, step size and seed (diverged seeds left out): the window's diagnostic
    (`diagnose_window`) and whether the average's test accuracy falls below its run's last iterate's.

    `records`: run -> `trace_record`; `averages`: method -> `(S, C, dim)`; `average_accuracy`:
    method -> `(S, C)`; `last_accuracy`: run -> `(S, C)`; `diverged`: run -> `(S, C)` bool.
    """
    rows = []
    for method, window in averaging_windows(config).items():
        record = records[window.run]
        line = line_points(record[f"first/{method}"], record["last_iterate"])
        found = diagnose_window(steps, record["trace_loss"], window.first_step, point_losses(objective, averages[method]),
                                point_losses(objective, line))
        below = average_accuracy[method] < last_accuracy[window.run]
        for s, eta in enumerate(config.step_sizes):
            for seed in range(config.n_seeds):
                if diverged[window.run][s, seed]:
                    continue
                rows.append({
                    "experiment": config.name, "method": method, "run": window.run, "step_size": eta, "seed": seed,
                    "first_step": window.first_step, "last_step": config.n_steps,
                    **{name: float(getattr(found, name)[s, seed]) for name in ("average_loss", "iterates_loss", "jensen_gap", "line_barrier", "spike")},
                    "flagged": int(found.flagged[s, seed]), "average_test_accuracy": float(average_accuracy[method][s, seed]),
                    "last_test_accuracy": float(last_accuracy[window.run][s, seed]), "below_last": int(below[s, seed]),
                })
    return rows


def window_frequencies(rows: list[dict]) -> list[dict]:
    """Per method and step size: how many windows are flagged, how many averages fall below their
    last iterate's test accuracy, and how many both (rows of `window_rows`, pooled as given)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["method"], float(row["step_size"])), []).append(row)
    out = []
    for (experiment, method, eta), mine in groups.items():
        flagged = np.array([r["flagged"] for r in mine], bool)
        below = np.array([r["below_last"] for r in mine], bool)
        out.append({
            "experiment": experiment, "method": method, "step_size": eta, "n_seeds": len(mine), "n_flagged": int(flagged.sum()),
            "n_below_last": int(below.sum()), "n_flagged_and_below": int((flagged & below).sum()),
            "mean_jensen_gap": float(np.mean([r["jensen_gap"] for r in mine])),
            "max_line_barrier": float(np.max([r["line_barrier"] for r in mine])), "max_spike": float(np.max([r["spike"] for r in mine])),
        })
    return out


def plot_windows(rows: list[dict], steps, trace_losses: dict, step_sizes, *, path=None, most: int = 12):
    """Per seed whose average falls below its run's last iterate (test accuracy), the training
    loss along its run with the averaging window shaded and the average's loss marked; the
    `most` largest falls, worst first. `rows`: `window_rows`; `trace_losses`: run -> `(K, S, C)`
    at `steps`. Returns the figure, or `None` when no average falls below."""
    import matplotlib.pyplot as plt

    below = sorted((r for r in rows if r["below_last"]), key=lambda r: r["average_test_accuracy"] - r["last_test_accuracy"])[:most]
    if not below:
        return None
    columns = min(4, len(below))
    with plots.style():
        fig, axes = plt.subplots(-(-len(below) // columns), columns, figsize=(3.3 * columns, 2.5 * -(-len(below) // columns)), squeeze=False)
        for ax, row in zip(axes.flat, below):
            s = [float(eta) for eta in step_sizes].index(float(row["step_size"]))
            ax.plot(steps, trace_losses[row["run"]][:, s, int(row["seed"])], color="0.3", linewidth=1.0, label="iterate")
            ax.axvspan(row["first_step"], row["last_step"], color=plots.OKABE_ITO[2], alpha=0.2, linewidth=0, label="window")
            ax.plot([row["last_step"]], [row["average_loss"]], marker="*", markersize=9, color=plots.OKABE_ITO[6], linestyle="none", label="average")
            ax.set_yscale("log")
            flag = "flagged" if row["flagged"] else "not flagged"
            ax.set_title(f"{row['method']}, $\\eta$={row['step_size']:g}, seed {row['seed']}\n"
                         f"acc {row['average_test_accuracy']:.3f} vs last {row['last_test_accuracy']:.3f}; {flag}", fontsize=7)
            ax.set_xlabel("step", fontsize=7)
        for ax in axes.flat[len(below):]:
            ax.set_visible(False)
        axes[0, 0].set_ylabel("training loss")
        axes[0, 0].legend(frameon=False, fontsize=6)
    if path is not None:
        plots.save(fig, path)
    return fig
