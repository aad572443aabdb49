"""`simulate.run`: the public entry point. Validates once, then calls the compiled engine.

Everything that changes between sweep points of the same shapes (step sizes, seed, x0, noise
scale, tail fraction, objective parameters) is passed to the compiled function as a traced
array, so a new sweep point reuses the compiled code. Static: `n_steps`, the shapes, the dtype,
the objective's and the noise model's functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from objectives import Objective
from simulate import noise as noise_models
from simulate import exact
from simulate.engine import Records, report_progress_to, simulate_chains
from simulate.oracle import simulate_oracle_chains
from simulate.result import ESTIMATORS, SimulationResult

__all__ = ["DivergenceWarning", "run", "checkpoint_schedule", "tail_length"]

#: The largest trajectory (n_steps * n_step_sizes * n_chains * dim numbers) kept in memory.
MAX_TRAJECTORY_NUMBERS = 50_000_000


class DivergenceWarning(RuntimeWarning):
    """Some chains diverged (left the ball or became non-finite) and were frozen and flagged."""


def tail_length(n_steps: int, tail_fraction: float) -> int:
    """m = ceil(tail_fraction * n_steps), the number of iterates in the tail average (>= 1)."""
    # round() first so that 0.3 * 10 = 3.0000000000000004 gives 3, not 4.
    return max(1, math.ceil(round(tail_fraction * n_steps, 9)))


def checkpoint_schedule(n_steps: int, checkpoints: int | Sequence[int]) -> np.ndarray:
    """The checkpoint steps: `checkpoints` log-spaced steps in [1, n_steps], or the given list.

    n_steps is always the last checkpoint.
    """
    if isinstance(checkpoints, (int, np.integer)) and not isinstance(checkpoints, bool):
        if checkpoints < 1:
            raise ValueError(f"checkpoints must be >= 1 (a count) or a list of steps, got {checkpoints}")
        steps = np.unique(np.round(np.geomspace(1, n_steps, int(checkpoints))).astype(np.int64))
    else:
        try:
            steps = np.asarray(checkpoints)
        except Exception:
            raise ValueError(f"checkpoints must be an int or a list of steps, got {checkpoints!r}") from None
        if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
            raise ValueError(f"checkpoints must be an int or a non-empty list of integer steps, got {checkpoints!r}")
        if np.any(np.diff(steps) <= 0) or steps[0] < 1 or steps[-1] > n_steps:
            raise ValueError(
                f"checkpoints must be strictly increasing steps in [1, n_steps={n_steps}], got {steps.tolist()}"
            )
    return np.union1d(steps, [n_steps]).astype(np.int64)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_step_sizes(step_sizes) -> np.ndarray:
    try:
        eta = np.atleast_1d(np.asarray(step_sizes, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"step_sizes must be positive finite numbers, got {step_sizes!r}") from None
    if eta.ndim != 1 or eta.size == 0:
        raise ValueError(f"step_sizes must be a number or a non-empty 1-D sequence, got shape {eta.shape}")
    bad = ~np.isfinite(eta) | (eta <= 0)
    if np.any(bad):
        raise ValueError(f"step_sizes must be positive and finite, got {eta[bad].tolist()} in {eta.tolist()}")
    return eta


def _check_dtype(dtype):
    x64 = bool(jax.config.jax_enable_x64)
    if dtype is None:
        return jnp.float64 if x64 else jnp.float32
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved == jnp.float32:
        return jnp.float32
    if resolved == jnp.float64:
        if not x64:
            raise ValueError(
                "dtype=float64 needs JAX's x64 mode: call jax.config.update('jax_enable_x64', True) "
                "before creating arrays, or set JAX_ENABLE_X64=1"
            )
        return jnp.float64
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


def _check_x0(x0, n_chains: int, dim: int) -> np.ndarray:
    try:
        points = np.asarray(x0, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"x0 must be an array of shape ({dim},) or ({n_chains}, {dim}), got {x0!r}") from None
    if points.shape == (dim,):
        points = np.broadcast_to(points, (n_chains, dim))
    elif points.shape != (n_chains, dim):
        raise ValueError(
            f"x0 must have shape ({dim},) (one point for all chains) or (n_chains, dim) = "
            f"({n_chains}, {dim}), got shape {points.shape}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("x0 must be finite, got non-finite entries")
    return points


def _chain_mesh(shard: bool | None) -> Mesh | None:
    """A one-axis mesh ("chains") over the local devices, or None for a single-device run."""
    devices = jax.local_devices()
    if shard is False or len(devices) == 1:
        return None
    return Mesh(np.array(devices), ("chains",))


def _monotone(progress, offset: int, total: int):
    """A listener for one chunk that calls `progress(offset + done, total)` on increases only
    (sharded chains report once per device)."""
    highest = -1

    def listener(done: int) -> None:
        nonlocal highest
        if done > highest:
            highest = done
            progress(offset + done, total)

    return listener


def _stepped_records(
    objective, noise, eta, points, first_chain, seed, record_steps, divergence_radius, *, n_steps, chunk_size, mesh, dtype, trajectory, progress=None, oracle=None
):
    """Run the compiled engine chunk by chunk; returns NumPy (records, diverged, diverged_at, path).

    `progress(steps_done, total_steps)`, if given, hears of finished steps, over all chunks.
    """
    n_chains = points.shape[0]
    n_chunks = -(-n_chains // chunk_size)
    outputs = []
    for chunk, start in enumerate(range(0, n_chains, chunk_size)):
        stop = min(start + chunk_size, n_chains)
        # Pad the last chunk to the common shape (no recompile); padded chains are dropped.
        indices = np.arange(start, start + chunk_size)
        chunk_points = jnp.asarray(points[np.minimum(indices, n_chains - 1)], dtype)
        chain_indices = jnp.asarray((first_chain + indices) % 2**32, jnp.uint32)  # padding may wrap
        if mesh is not None:
            chunk_points = jax.device_put(chunk_points, NamedSharding(mesh, PartitionSpec("chains", None)))
            chain_indices = jax.device_put(chain_indices, NamedSharding(mesh, PartitionSpec("chains")))
        listener = None if progress is None else _monotone(progress, chunk * n_steps, n_chunks * n_steps)
        engine, extra = simulate_chains, {"mesh": mesh}
        if oracle is not None:  # (traced extra arguments, static switches) of the general loop
            engine, extra = simulate_oracle_chains, dict(oracle[1])
            extra_args = tuple(jnp.asarray(value, dtype) for value in oracle[0])
        with report_progress_to(listener):
            records, states, path = engine(
                objective,
                noise,
                jnp.asarray(eta, dtype),
                chunk_points,
                chain_indices,
                jnp.asarray(seed, jnp.uint32),
                jnp.asarray(record_steps, jnp.int32),
                jnp.asarray(divergence_radius, dtype),
                *(extra_args if oracle is not None else ()),
                n_steps=n_steps,
                dtype=dtype,
                trajectory=bool(trajectory),
                progress=progress is not None,
                **extra,
            )
            keep = slice(0, stop - start)
            # Read back inside the `with`: the engine runs asynchronously and reports while it runs.
            outputs.append(
                (
                    jax.tree.map(lambda a: np.asarray(a)[:, :, keep], records),
                    np.asarray(states.diverged)[:, keep],
                    np.asarray(states.diverged_at)[:, keep],
                    None if path is None else np.asarray(path)[:, :, keep],
                )
            )
        if listener is not None:
            listener(n_steps)
    records = jax.tree.map(lambda *parts: np.concatenate(parts, axis=2), *[o[0] for o in outputs])
    diverged = np.concatenate([o[1] for o in outputs], axis=1)
    diverged_at = np.concatenate([o[2] for o in outputs], axis=1)
    path = np.concatenate([o[3] for o in outputs], axis=2) if trajectory else None
    return records, diverged, diverged_at, path


def _exact_records(objective, noise, eta, points, first_chain, seed, record_steps, dtype) -> Records:
    """Records sampled from the exact law (quadratic objective, Gaussian noise only)."""
    form = exact.quadratic_form_of(objective)
    if form is None or noise.family != "gaussian":
        raise ValueError(
            f"method='exact' needs a quadratic objective (objectives.quadratic) and Gaussian noise, "
            f"got objective {objective.name!r} and {noise.family} noise"
        )
    hessian, center = form
    curvatures = np.linalg.eigvalsh(hessian)
    unstable = [float(e) for e in eta if np.any(np.abs(1 - e * curvatures) > 1)]
    if unstable:
        raise ValueError(
            f"method='exact' needs stable step sizes (step_size * curvature in [0, 2] for every "
            f"curvature {curvatures.tolist()}), got step_sizes {unstable}; use method='sgd' to see divergence"
        )
    return exact.sample_records(
        hessian, center, noise.covariance(objective.dim), eta, points,
        first_chain + np.arange(points.shape[0]), seed, record_steps, np.dtype(dtype),
    )


def _estimators_at_checkpoints(records, record_steps, checkpoint_steps, tails, dtype, names=ESTIMATORS, ema_decay=None) -> dict[str, np.ndarray]:
    """The estimators `names` at each checkpoint t from the state recorded at `record_steps`.

    x_avg(t) = S_t / t and x_tail(t) = (S_t - S_{t-m}) / m from the prefix sums S (S_0 = 0), and
    x_ema(t) = e_t / (1 - beta^t) from the raw moving average e, computed in float64 and
    returned as `dtype` arrays `(K, S, C, dim)`.
    """
    slot_of = {int(step): slot for slot, step in enumerate(record_steps)}

    def prefix_sum(buffer, step):
        if step == 0:
            return np.zeros(buffer.shape[1:], np.float64)
        return buffer[slot_of[int(step)]].astype(np.float64)

    values = {name: [] for name in names}
    for t, m in zip(checkpoint_steps.tolist(), tails.tolist()):
        values["x"].append(records.x[slot_of[t]])
        values["x_avg"].append(prefix_sum(records.x_sum, t) / t)
        values["x_tail"].append((prefix_sum(records.x_sum, t) - prefix_sum(records.x_sum, t - m)) / m)
        if "v" in names:
            values["v"].append(records.v[slot_of[t]])
            values["v_avg"].append(prefix_sum(records.v_sum, t) / t)
        if "x_ema" in names:
            values["x_ema"].append(records.x_ema[slot_of[t]].astype(np.float64) / (1.0 - float(ema_decay) ** t))
    return {name: np.stack(stack).astype(dtype) for name, stack in values.items()}


def run(
    objective: Objective,
    *,
    step_sizes,
    n_steps: int,
    n_chains: int,
    x0,
    noise: noise_models.NoiseModel = noise_models.gaussian(1.0),
    seed: int = 0,
    tail_fraction: float = 0.5,
    checkpoints: int | Sequence[int] = 8,
    chunk_size: int | None = None,
    divergence_radius: float = 1e6,
    trajectory: bool = False,
    dtype=None,
    shard: bool | None = None,
    first_chain: int = 0,
    method: str = "sgd",
    warn_on_divergence: bool = True,
    progress: Callable[[int, int], None] | None = None,
    sam_radius: float | None = None,
    ema_decay: float | None = None,
    track_v: bool | None = None,
) -> SimulationResult:
    """Run SGD chains for every step size and return the last iterate and its averages.

    The update, for each step size eta and chain, is

        x_k = x_{k-1} - eta (grad f(x_{k-1}) + eps_k),    eps_k i.i.d. from `noise`,

    and the estimators are x_T, x_avg = (1/T) sum_{k=1..T} x_k, the tail average x_tail over the
    last ceil(tail_fraction T) iterates, v_T and v_avg = (1/T) sum_{k=1..T} v_k with
    v_k = x_k - eta grad f(x_k) (Nitanda et al. 2024: v follows SGD on the smoothed objective
    F(v) = E f(v - eta eps)).

    Chain i's noise at step k depends only on (seed, i, k) (see `simulate.randomness`): results
    are reproducible, identical under any `chunk_size`, and every step size sees the same noise.

    **Arguments:**

    - `objective`: an `objectives.Objective`.
    - `step_sizes`: eta, a positive number or a 1-D sequence of them (S values).
    - `n_steps`: T >= 1.
    - `n_chains`: C >= 1 independent chains per step size.
    - `x0`: the start, shape `(dim,)` for all chains or `(n_chains, dim)`.
    - `noise`: a model from `simulate.noise` (default: standard Gaussian).
    - `seed`: an integer in [0, 2**32).
    - `tail_fraction`: the fraction of the last iterates in the tail average, in (0, 1].
    - `checkpoints`: the number of log-spaced steps at which to record the estimators as well,
      or an explicit increasing list of steps; n_steps is always included.
    - `chunk_size`: run the chains in chunks of this many (to bound memory); same results.
    - `divergence_radius`: a chain whose iterate leaves the ball ||x|| <= radius (or becomes
      non-finite) is frozen and flagged in `diverged`/`diverged_at`.
    - `trajectory`: also return every iterate (for short runs: memory grows with n_steps).
    - `dtype`: float32 (default) or float64 (needs JAX's x64 mode; default when it is on).
    - `shard`: split the chains across all local devices (default: when there is more than
      one). Results are bit-identical to a single-device run.
    - `first_chain`: the global index of the first chain: this call runs chains
      first_chain .. first_chain + n_chains - 1. Splitting a run over processes or hosts with
      it and concatenating gives bit-identical results to one run (see the README).
    - `method`: "sgd" steps the recursion; "exact" samples every reported quantity from its
      exact joint Gaussian law (quadratic objective and Gaussian noise only; cost independent
      of n_steps; see `simulate.exact`). The two agree in law, not in the numbers drawn.
    - `warn_on_divergence`: emit a `DivergenceWarning` with the count per step size.
    - `progress`: a function called as `progress(steps_done, total_steps)` from the host while
      the chains run, every few noise blocks (about 100 times per chunk of chains); the total
      counts each chunk's steps. It changes no result. For progress bars.
    - `sam_radius`: rho >= 0: run SAM instead of SGD, x_{k+1} = x_k - eta g(x_k + rho g/||g||)
      with both stochastic gradients g on the same draw (Foret et al. 2021); rho = 0 is SGD.
    - `ema_decay`: beta in (0, 1): also return `x_ema`, the debiased exponential moving average
      (1 - beta) sum_{k<=t} beta^{t-k} x_k / (1 - beta^t) (what `optax.ema(beta, debias=True)`
      gives on the iterates).
    - `track_v`: compute v and v_avg (default: yes, except with minibatch noise, where each v_k
      costs a full-data gradient). Without it the result has no `v`, `v_avg`.

    `noise` may be `simulate.noise.minibatch(b)` for a finite-sum objective (`objectives.FiniteSum`):
    the stochastic gradient is then the mean gradient over b sampled examples. Minibatches,
    SAM and the EMA run in the general step loop (`simulate.oracle`), additive-noise SGD in the
    faster one; the two agree to float rounding.

    **Returns:** a `SimulationResult` with NumPy arrays of shape `(S, C, dim)`.
    """
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an objectives.Objective, got {type(objective).__name__}")
    minibatches = isinstance(noise, noise_models.Minibatch)
    if not isinstance(noise, noise_models.NoiseModel) and not minibatches:
        raise ValueError(f"noise must be a model from simulate.noise, got {type(noise).__name__}")
    if minibatches:
        n_examples = getattr(objective, "n_examples", None)
        if n_examples is None or not hasattr(objective, "point_minibatch_grad"):
            raise ValueError(
                f"noise=minibatch(...) needs a finite-sum objective (objectives.finite_sum or a ready-made "
                f"model), got objective {objective.name!r}"
            )
        if not noise.replace and noise.batch_size > n_examples:
            raise ValueError(
                f"batch_size={noise.batch_size} exceeds the {n_examples} examples of {objective.name!r}; "
                "sampling without replacement needs batch_size <= n_examples"
            )
    if sam_radius is not None:
        try:
            sam_radius = float(sam_radius)
        except (TypeError, ValueError):
            raise ValueError(f"sam_radius must be a finite number >= 0 or None, got {sam_radius!r}") from None
        if not (math.isfinite(sam_radius) and sam_radius >= 0):
            raise ValueError(f"sam_radius must be a finite number >= 0 or None, got {sam_radius!r}")
    if ema_decay is not None:
        try:
            ema_decay = float(ema_decay)
        except (TypeError, ValueError):
            raise ValueError(f"ema_decay must be a number in (0, 1) or None, got {ema_decay!r}") from None
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be a number in (0, 1) or None, got {ema_decay!r}")
    if track_v not in (None, True, False):
        raise ValueError(f"track_v must be None (automatic), True or False, got {track_v!r}")
    track_v = (not minibatches) if track_v is None else track_v
    use_oracle = minibatches or sam_radius is not None or ema_decay is not None or not track_v
    names = ("x", "x_avg", "x_tail") + (("v", "v_avg") if track_v else ()) + (("x_ema",) if ema_decay is not None else ())
    dim = objective.dim
    if noise.fixed_dim is not None and noise.fixed_dim != dim:
        raise ValueError(
            f"noise covariance is {noise.fixed_dim}-dimensional but objective {objective.name!r} has dim={dim}"
        )
    eta = _check_step_sizes(step_sizes)
    n_steps = _check_count("n_steps", n_steps)
    n_chains = _check_count("n_chains", n_chains)
    points = _check_x0(x0, n_chains, dim)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    try:
        tail_fraction = float(tail_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"tail_fraction must be a number in (0, 1], got {tail_fraction!r}") from None
    if not 0.0 < tail_fraction <= 1.0:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction!r}")
    chunk_size = n_chains if chunk_size is None else _check_count("chunk_size", chunk_size)
    chunk_size = min(chunk_size, n_chains)
    if isinstance(first_chain, bool) or not isinstance(first_chain, (int, np.integer)) or not (
        0 <= first_chain and first_chain + n_chains <= 2**32
    ):
        raise ValueError(f"first_chain must be an integer >= 0 with first_chain + n_chains <= 2**32, got {first_chain!r}")
    if shard not in (None, True, False):
        raise ValueError(f"shard must be None (automatic), True or False, got {shard!r}")
    mesh = _chain_mesh(shard)
    if mesh is not None:
        # Every device gets the same number of chains: round the chunk up (padding is dropped).
        chunk_size = -(-chunk_size // mesh.size) * mesh.size
    try:
        divergence_radius = float(divergence_radius)
    except (TypeError, ValueError):
        raise ValueError(f"divergence_radius must be a positive number, got {divergence_radius!r}") from None
    if not divergence_radius > 0:
        raise ValueError(f"divergence_radius must be positive (inf disables the ball), got {divergence_radius!r}")
    dtype = _check_dtype(dtype)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a function progress(steps_done, total_steps) or None, got {progress!r}")
    if method not in ("sgd", "exact"):
        raise ValueError(f"method must be 'sgd' or 'exact', got {method!r}")
    if method == "exact" and use_oracle:
        raise ValueError(
            "method='exact' covers SGD with additive Gaussian noise only; minibatch noise, sam_radius, "
            "ema_decay and track_v=False need method='sgd'"
        )
    if method == "exact" and trajectory:
        raise ValueError("trajectory=True needs method='sgd': the exact sampler does not visit every step")
    if trajectory and n_steps * eta.size * n_chains * dim > MAX_TRAJECTORY_NUMBERS:
        raise ValueError(
            f"trajectory=True would keep n_steps*n_step_sizes*n_chains*dim = "
            f"{n_steps * eta.size * n_chains * dim:,} numbers; the limit is {MAX_TRAJECTORY_NUMBERS:,}. "
            "Use fewer steps or chains, or rely on the streamed averages and checkpoints."
        )

    checkpoint_steps = checkpoint_schedule(n_steps, checkpoints)
    tails = np.array([tail_length(int(t), tail_fraction) for t in checkpoint_steps])
    needed = np.union1d(checkpoint_steps, checkpoint_steps - tails)
    needed = needed[needed > 0]  # the prefix sum at step 0 is zero; nothing to record

    if method == "exact":
        records = _exact_records(objective, noise, eta, points, first_chain, seed, needed, dtype)
        diverged = np.zeros((eta.size, n_chains), bool)
        diverged_at = np.full((eta.size, n_chains), -1)
        path = None
    else:
        # Fixed length (2K + 1) so that a new tail_fraction changes values, not shapes.
        record_steps = np.full(2 * checkpoint_steps.size + 1, n_steps + 1, dtype=np.int64)
        record_steps[: needed.size] = needed
        records, diverged, diverged_at, path = _stepped_records(
            objective, noise, eta, points, first_chain, seed, record_steps, divergence_radius,
            n_steps=n_steps, chunk_size=chunk_size, mesh=mesh, dtype=dtype, trajectory=trajectory,
            progress=progress,
            oracle=(
                ((sam_radius or 0.0, ema_decay or 0.0), (("sam", sam_radius is not None), ("track_v", track_v), ("ema", ema_decay is not None)))
                if use_oracle else None
            ),
        )
    numpy_dtype = np.dtype(dtype)
    checkpoint_arrays = _estimators_at_checkpoints(records, needed, checkpoint_steps, tails, numpy_dtype, names, ema_decay)

    trajectory_array = None
    if trajectory:
        start_points = np.broadcast_to(points.astype(numpy_dtype), (eta.size, n_chains, dim))
        trajectory_array = np.concatenate([start_points[None], path.astype(numpy_dtype)], axis=0)

    if warn_on_divergence and diverged.any():
        counts = ", ".join(
            f"step_size={e:.4g}: {n}/{n_chains}" for e, n in zip(eta, diverged.sum(axis=1)) if n
        )
        warnings.warn(
            f"chains diverged (left the ball of radius {divergence_radius:g} or became non-finite) "
            f"and were frozen and flagged in result.diverged: {counts}",
            DivergenceWarning,
            stacklevel=2,
        )

    return SimulationResult(
        **{name: checkpoint_arrays[name][-1] if name in names else None for name in ESTIMATORS},
        x_ema=checkpoint_arrays["x_ema"][-1] if "x_ema" in names else None,
        estimators=names,
        diverged=diverged,
        diverged_at=diverged_at.astype(np.int64),
        checkpoint_steps=checkpoint_steps,
        checkpoints=checkpoint_arrays,
        step_sizes=eta,
        n_steps=n_steps,
        n_chains=n_chains,
        seed=int(seed),
        tail_fraction=tail_fraction,
        noise=noise,
        objective_name=objective.name,
        dim=dim,
        dtype=numpy_dtype.name,
        divergence_radius=divergence_radius,
        method=method,
        trajectory=trajectory_array,
        sam_radius=sam_radius,
        ema_decay=ema_decay,
    )
