"""The cases of issue 7. Each returns a flat dict of figures (seconds, rates, ratios).

Rates are chain-steps per second: (step sizes x chains x steps) / wall seconds of one
`simulate.run` call, checkpoints and all. Every comparison is timed by `timing.interleaved` in
one process; compile time is measured apart (first call, and JAX's compile events).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import analysis
import objectives
import simulate
import theory
from benchmarks import references
from benchmarks.timing import compile_events, interleaved
from simulate.randomness import minibatch_block

__all__ = ["throughput", "dense_quadratic", "compile_times", "stationary_law_times", "double_well_2d", "smoothed_solution_times", "minibatch_paths", "finite_time_law_times"]


def _first_call_and_sweep(run, sweep_point) -> dict:
    """Compile figures of `run()` (the first call with these shapes) and of a new sweep point."""
    with compile_events() as first:
        start = time.perf_counter()
        run()
        first_call = time.perf_counter() - start
    with compile_events() as again:
        sweep_point()
    return {
        "first_call_s": first_call,
        "compile_s": first.seconds,
        "compilations_first_call": first.count,
        "recompilations_new_sweep_point": again.count,
    }


def throughput(objective, *, x0, step_sizes, n_chains: int, n_steps: int, numpy_steps: int, repeats: int) -> dict:
    """Cases 1 and 2: `simulate.run` against two NumPy loops (`references.numpy_loop`, and the
    stricter `numpy_loop_engine_noise` with the engine's noise and XLA's gradient) and against
    drawing its noise in bulk.

    The engine draws C*T*d Gaussians (common random numbers: every step size sees the same
    noise); one call to `jax.random.normal` drawing as many is the "bulk-noise bound" the target
    is judged against. S*C*T*d, one Gaussian per chain-step and coordinate, is what a simulation
    without common random numbers would draw; it is reported as S times the measured C*T*d draw
    (one array of that size would hold S*C*T*d*4 bytes).
    """
    step_sizes = np.asarray(step_sizes, np.float64)
    n_step_sizes, dim = step_sizes.size, objective.dim
    kwargs = dict(step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=x0)
    run = lambda: simulate.run(objective, **kwargs)
    figures = {"n_step_sizes": n_step_sizes, "n_chains": n_chains, "n_steps": n_steps, "dim": dim}
    figures.update(_first_call_and_sweep(run, lambda: simulate.run(objective, **{**kwargs, "step_sizes": step_sizes * 0.9, "seed": 1, "x0": np.asarray(x0) + 0.01})))

    drawn = n_chains * n_steps * dim
    timed = interleaved(
        {
            "simulate_run": run,
            "numpy_loop": lambda: references.numpy_loop(objective, step_sizes, n_chains, numpy_steps, x0),
            "numpy_loop_engine_noise": references.numpy_loop_engine_noise(objective, step_sizes, n_chains, numpy_steps, x0),
            "jax_bulk_normal": references.jax_bulk_normal(drawn),
            "numpy_bulk_normal": references.numpy_bulk_normal(drawn),
            "gradients_alone": references.gradient_loop(objective, step_sizes, n_chains, n_steps, x0),
            "engine_noise_alone": references.engine_noise(simulate.noise.gaussian(1.0), n_chains, n_steps, dim),
        },
        repeats,
    )
    seconds = {name: t["median_s"] for name, t in timed.items()}
    chain_steps = n_step_sizes * n_chains * n_steps
    figures.update(
        {
            "simulate_run_s": seconds["simulate_run"],
            "simulate_run_chain_steps_per_s": chain_steps / seconds["simulate_run"],
            "numpy_loop_steps": numpy_steps,
            "numpy_loop_chain_steps_per_s": n_step_sizes * n_chains * numpy_steps / seconds["numpy_loop"],
            "numpy_loop_engine_noise_chain_steps_per_s": n_step_sizes * n_chains * numpy_steps / seconds["numpy_loop_engine_noise"],
            "gaussians_drawn": drawn,
            "jax_bulk_normal_s": seconds["jax_bulk_normal"],
            "numpy_bulk_normal_s": seconds["numpy_bulk_normal"],
            "jax_bulk_normal_per_chain_step_s": n_step_sizes * seconds["jax_bulk_normal"],
            "gradients_alone_s": seconds["gradients_alone"],
            "engine_noise_alone_s": seconds["engine_noise_alone"],
            "timings": timed,
        }
    )
    figures["speedup_vs_numpy_loop"] = figures["simulate_run_chain_steps_per_s"] / figures["numpy_loop_chain_steps_per_s"]
    figures["speedup_vs_numpy_loop_engine_noise"] = figures["simulate_run_chain_steps_per_s"] / figures["numpy_loop_engine_noise_chain_steps_per_s"]
    figures["fraction_of_bulk_noise_bound"] = seconds["jax_bulk_normal"] / seconds["simulate_run"]
    figures["fraction_of_bulk_noise_bound_per_chain_step"] = figures["jax_bulk_normal_per_chain_step_s"] / seconds["simulate_run"]
    return figures


def _dense_hessian(dim: int, seed: int = 0) -> np.ndarray:
    """A well-conditioned dense symmetric H = A A^T / dim + 0.1 I (eigenvalues about 0.1 to 4)."""
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def _row_major_quadratic(hessian: np.ndarray) -> objectives.Objective:
    """The same quadratic with its gradient written (x - c) H^T (see `dense_quadratic`)."""
    dim = hessian.shape[0]

    def value(params, x):
        h, c = params
        return 0.5 * (x - c) @ h @ (x - c)

    return objectives.Objective(
        dim=dim,
        value_fn=value,
        params=(np.asarray(hessian), np.zeros(dim)),
        grad_fn=lambda params, x: (x - params[1]) @ params[0].T,
        name="quadratic_row_major",
    )


def dense_quadratic(*, dim: int, step_sizes, n_chains: int, n_steps: int, repeats: int) -> dict:
    """Case 3: a dense quadratic against its matrix products alone (the matmul bound).

    Also timed: the same objective with its gradient written (x - c) H^T instead of H (x - c).
    Under `vmap` over chains and step sizes, JAX turns H y into a product with the batch on the
    right and a transpose, which XLA:CPU runs about 3x slower than one row-major product.
    """
    hessian = _dense_hessian(dim)
    f = objectives.quadratic(hessian, np.zeros(dim))
    step_sizes = np.asarray(step_sizes, np.float64)
    kwargs = dict(step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=np.ones(dim))
    run = lambda: simulate.run(f, **kwargs)
    figures = {"n_step_sizes": step_sizes.size, "n_chains": n_chains, "n_steps": n_steps, "dim": dim}
    figures.update(_first_call_and_sweep(run, lambda: simulate.run(f, **{**kwargs, "step_sizes": step_sizes * 0.9, "seed": 1})))
    row_major = _row_major_quadratic(hessian)
    timed = interleaved(
        {
            "simulate_run": run,
            "simulate_run_row_major_gradient": lambda: simulate.run(row_major, **kwargs),
            "matmul_bound": references.matmul_chain(dim, step_sizes.size * n_chains, n_steps),
            "jax_bulk_normal": references.jax_bulk_normal(n_chains * n_steps * dim),
            "engine_noise_alone": references.engine_noise(simulate.noise.gaussian(1.0), n_chains, n_steps, dim),
        },
        repeats,
    )
    seconds = {name: t["median_s"] for name, t in timed.items()}
    chain_steps = step_sizes.size * n_chains * n_steps
    figures.update(
        {
            "simulate_run_s": seconds["simulate_run"],
            "simulate_run_chain_steps_per_s": chain_steps / seconds["simulate_run"],
            "simulate_run_row_major_gradient_s": seconds["simulate_run_row_major_gradient"],
            "matmul_bound_s": seconds["matmul_bound"],
            "matmul_bound_gflops": 2 * chain_steps * dim * dim / seconds["matmul_bound"] / 1e9,
            "jax_bulk_normal_s": seconds["jax_bulk_normal"],
            "engine_noise_alone_s": seconds["engine_noise_alone"],
            "fraction_of_matmul_bound": seconds["matmul_bound"] / seconds["simulate_run"],
            "fraction_of_matmul_bound_row_major_gradient": seconds["matmul_bound"] / seconds["simulate_run_row_major_gradient"],
            "timings": timed,
        }
    )
    return figures


def builtin_objectives() -> dict:
    """name -> (objective, x0): every constructor of `objectives`, at typical arguments."""
    sharp_flat = objectives.sharp_flat()
    noise = simulate.noise.gaussian(objectives.SHARP_FLAT_NOISE_SCALE)
    return {
        "quadratic_scalar": (objectives.quadratic(2.0, [0.0, 0.0]), [1.0, 1.0]),
        "quadratic_diagonal": (objectives.quadratic([1.0, 3.0], [0.0, 1.0]), [1.0, 1.0]),
        "quadratic_dense": (objectives.quadratic([[2.0, 0.3], [0.3, 0.7]], [0.2, 0.1]), [1.0, -1.0]),
        "rippled_quadratic": (objectives.rippled_quadratic(), [0.0]),
        "gaussian_wells_2d": (objectives.gaussian_wells([1.0, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [0.3, 0.6], 0.1), [0.0, 0.0]),
        "sharp_flat": (sharp_flat, [-1.0]),
        "valley_2d": (objectives.valley_2d(), [0.5, 0.125]),
        "smoothed_sharp_flat": (objectives.smoothed(sharp_flat, noise, 0.1), [-1.0]),
        "penalized_sharp_flat": (objectives.penalized(sharp_flat, noise, 0.1), [-1.0]),
    }


def compile_times(*, n_chains: int, n_steps: int, names=None) -> dict:
    """First-call compile time of `simulate.run` for every built-in objective (or those `names`),
    and recompilations when a second call changes step sizes, seed and x0 (same shapes: there
    should be none)."""
    figures = {}
    for name, (f, x0) in builtin_objectives().items():
        if names is not None and name not in names:
            continue
        kwargs = dict(step_sizes=[0.01, 0.1], n_steps=n_steps, n_chains=n_chains, x0=x0)
        figures[name] = _first_call_and_sweep(
            lambda: simulate.run(f, **kwargs),
            lambda: simulate.run(f, **{**kwargs, "step_sizes": [0.02, 0.05], "seed": 3, "x0": np.asarray(x0) + 0.1}),
        )
    return figures


def stationary_law_times(*, n_grid_1d: int, n_step_sizes: int, n_grid_2d: int, repeats: int) -> dict:
    """Case 6: `theory.stationary_law` (issue 12). 1-D: `sharp_flat`, `n_step_sizes` step sizes
    in [0.01, 0.4] (both sides of its critical step size, metastable ones included) on
    `n_grid_1d` cells over [-7, 9]; 2-D: `gaussian_wells_2d` of `builtin_objectives`, one step
    size (0.3) on `n_grid_2d` x `n_grid_2d` cells. Each call includes the coarse grid (the
    discretization error), the Poisson equation and the spectral gap. First call (with compiles)
    and the median of `repeats` further calls."""
    noise = simulate.noise.gaussian(objectives.SHARP_FLAT_NOISE_SCALE)
    sharp_flat = objectives.sharp_flat()
    step_sizes = np.geomspace(0.01, 0.4, n_step_sizes)
    wells_2d, _ = builtin_objectives()["gaussian_wells_2d"]
    calls = {
        "one_d": lambda: theory.stationary_law(sharp_flat, noise, step_sizes, bounds=(-7.0, 9.0), n_grid=n_grid_1d),
        "two_d": lambda: theory.stationary_law(wells_2d, noise, [0.3], bounds=((-6.5, -6.5), (7.0, 7.0)), n_grid=n_grid_2d),
    }
    figures = {"n_grid_1d": n_grid_1d, "n_step_sizes": n_step_sizes, "n_grid_2d": n_grid_2d}
    for name, call in calls.items():
        start = time.perf_counter()
        law = call()
        figures[f"{name}_first_call_s"] = time.perf_counter() - start
        figures[f"{name}_methods"] = list(law.method)
        timed = interleaved({name: call}, repeats)[name] if repeats > 0 else {"median_s": figures[f"{name}_first_call_s"]}
        figures[f"{name}_s"] = timed["median_s"]
    return figures


def double_well_2d() -> objectives.Objective:
    """A user's 2-D study (issue 14): a sharp well near (-1, 0) and a wide one near (1.2, 0),
    written with `objectives.from_function` (no closed-form smoothing: F_eta by quadrature)."""

    def wells(x):
        sharp = jnp.exp(-4.0 * ((x[0] + 1.0) ** 2 + x[1] ** 2))
        wide = 0.8 * jnp.exp(-0.5 * ((x[0] - 1.2) ** 2 + 2.0 * x[1] ** 2))
        return 1.0 - sharp - wide + 0.01 * (x[0] ** 2 + x[1] ** 2)

    return objectives.from_function(wells, 2, name="double_well_2d")


def smoothed_solution_times(*, n_step_sizes: int, n_chains: int, n_steps: int) -> dict:
    """Case 7: `analysis.smoothed_solution` (v*(eta) for every step size: grid search and Newton
    on F_eta by Gauss-Hermite quadrature) for `double_well_2d` under anisotropic Gaussian noise,
    beside `simulate.run` of the same setting (`n_chains` x `n_steps`, the same step sizes).
    Each: the first call (compiles included) and a second call with new step sizes of the same
    shapes (recompilations counted: there should be none)."""
    f = double_well_2d()
    noise = simulate.noise.gaussian(covariance=[[1.0, 0.3], [0.3, 0.5]])
    step_sizes = np.geomspace(0.02, 0.3, n_step_sizes)
    solve = lambda eta: analysis.smoothed_solution(f, noise, eta, bounds=(-3.0, 3.0))  # noqa: E731
    simulate_at = lambda eta: simulate.run(f, step_sizes=eta, n_steps=n_steps, n_chains=n_chains, x0=[1.0, 0.0], noise=noise)  # noqa: E731
    figures = {"n_step_sizes": n_step_sizes, "n_chains": n_chains, "n_steps": n_steps}
    for name, call in (("smoothed_solution", solve), ("simulate_run", simulate_at)):
        figures.update({f"{name}_{key}": value for key, value in _first_call_and_sweep(lambda: call(step_sizes), lambda: call(step_sizes * 1.1)).items()})
        start = time.perf_counter()
        call(step_sizes * 1.2)
        figures[f"{name}_second_call_s"] = time.perf_counter() - start
    return figures


def minibatch_paths(*, n_examples: int, dim: int, batch_size: int, n_chains: int, n_steps: int, repeats: int) -> dict:
    """Case 8: the general path (minibatches, SAM, EMA; issue 13). A `dim`-D least-squares
    problem on `n_examples` examples, 4 step sizes x `n_chains` chains x `n_steps` steps:
    additive-noise SGD + EMA and SAM, minibatch SGD, SGD + EMA and SAM (without replacement,
    `batch_size` examples), minibatch SGD with replacement, and the minibatch index draw alone
    (`minibatch_block`, one 64-step block of every chain). Medians of `repeats` after a warm-up."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n_examples, dim)).astype(np.float32)
    targets = (features @ np.ones(dim) + rng.standard_normal(n_examples)).astype(np.float32)
    f = objectives.least_squares(features, targets)
    common = dict(step_sizes=[0.01, 0.02, 0.05, 0.1], n_steps=n_steps, n_chains=n_chains, x0=np.zeros(dim))
    additive = simulate.noise.gaussian(1.0)
    without, with_replacement = simulate.noise.minibatch(batch_size), simulate.noise.minibatch(batch_size, replace=True)
    chains = jnp.arange(n_chains, dtype=jnp.uint32)
    draw = {
        replace: jax.jit(lambda block, noise=noise: minibatch_block(noise, jnp.uint32(0), chains, block, n_examples))
        for replace, noise in ((False, without), (True, with_replacement))
    }
    runs = {
        "additive_sgd_ema": lambda: simulate.run(f, noise=additive, ema_decay=0.9, **common),
        "additive_sam": lambda: simulate.run(f, noise=additive, algorithm=simulate.sam(0.05), **common),
        "minibatch_sgd": lambda: simulate.run(f, noise=without, **common),
        "minibatch_sgd_ema": lambda: simulate.run(f, noise=without, ema_decay=0.9, **common),
        "minibatch_sam": lambda: simulate.run(f, noise=without, algorithm=simulate.sam(0.05), **common),
        "minibatch_sgd_with_replacement": lambda: simulate.run(f, noise=with_replacement, **common),
        "indices_without_replacement": lambda: draw[False](jnp.int32(1)),
        "indices_with_replacement": lambda: draw[True](jnp.int32(1)),
    }
    timed = interleaved(runs, repeats)
    figures = {"n_examples": n_examples, "dim": dim, "batch_size": batch_size, "n_step_sizes": 4, "n_chains": n_chains, "n_steps": n_steps}
    figures.update({f"{name}_s": t["median_s"] for name, t in timed.items()})
    figures["timings"] = timed
    return figures


