"""Estimator errors with honest uncertainty: `errors(result, target)` -> a tidy `ErrorTable`.

For every step size eta, checkpoint t and estimator, over the n chains that had not diverged by
t (a chain counts as diverged at t when `result.diverged & (result.diverged_at <= t)`),

    mse    = (1/n) sum_i ||xhat_i - target||^2
    mse_se = sd_i(||xhat_i - target||^2) / sqrt(n)           (Monte Carlo standard error)

and, with `bootstrap=B`, a percentile interval [mse_lo, mse_hi] from B resamples of the chains.

Diverged chains are excluded and counted in `n_diverged`; they never turn a row into NaN or inf.
A chain counts as diverged in a row too when its squared error is not finite in float64: a
non-finite estimate, or one farther than about 1.3e154 from the target (its square overflows;
only a run with a huge `divergence_radius` gets there without being flagged). The squared
errors left are averaged after dividing by a power of two near the largest (exact, and bounded
by it), so `mse`, `mse_se` and the bootstrap interval cannot overflow either. So `n_diverged`
may differ between the estimators of one step size and checkpoint. The only NaNs are explicit
"nothing to average" markers: a row where every chain diverged has
`n_chains = 0` and `mse = mse_se = mse_lo = mse_hi = nan`, and a row with a single chain has
`mse_se = nan` (no spread to estimate).

`pool(tables)` combines the tables of several seeds (independent runs of the same sweep) into
one, treating every non-diverged chain of every seed as one sample (see `pool`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from objectives import validation as check
from simulate import files as atomic_files
from simulate.result import SimulationResult

__all__ = ["COLUMNS", "ErrorTable", "errors", "pool"]

#: The columns every `errors` table has, in order; `mse_lo`, `mse_hi` follow with `bootstrap`.
COLUMNS = ("estimator", "step_size", "n_steps", "mse", "mse_se", "n_chains", "n_diverged")

#: The columns `pool` combines over seeds; every other column identifies a row.
POOLED_COLUMNS = ("mse", "mse_se", "n_chains", "n_diverged", "mse_lo", "mse_hi", "seed", "n_seeds")

# Bootstrap resamples are drawn in blocks of at most this many indices (bounded memory).
_BOOTSTRAP_BLOCK = 1 << 22


class ErrorTable:
    """A tidy table: a list of records (dicts), one per estimator x step size x checkpoint.

    - `select(column=value, ...)` keeps the rows that match (floats compared to a relative 1e-9;
      a list, tuple or set of values matches any of them).
    - `column(name)` -> a NumPy array; `columns()` -> the names; `to_records()` -> dicts.
    - `to_csv(path)` writes CSV with a header, atomically; `to_pandas()` needs pandas (the
      `pandas` extra: `pip install 'asgd-smoothing[pandas]'`).
    - `str(table)` is an aligned text table.

    `rows` is an iterable of dicts, or a pandas DataFrame with the same columns (read with
    `DataFrame.to_dict("records")`), so `ErrorTable(table.to_pandas()) == table`.
    """

    def __init__(self, rows: Iterable[Mapping]):
        if _is_data_frame(rows):  # iterating a DataFrame yields its column names, not its rows
            rows = rows.to_dict("records")
        self.rows = [dict(row) for row in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __eq__(self, other) -> bool:
        return isinstance(other, ErrorTable) and self.rows == other.rows

    def to_records(self) -> list[dict]:
        return [dict(row) for row in self.rows]

    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else list(COLUMNS)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns():
            raise ValueError(f"column must be one of {self.columns()}, got {name!r}")
        return np.asarray([row[name] for row in self.rows])

    def select(self, **equal) -> ErrorTable:
        """The rows whose columns equal the given values, e.g. `select(estimator="x", n_steps=100)`."""
        for key in equal:
            if key not in self.columns():
                raise ValueError(f"select: column must be one of {self.columns()}, got {key!r}")
        wanted = {key: value if isinstance(value, (list, tuple, set, frozenset)) else (value,) for key, value in equal.items()}
        return ErrorTable(row for row in self.rows if all(_matches(row[key], options) for key, options in wanted.items()))

    def to_csv(self, path):
        """Write the table as CSV with a header (atomically: temporary file, then `os.replace`)."""
        return atomic_files.write_csv(path, self.rows, self.columns())

    @classmethod
    def from_csv(cls, path) -> ErrorTable:
        """Read a table written by `to_csv` (numbers parsed back; empty cells stay strings)."""
        return cls(atomic_files.read_csv(path))

    def to_pandas(self):
        """The table as a `pandas.DataFrame`, one row per record, columns in table order."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "ErrorTable.to_pandas needs pandas, an optional dependency: pip install 'asgd-smoothing[pandas]'"
            ) from None
        return pandas.DataFrame.from_records(self.rows, columns=self.columns())

    def __str__(self) -> str:
        if not self.rows:
            return "(empty ErrorTable)"
        columns = self.columns()
        cells = [[_format(row.get(c, "")) for c in columns] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        return "\n".join(lines)

    def __repr__(self) -> str:
        shown = 40
        if len(self.rows) <= shown:
            return str(self)
        head = ErrorTable(self.rows[:shown])
        return f"{head}\n... ({len(self.rows) - shown} more rows; {len(self.rows)} in all)"


def _is_data_frame(value) -> bool:
    """A pandas DataFrame, recognised without importing pandas (an optional dependency)."""
    return hasattr(value, "to_dict") and hasattr(value, "columns") and hasattr(value, "iloc")


def _matches(value, options) -> bool:
    for option in options:
        if isinstance(value, (float, np.floating)) or isinstance(option, (float, np.floating)):
            try:
                if math.isclose(float(value), float(option), rel_tol=1e-9, abs_tol=0.0):
                    return True
            except (TypeError, ValueError):
                pass
        elif value == option:
            return True
    return False


def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _bootstrap_interval(squared: np.ndarray, n_resamples: int, confidence: float, rng: np.random.Generator):
    """Percentile interval of the mean of `squared` over `n_resamples` resamples with replacement."""
    n = squared.size
    block = max(1, _BOOTSTRAP_BLOCK // n)
    means = np.concatenate([
        squared[rng.integers(0, n, size=(min(block, n_resamples - start), n))].mean(axis=1)
        for start in range(0, n_resamples, block)
    ])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _estimator_names(estimators, available: list[str]) -> list[str]:
    """`estimators` (None: all, one name, or an iterable of names) as a list of known names."""
    if estimators is None:
        return available
    try:
        names = [estimators] if isinstance(estimators, str) else list(estimators)  # one name, not its letters
    except TypeError:
        raise ValueError(f"estimators must be among {available} (one name or a list of them), got {estimators!r}") from None
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ValueError(f"estimators must be among {available} (one name or a non-empty list of them), got {estimators!r}")
    return names


def errors(
    result,
    target,
    *,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    checkpoints: bool = True,
    estimators=None,
) -> ErrorTable:
    """Mean squared distance of every estimator to `target`, per step size and checkpoint.

    **Arguments:**

    - `result`: a `simulate.SimulationResult` (estimators `(K, S, C, d)` at the checkpoints).
    - `target`: one point `(dim,)`, or one per step size `(S, dim)` (such as v*(eta)).
    - `bootstrap`: number of bootstrap resamples for the columns `mse_lo`, `mse_hi` (0: none).
    - `confidence`: the level of the bootstrap interval.
    - `seed`: seed of the bootstrap; each row's resamples depend only on (seed, estimator,
      step size index, checkpoint index), not on which other rows are computed.
    - `checkpoints`: all checkpoints (default) or only the final step n_steps.
    - `estimators`: a name or a list of names to tabulate (default: all of `result.checkpoints`).

    **Returns:** an `ErrorTable` with the columns `COLUMNS` (and `mse_lo`, `mse_hi` with
    `bootstrap`), rows ordered by estimator, step size, checkpoint. See the module docstring
    for the two places NaN appears.
    """
    if not isinstance(result, SimulationResult):
        raise TypeError(f"result must be a simulate.SimulationResult (what simulate.run returns), got {type(result).__name__}")
    bootstrap = check.non_negative_int("bootstrap", bootstrap, note="number of resamples")
    confidence = check.probability("confidence", confidence, closed=False)
    seed = check.seed("seed", seed)
    names = _estimator_names(estimators, list(result.checkpoints))
    step_sizes = np.asarray(result.step_sizes, dtype=np.float64)
    targets = check.points("target", target, step_sizes.size, result.dim, rows="n_step_sizes")
    steps = np.asarray(result.checkpoint_steps)
    which = range(steps.size) if checkpoints else [steps.size - 1]
    diverged, diverged_at = np.asarray(result.diverged, bool), np.asarray(result.diverged_at)
    order = list(result.checkpoints)
    rows = []
    for name in names:
        e = order.index(name)
        values = np.asarray(result.checkpoints[name])  # (K, S, C, d)
        for s, eta in enumerate(step_sizes):
            for k in which:
                t = int(steps[k])
                with np.errstate(over="ignore", invalid="ignore"):  # overflow is a divergence, counted below
                    squared = np.sum((values[k, s].astype(np.float64) - targets[s]) ** 2, axis=-1)  # (C,)
                gone = (diverged[s] & (diverged_at[s] <= t)) | ~np.isfinite(squared)
                squared = squared[~gone]
                n = squared.size
                # A power of two: dividing is exact, squared / scale is below 2 (2**1023 at most:
                # 2**1024 itself overflows), and so are its mean and spread: nothing below overflows.
                scale = float(np.ldexp(1.0, np.frexp(squared.max())[1] - 1)) if n else 1.0
                scaled = squared / scale
                row = {
                    "estimator": name,
                    "step_size": float(eta),
                    "n_steps": t,
                    "mse": float(scaled.mean() * scale) if n else math.nan,
                    "mse_se": float(scaled.std(ddof=1) / math.sqrt(n) * scale) if n > 1 else math.nan,
                    "n_chains": int(n),
                    "n_diverged": int(gone.sum()),
                }
                if bootstrap:
                    row["mse_lo"] = row["mse_hi"] = math.nan
                    if n:
                        rng = np.random.default_rng([int(seed), e, s, k])
                        lo, hi = _bootstrap_interval(scaled, int(bootstrap), confidence, rng)
                        row["mse_lo"], row["mse_hi"] = lo * scale, hi * scale
                rows.append(row)
    return ErrorTable(rows)


def pool(tables) -> ErrorTable:
    """One table from the tables of several seeds: every chain of every seed as one sample.

    For each row (the same estimator, step size, checkpoint and any other identifying column in
    every table), with n_s counted chains, mean m_s and standard error se_s in seed s:

        N      = sum_s n_s
        mse    = (1/N) sum_s n_s m_s                                   (mean over all N chains)
        sd^2   = [sum_s (n_s - 1) n_s se_s^2 + sum_s n_s (m_s - mse)^2] / (N - 1)
        mse_se = sd / sqrt(N)

    since n_s se_s^2 is seed s's sample variance: exactly `errors` over the N chains of all
    seeds concatenated (the seeds are independent runs, so the chains are i.i.d.). `n_chains`
    and `n_diverged` are summed; the column `n_seeds` says how many seeds each row pools (a
    pooled table pooled again adds them up). The bootstrap columns `mse_lo`, `mse_hi` are
    dropped: an interval needs the chains themselves, and plots then draw mse +- 2 se.

    **Arguments:**

    - `tables`: a sequence of `ErrorTable`s (or DataFrames), one per seed; or one table with a
      `seed` column (as `results.csv`), split by seed.

    **Returns:** an `ErrorTable`, rows in the first table's order. Every table must have the
    same rows: a row missing from one seed is an error, never a silent drop.
    """
    if isinstance(tables, ErrorTable) or _is_data_frame(tables):
        table = ErrorTable(tables) if _is_data_frame(tables) else tables
        if "seed" not in table.columns():
            raise ValueError(f"pool: a single table needs a 'seed' column to pool over (columns: {table.columns()}); "
                             "or pass a list of tables, one per seed")
        seeds = list(dict.fromkeys(table.column("seed").tolist()))
        parts = [ErrorTable(row for row in table if row["seed"] == seed) for seed in seeds]
    else:
        parts = [part if isinstance(part, ErrorTable) else ErrorTable(part) for part in tables]
    if not parts:
        raise ValueError("pool: tables must hold at least one table, got none")
    columns = [c for c in parts[0].columns() if c not in ("mse_lo", "mse_hi", "seed")]
    keys = [c for c in columns if c not in POOLED_COLUMNS]
    indexed = []
    for i, part in enumerate(parts):
        missing = [c for c in keys + ["mse", "mse_se", "n_chains", "n_diverged"] if c not in part.columns()] if len(part) else []
        if missing:
            raise ValueError(f"pool: table {i} lacks the columns {missing} (has {part.columns()})")
        rows = {}
        for row in part:
            key = tuple(row[c] for c in keys)
            if key in rows:
                raise ValueError(f"pool: table {i} has two rows with {dict(zip(keys, key))}; pass one table per seed")
            rows[key] = row
        indexed.append(rows)
    for i, by_key in enumerate(indexed[1:], start=1):
        for key in set(by_key) ^ set(indexed[0]):
            where = "table 0" if key in by_key else f"table {i}"
            raise ValueError(f"pool: the row {dict(zip(keys, key))} is missing from {where}; every seed must have the same rows")
    pooled = []
    for key, first in indexed[0].items():
        matched = [by_key[key] for by_key in indexed]
        n = np.array([row["n_chains"] for row in matched], dtype=np.float64)
        mean = np.array([row["mse"] if row["n_chains"] else 0.0 for row in matched], dtype=np.float64)
        se = np.array([row["mse_se"] if row["n_chains"] > 1 else 0.0 for row in matched], dtype=np.float64)
        total = n.sum()
        mse = float(np.sum(n * mean) / total) if total else math.nan
        squares = np.sum((n - 1) * n * se**2) + np.sum(n * (mean - mse) ** 2) if total else math.nan
        row = {c: first[c] for c in keys}
        row.update(
            mse=mse,
            mse_se=float(math.sqrt(squares / (total - 1) / total)) if total > 1 else math.nan,
            n_chains=int(total),
            n_diverged=int(sum(row_s["n_diverged"] for row_s in matched)),
            n_seeds=int(sum(row_s.get("n_seeds", 1) for row_s in matched)),
        )
        pooled.append({c: row[c] for c in columns + (["n_seeds"] if "n_seeds" not in columns else [])})
    return ErrorTable(pooled)
