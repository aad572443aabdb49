"""Estimator errors with honest uncertainty: `errors(result, target)` -> a tidy `ErrorTable`.

For every step size eta, checkpoint t and estimator, over the chains that had not diverged by t,

    mse    = (1/n) sum_i ||xhat_i - target||^2
    mse_se = sd_i(||xhat_i - target||^2) / sqrt(n)           (Monte Carlo standard error)

and, with `bootstrap=B`, a percentile interval from B resamples of the chains. Diverged chains
are excluded and counted in `n_diverged`; they never turn a row into NaN. A row where every
chain diverged has `n_chains = 0` and `mse = mse_se = nan` (explicitly: nothing to average).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from analysis import storage

__all__ = ["ErrorTable", "errors", "COLUMNS"]

COLUMNS = ("estimator", "step_size", "n_steps", "mse", "mse_se", "n_chains", "n_diverged")


class ErrorTable:
    """Rows (dicts) with at least the columns `COLUMNS`; filter with `select`, read with `column`."""

    def __init__(self, rows: Iterable[dict]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def to_records(self) -> list[dict]:
        return [dict(row) for row in self.rows]

    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else list(COLUMNS)

    def column(self, name: str) -> np.ndarray:
        if self.rows and name not in self.rows[0]:
            raise ValueError(f"column must be one of {self.columns()}, got {name!r}")
        return np.asarray([row[name] for row in self.rows])

    def select(self, **equal) -> ErrorTable:
        """Rows whose columns equal the given values (floats compared with a relative 1e-9)."""
        for key in equal:
            if self.rows and key not in self.rows[0]:
                raise ValueError(f"select: column must be one of {self.columns()}, got {key!r}")

        def matches(row):
            for key, wanted in equal.items():
                value = row[key]
                if isinstance(value, float) or isinstance(wanted, float):
                    if not math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=0.0):
                        return False
                elif value != wanted:
                    return False
            return True

        return ErrorTable(row for row in self.rows if matches(row))

    def to_csv(self, path) -> None:
        storage.write_csv(path, self.rows, self.columns())

    def to_pandas(self):
        try:
            import pandas
        except ImportError:  # pragma: no cover - pandas is optional
            raise ImportError("to_pandas needs pandas, which is not a dependency: pip install pandas") from None
        return pandas.DataFrame.from_records(self.rows)

    def __str__(self) -> str:
        if not self.rows:
            return "(empty ErrorTable)"
        columns = self.columns()

        def fmt(value):
            if isinstance(value, float):
                return f"{value:.4g}"
            return str(value)

        cells = [[fmt(row[c]) for c in columns] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        return "\n".join(lines)

    __repr__ = __str__


def _targets(target, n_step_sizes: int, dim: int) -> np.ndarray:
    points = np.asarray(target, dtype=np.float64)
    if points.shape == (dim,):
        return np.broadcast_to(points, (n_step_sizes, dim))
    if points.shape == (n_step_sizes, dim):
        return points
    raise ValueError(
        f"target must have shape ({dim},) (one point) or (n_step_sizes, dim) = ({n_step_sizes}, {dim}), "
        f"got shape {points.shape}"
    )


def errors(result, target, *, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0, checkpoints: bool = True) -> ErrorTable:
    """Mean squared distance of every estimator to `target`, per step size and checkpoint.

    **Arguments:**

    - `result`: a `simulate.SimulationResult`.
    - `target`: one point `(dim,)`, or one per step size `(S, dim)` (such as v*(eta)).
    - `bootstrap`: number of bootstrap resamples for the columns `mse_lo`, `mse_hi` (0: none).
    - `confidence`: the level of the bootstrap interval.
    - `seed`: seed of the bootstrap resampling.
    - `checkpoints`: all checkpoints (default) or only the final step.

    **Returns:** an `ErrorTable`, rows ordered by estimator, step size, checkpoint.
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0 (number of resamples), got {bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    step_sizes = np.asarray(result.step_sizes)
    targets = _targets(target, step_sizes.size, result.dim)
    steps = np.asarray(result.checkpoint_steps)
    which = range(steps.size) if checkpoints else [steps.size - 1]
    rng = np.random.default_rng(seed)
    rows = []
    for name in result.checkpoints:
        values = np.asarray(result.checkpoints[name], dtype=np.float64)  # (K, S, C, d)
        for s, eta in enumerate(step_sizes):
            for k in which:
                t = int(steps[k])
                diverged = np.asarray(result.diverged[s]) & (np.asarray(result.diverged_at[s]) <= t)
                squared = np.sum((values[k, s][~diverged] - targets[s]) ** 2, axis=-1)
                n = squared.size
                row = {
                    "estimator": name,
                    "step_size": float(eta),
                    "n_steps": t,
                    "mse": float(squared.mean()) if n else math.nan,
                    "mse_se": float(squared.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                    "n_chains": int(n),
                    "n_diverged": int(diverged.sum()),
                }
                if bootstrap:
                    if n:
                        means = squared[rng.integers(0, n, size=(bootstrap, n))].mean(axis=1)
                        alpha = (1 - confidence) / 2
                        row["mse_lo"], row["mse_hi"] = (float(q) for q in np.quantile(means, [alpha, 1 - alpha]))
                    else:
                        row["mse_lo"] = row["mse_hi"] = math.nan
                rows.append(row)
    return ErrorTable(rows)