def finite_time_law_times(*, n_grid: int, n_chains: int, n_steps: int, n_grid_2d: int, step_sizes_2d) -> dict:
    """Case 9: `theory.finite_time_law` (issue 22). 1-D: the built-in `sharp_flat_tradeoff`
    (step sizes 0.01-0.4, x0 = -1 in the sharp well, its box [-7, 9] on `n_grid` cells, 10
    log-spaced checkpoints up to `n_steps`): one call on `n_grid` cells at every step size, then
    twice with `coarsen=True` (what `asgd run` uses; the second call compiled), beside `simulate.run` of the same setting
    with `n_chains` chains in float32 (the experiment's run, the second call: compiled). 2-D:
    `theory.stationary_law` on `double_well_2d` at `step_sizes_2d` (the issue's user study: 8 in
    [0.01, 0.3]), bounds (-6, 7), `n_grid_2d` cells per axis; a refusal is recorded, not raised."""
    noise = simulate.noise.gaussian(1.0)
    f = objectives.sharp_flat()
    step_sizes = np.array([0.01, 0.02, 0.04, 0.1, 0.2, 0.4])
    checkpoints = simulate.checkpoint_schedule(n_steps, 10).tolist()
    figures = {"n_grid": n_grid, "n_chains": n_chains, "n_steps": n_steps, "n_grid_2d": n_grid_2d, "step_sizes_2d": list(map(float, step_sizes_2d))}
    for name, coarsen in (("finite_time_law", False), ("finite_time_law_coarsen", True), ("finite_time_law_coarsen_again", True)):
        start = time.perf_counter()  # the first call compiles (theory.cell_steps); the third runs compiled
        law = theory.finite_time_law(f, noise, step_sizes, x0=np.array([-1.0]), n_steps=checkpoints, bounds=(-7.0, 9.0), n_grid=n_grid, coarsen=coarsen)
        figures[f"{name}_s"] = time.perf_counter() - start
        figures[f"{name}_switch_step"] = law.switch_step.tolist()
    figures["switch_step"] = figures["finite_time_law_switch_step"]

    def run():
        return simulate.run(f, step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=[-1.0], noise=noise, checkpoints=10)

    run()
    start = time.perf_counter()
    run()
    figures["simulation_s"] = time.perf_counter() - start
    figures["law_over_simulation"] = figures["finite_time_law_s"] / figures["simulation_s"]
    figures["coarsened_law_over_simulation"] = figures["finite_time_law_coarsen_s"] / figures["simulation_s"]
    start = time.perf_counter()
    try:
        wells = theory.stationary_law(double_well_2d(), noise, np.asarray(step_sizes_2d, float), bounds=(-6.0, 7.0), n_grid=n_grid_2d)
        figures["two_d_methods"] = list(wells.method)
    except ValueError as error:
        figures["two_d_refused"] = str(error)
    figures["two_d_stationary_law_s"] = time.perf_counter() - start
    return figures
