"""`simulate.run`: the public entry point. Validates once, then calls the driver chunk by chunk.

Everything that changes between sweep points of the same shapes (step sizes, seed, x0, noise
scale, tail fraction, SAM radius, momentum, EMA decay, objective parameters) is passed to the
compiled driver as a traced array, so a new sweep point reuses the compiled code. Static:
`n_steps`, the shapes, the dtype, the kernel's, noise model's and objective's functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from objectives import FiniteSum, Objective, validation
from objectives.noise import Minibatch, NoiseModel, gaussian
from objectives.state_noise import StateDependent
from simulate import exact
from simulate.driver import simulate_chains
from simulate.gradients import gradient_source
from simulate.kernels import Kernel, sgd
from simulate.progress import StepBar, report_progress_to
from simulate.result import SimulationResult
from simulate.schedules import MAX_STEP, Schedule, check
from simulate.trackers import BUILT_IN_ESTIMATORS, Records, Tracker, built_in, read_out, tail_length

__all__ = ["DivergenceWarning", "run", "checkpoint_schedule", "tail_length"]

#: The most steps `method="sgd"` runs: the driver counts steps in int32, up to the sentinel
#: n_steps + 1 that pads its record steps (`method="exact"` samples and has no such limit).
MAX_STEPS = MAX_STEP

#: The largest trajectory (n_steps * n_step_sizes * n_chains * dim numbers) kept in memory.
MAX_TRAJECTORY_NUMBERS = 50_000_000


class DivergenceWarning(RuntimeWarning):
    """Some chains diverged (left the ball or became non-finite) and were frozen and flagged."""


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


def _check_noise(noise, objective: Objective):
    """The noise model, checked against the objective (dimension; a finite sum for minibatches).
    A state-dependent model is checked at the starting points later (`_bound_noise`)."""
    if isinstance(noise, StateDependent):
        return noise
    if isinstance(noise, Minibatch):
        if not isinstance(objective, FiniteSum):
            raise ValueError(
                f"noise=minibatch(...) needs a finite-sum objective (objectives.finite_sum or a ready-made "
                f"model), got objective {objective.name!r}"
            )
        noise.check(objective)  # label noise: a regression finite sum
        if not noise.replace and noise.batch_size > objective.n_examples:
            raise ValueError(
                f"batch_size={noise.batch_size} exceeds the {objective.n_examples} examples of {objective.name!r}; "
                "sampling without replacement needs batch_size <= n_examples"
            )
    elif not isinstance(noise, NoiseModel):
        raise ValueError(f"noise must be a model from simulate.noise, got {type(noise).__name__}")
    elif noise.fixed_dim is not None and noise.fixed_dim != objective.dim:
        raise ValueError(
            f"noise covariance is {noise.fixed_dim}-dimensional but objective {objective.name!r} has dim={objective.dim}"
        )
    return noise


def _bound_noise(noise, objective: Objective, points: np.ndarray):
    """A state-dependent model bound to the objective (loss-scaled noise's f_min found) and its
    covariance checked at the starting `points` (real, (d, d), finite, symmetric, PSD)."""
    if isinstance(noise, StateDependent):
        noise = noise.bind(objective)
        noise.check(objective, points)
    return noise


def _check_method(method: str, exact_sampler_applies: bool, trajectory: bool) -> str:
    validation.one_of("method", method, ("sgd", "exact"))
    if method == "exact" and not exact_sampler_applies:
        raise ValueError(
            "method='exact' covers SGD with additive Gaussian noise only, at constant step sizes; minibatch noise, "
            "another algorithm, a schedule, ema_decay, track_v=False and trackers need method='sgd'"
        )
    if method == "exact" and trajectory:
        raise ValueError("trajectory=True needs method='sgd': the exact sampler does not visit every step")
    return method


def _check_trackers(trackers, built_ins) -> tuple[Tracker, ...]:
    """The user's trackers: `Tracker`s whose names and estimator names are new identifiers."""
    if isinstance(trackers, Tracker) or not isinstance(trackers, Sequence):
        raise ValueError(f"trackers must be a list of simulate.tracker(...) values, got {trackers!r}")
    taken = {name for t in built_ins for name in (t.name, *t.names)} | set(BUILT_IN_ESTIMATORS)
    for tracker in trackers:
        if not isinstance(tracker, Tracker):
            raise ValueError(f"trackers must hold simulate.tracker(...) values, got {tracker!r}")
        for name in dict.fromkeys((tracker.name, *tracker.names)):
            if not (isinstance(name, str) and name.isidentifier()) or name in taken:
                raise ValueError(
                    f"tracker name {name!r} must be a Python identifier not already used by this run's estimators "
                    f"({sorted(taken)})"
                )
            taken.add(name)
    return tuple(trackers)


def _check_trajectory_size(trajectory: bool, n_numbers: int) -> None:
    if trajectory and n_numbers > MAX_TRAJECTORY_NUMBERS:
        raise ValueError(
            f"trajectory=True would keep n_steps*n_step_sizes*n_chains*dim = {n_numbers:,} numbers; the limit "
            f"is {MAX_TRAJECTORY_NUMBERS:,}. Use fewer steps or chains, or rely on the streamed averages and checkpoints."
        )


def _check_schedule(schedule, n_steps: int) -> Schedule | None:
    """The schedule, or None for constant step sizes; its multipliers s(1..n_steps) must be
    finite and positive (`simulate.schedules.check`: on the host, once, without an array of
    n_steps numbers)."""
    if schedule is None:
        return None
    if not isinstance(schedule, Schedule):
        raise ValueError(
            "schedule must be a step-size schedule from simulate.schedules (constant(), cosine_decay(...), "
            f"step_decay(...), swa(...), custom(fn)) or None, got {schedule!r}"
        )
    if schedule.name == "constant":
        return None
    check(schedule, n_steps)
    return schedule


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


def _driven_records(kernel, gradient, trackers, objective, eta, points, first_chain, seed, record_steps, divergence_radius, schedule, *, n_steps, chunk_size, mesh, dtype, trajectory, progress):
    """Run the driver chunk by chunk; returns NumPy (records, diverged_at, path).

    `progress(steps_done, total_steps)`, if given, hears of finished steps, over all chunks.
    """
    n_chains = points.shape[0]
    n_chunks = -(-n_chains // chunk_size)
    kernel, trackers = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), (kernel, trackers))  # traced values
    outputs = []
    for chunk, start in enumerate(range(0, n_chains, chunk_size)):
        keep = slice(0, min(chunk_size, n_chains - start))
        # Pad the last chunk to the common shape (no recompile); padded chains are dropped.
        indices = np.arange(start, start + chunk_size)
        chunk_points = jnp.asarray(points[np.minimum(indices, n_chains - 1)], dtype)
        chain_indices = jnp.asarray((first_chain + indices) % 2**32, jnp.uint32)  # padding may wrap
        if mesh is not None:
            chunk_points = jax.device_put(chunk_points, NamedSharding(mesh, PartitionSpec("chains", None)))
            chain_indices = jax.device_put(chain_indices, NamedSharding(mesh, PartitionSpec("chains")))
        listener = None if progress is None else _monotone(progress, chunk * n_steps, n_chunks * n_steps)
        with report_progress_to(listener):
            records, chains, path = simulate_chains(
                kernel, gradient, trackers, objective, jnp.asarray(eta, dtype), chunk_points, chain_indices,
                jnp.asarray(seed, jnp.uint32), jnp.asarray(record_steps, jnp.int32), jnp.asarray(divergence_radius, dtype),
                schedule, n_steps=n_steps, dtype=dtype, trajectory=bool(trajectory), progress=progress is not None, mesh=mesh,
            )
            # Read back inside the `with`: the driver runs asynchronously and reports while it runs.
            outputs.append((
                jax.tree.map(lambda a: np.asarray(a)[:, :, keep], records),
                np.asarray(chains.diverged_at)[:, keep],
                None if path is None else np.asarray(path)[:, :, keep],
            ))
    joined = lambda axis, *parts: None if parts[0] is None else np.concatenate(parts, axis=axis)  # noqa: E731
    records = jax.tree.map(lambda *parts: joined(2, *parts), *[o[0] for o in outputs])
    return records, joined(1, *[o[1] for o in outputs]), joined(2, *[o[2] for o in outputs])


def _exact_records(objective, noise, eta, points, first_chain, seed, record_steps, dtype) -> Records:
    """Records sampled from the exact law (quadratic objective, Gaussian noise only)."""
    hessian, center = exact.applicable_form(objective, noise, eta)
    return exact.sample_records(
        hessian, center, noise.covariance(objective.dim), eta, points,
        first_chain + np.arange(points.shape[0]), seed, record_steps, np.dtype(dtype),
    )


def _warn_divergence(diverged: np.ndarray, eta: np.ndarray, divergence_radius: float) -> None:
    counts = ", ".join(f"step_size={e:.4g}: {n}/{diverged.shape[1]}" for e, n in zip(eta, diverged.sum(axis=1)) if n)
    warnings.warn(
        f"chains diverged (left the ball of radius {divergence_radius:g} or became non-finite) "
        f"and were frozen and flagged in result.diverged: {counts}",
        DivergenceWarning,
        stacklevel=3,
    )


def run(
    objective: Objective,
    *,
    step_sizes,
    n_steps: int,
    n_chains: int,
    x0,
    noise: NoiseModel | Minibatch = gaussian(1.0),
    algorithm: Kernel | None = None,
    schedule: Schedule | None = None,
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
    progress: bool | Callable[[int, int], None] = False,
    ema_decay: float | None = None,
    track_v: bool | None = None,
    trackers: Sequence[Tracker] = (),
) -> SimulationResult:
    """Run chains of an update rule (SGD by default) for every step size; return the last iterate
    and its averages.

    The SGD update, for each step size eta and chain, is

        x_k = x_{k-1} - eta (grad f(x_{k-1}) + eps_k),    eps_k i.i.d. from `noise`,

    and the estimators are x_T, x_avg = (1/T) sum_{k=1..T} x_k, the tail average x_tail over the
    last ceil(tail_fraction T) iterates, v_T and v_avg = (1/T) sum_{k=1..T} v_k with
    v_k = x_k - eta grad f(x_k) (Nitanda et al. 2024: v follows SGD on the smoothed objective
    F(v) = E f(v - eta eps)), and with `ema_decay` the debiased moving average x_ema.

    Chain i's noise at step k depends only on (seed, i, k) (see `simulate.randomness`): results
    are reproducible, identical under any `chunk_size`, sharding and `first_chain` split, and
    every step size sees the same noise.

    **Arguments:**

    - `objective`: an `objectives.Objective`.
    - `step_sizes`: eta, a positive number or a 1-D sequence of them (S values).
    - `n_steps`: T >= 1, at most `MAX_STEPS` = 2**31 - 2 with `method="sgd"`.
    - `n_chains`: C >= 1 independent chains per step size.
    - `x0`: the start, shape `(dim,)` for all chains or `(n_chains, dim)`.
    - `noise`: a model from `simulate.noise` (default: standard Gaussian), or
      `simulate.noise.minibatch(b)` for a finite-sum objective (the mean gradient over b examples),
      or noise whose covariance depends on x (`state_dependent(cov)`, `hessian_aligned`,
      `loss_scaled`, `label_noise`: eps = C(x)^(1/2) z on the Gaussian draws z; C is checked at
      x0, and a chain where C(x) stops being PSD is frozen and flagged as diverged).
    - `algorithm`: the update rule, a kernel from `simulate.kernels` (re-exported as
      `simulate.sgd()`, the default; `simulate.sam(radius)`; `simulate.momentum(beta)`).
    - `schedule`: a step-size schedule from `simulate.schedules` (`constant()`, the default;
      `cosine_decay`, `step_decay`, `swa`, `custom`): step k runs at eta_k = eta * s(k) for every
      eta of `step_sizes` (still one compiled call for the grid). Under a non-constant schedule
      SGD with additive noise takes its plain form (one more gradient a step when v is tracked),
      and v_k = x_k - eta_{k+1} grad f(x_k).
    - `seed`: an integer in [0, 2**32).
    - `tail_fraction`: the fraction of the last iterates in the tail average, in (0, 1].
    - `checkpoints`: the number of log-spaced steps at which to record the estimators as well,
      or an explicit increasing list of steps; n_steps is always included.
    - `chunk_size`: run the chains in chunks of this many (to bound memory); same results.
    - `divergence_radius`: a chain whose iterate leaves the ball ||x|| <= radius (or whose state
      becomes non-finite) is frozen and flagged in `diverged`/`diverged_at`: from the step k it
      was refused on, it stays at its last good state x_{k-1}, and every estimator is that of
      this path (never averaged into NaN). A chain whose gradient at x0 is not finite is
      flagged at step 1 and reports x0 in every estimator, v and x_ema included, for every
      algorithm and precision.
    - `trajectory`: also return every iterate (for short runs: memory grows with n_steps).
    - `dtype`: float32 (default) or float64 (needs JAX's x64 mode; default when it is on).
    - `shard`: split the chains across all local devices (default: when there is more than
      one). Results are bit-identical to a single-device run.
    - `first_chain`: the global index of the first chain: this call runs chains
      first_chain .. first_chain + n_chains - 1 (bit-identical to the slice of one larger run).
    - `method`: "sgd" steps the recursion; "exact" samples every reported quantity from its
      exact joint Gaussian law (SGD on a quadratic with Gaussian noise only; see `simulate.exact`).
    - `warn_on_divergence`: emit a `DivergenceWarning` with the count per step size.
    - `progress`: True shows a progress bar of the steps on stderr (`tqdm.auto`: a widget in
      Jupyter with ipywidgets, else a text line), or a function called as
      `progress(steps_done, total_steps)` from the host while the chains run, about 100 times per
      chunk of chains. Either way it changes no result.
    - `ema_decay`: beta in (0, 1): also return `x_ema`, the debiased exponential moving average
      of the iterates (what `optax.ema(beta, debias=True)` gives on them).
    - `track_v`: compute v and v_avg (default: yes, except with minibatch noise, where each v_k
      costs a full-data gradient). Without it the result has no `v`, `v_avg`.
    - `trackers`: estimators of your own, beside the built-in ones (`simulate.tracker(name, init,
      update, readout)`, `simulate.trackers`); each is returned by name (`result.estimator(name)`).

    **Returns:** a `SimulationResult` with NumPy arrays of shape `(S, C, dim)`.
    """
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an objectives.Objective, got {type(objective).__name__}")
    noise = _check_noise(noise, objective)
    algorithm = sgd() if algorithm is None else algorithm
    if not isinstance(algorithm, Kernel):
        raise ValueError(f"algorithm must be a kernel (simulate.sgd(), sam(radius), momentum(beta)), got {algorithm!r}")
    ema_decay = None if ema_decay is None else validation.probability("ema_decay", ema_decay, closed=False)
    track_v = validation.one_of("track_v", track_v, (None, True, False))
    track_v = not isinstance(noise, Minibatch) if track_v is None else track_v
    eta = validation.step_sizes("step_sizes", step_sizes)
    n_steps, n_chains = validation.positive_int("n_steps", n_steps), validation.positive_int("n_chains", n_chains)
    schedule_name = repr(schedule) if isinstance(schedule, Schedule) else "constant()"
    schedule = _check_schedule(schedule, n_steps)
    points = validation.points("x0", x0, n_chains, objective.dim, rows="n_chains")
    noise = _bound_noise(noise, objective, points)
    seed = validation.seed("seed", seed)
    tail_fraction = validation.real("tail_fraction", tail_fraction, lo=0.0, hi=1.0, open_lo=True)
    chunk_size = min(n_chains, n_chains if chunk_size is None else validation.positive_int("chunk_size", chunk_size))
    first_chain = validation.integer("first_chain", first_chain, lo=0, hi=2**32 - n_chains, note="first_chain + n_chains <= 2**32")
    mesh = _chain_mesh(validation.one_of("shard", shard, (None, True, False)))
    if mesh is not None:  # every device gets the same number of chains: round up (padding is dropped)
        chunk_size = -(-chunk_size // mesh.size) * mesh.size
    divergence_radius = validation.real("divergence_radius", divergence_radius, lo=0.0, open_lo=True, finite=False, note="inf disables the ball")
    dtype = validation.float_dtype("dtype", dtype)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True, False or a function progress(steps_done, total_steps), got {progress!r}")
    bar = StepBar(label="simulate.run") if progress is True else None
    progress = bar if progress is True else None if progress is None or progress is False else progress
    built_ins = built_in(tail_fraction, track_v, ema_decay)
    trackers = built_ins + _check_trackers(trackers, built_ins)
    plain_sgd = (
        algorithm.name == "sgd" and isinstance(noise, NoiseModel) and ema_decay is None and track_v and schedule is None
        and trackers == built_ins
    )
    method = _check_method(method, plain_sgd, trajectory)
    if method == "sgd" and n_steps > MAX_STEPS:
        raise ValueError(
            f"n_steps must be <= {MAX_STEPS} (2**31 - 2: the simulation counts steps in int32) with method='sgd', "
            f"got {n_steps}; method='exact' (SGD on a quadratic with Gaussian noise) has no such limit"
        )
    _check_trajectory_size(trajectory, n_steps * eta.size * n_chains * objective.dim)
    names = tuple(name for tracker in trackers for name in tracker.names)

    checkpoint_steps = checkpoint_schedule(n_steps, checkpoints)
    extra = [np.asarray(tracker.record_steps(checkpoint_steps, tracker.params), np.int64) for tracker in trackers]
    needed = np.union1d(checkpoint_steps, np.concatenate(extra))
    needed = needed[needed > 0]  # the prefix sum at step 0 is zero; nothing to record
    if method == "exact":
        records = _exact_records(objective, noise, eta, points, first_chain, seed, needed, dtype)
        diverged_at, path = np.full((eta.size, n_chains), -1), None
    else:
        # A length fixed by the number of checkpoints (2K + 1 for the built-ins) so that a new
        # tail_fraction changes values, not shapes.
        length = checkpoint_steps.size + sum(steps.size for steps in extra) + 1
        record_steps = np.full(length, n_steps + 1, dtype=np.int64)
        record_steps[: needed.size] = needed
        try:
            records, diverged_at, path = _driven_records(
                algorithm, gradient_source(noise), trackers, objective, eta, points, first_chain, seed,
                record_steps, divergence_radius, schedule, n_steps=n_steps, chunk_size=chunk_size, mesh=mesh, dtype=dtype,
                trajectory=trajectory, progress=progress,
            )
        finally:
            if bar is not None:
                bar.close()
    numpy_dtype = np.dtype(dtype)
    estimates = read_out(trackers, records, needed, checkpoint_steps, numpy_dtype, diverged_at)
    if warn_on_divergence and (diverged_at >= 0).any():
        _warn_divergence(diverged_at >= 0, eta, divergence_radius)
    if trajectory:
        start_points = np.broadcast_to(points.astype(numpy_dtype), (eta.size, n_chains, objective.dim))
        path = np.concatenate([start_points[None], path.astype(numpy_dtype)], axis=0)
    return SimulationResult(
        **{name: estimates[name][-1] if name in names else None for name in BUILT_IN_ESTIMATORS},
        estimators=names, diverged=diverged_at >= 0, diverged_at=diverged_at.astype(np.int64),
        checkpoint_steps=checkpoint_steps, checkpoints=estimates, step_sizes=eta, n_steps=n_steps,
        n_chains=n_chains, seed=seed, tail_fraction=tail_fraction, noise=noise, objective_name=objective.name,
        dim=objective.dim, dtype=numpy_dtype.name, divergence_radius=divergence_radius, method=method,
        trajectory=path, algorithm=repr(algorithm), ema_decay=ema_decay,
        schedule=schedule_name, **algorithm.reported(),
    )
