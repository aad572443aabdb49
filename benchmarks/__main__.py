"""Speed and memory of `simulate.run` against references measured in the same process.

    python -m benchmarks [--quick] [--out benchmarks/out/bench.json]      (make bench)

Each figure is the median of several repetitions after a warm-up; compile time is reported
separately. Cases (issue 7):

1. 1-D sharp_flat, Gaussian noise, 16,384 chains x 10,000 steps x 8 step sizes: chain-steps/s of
   simulate.run vs a vectorized NumPy loop (all chains in one array, a Python loop over steps)
   and vs the bulk-noise bound (one jax.random.normal call drawing the same Gaussians).
2. 2-D valley_2d, same shape.
3. dense 100-D quadratic, 1,024 chains: vs the matmul bound (the same batched products alone).
4. peak resident memory at 10^3 and 10^5 steps (separate processes).
5. first-call compile time for every built-in objective.

Not a test: nothing fails because the machine is slow.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import objectives
import simulate


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _numpy_sharp_flat_loop(n_chains: int, n_steps: int, step_sizes: np.ndarray) -> None:
    """The same SGD update written as plain vectorized NumPy (float32, one array for all chains)."""
    rng = np.random.default_rng(0)
    depths, centers, widths, confinement = np.array([1.0, 0.9]), np.array([-1.0, 1.0]), np.array([0.15, 0.6]), 0.1
    eta = step_sizes.astype(np.float32)[:, None]
    x = np.full((step_sizes.size, n_chains), -1.0, np.float32)
    total = np.zeros_like(x)

    def grad(y):
        d = y[..., None] - centers
        return np.sum(depths * d / widths**2 * np.exp(-0.5 * d**2 / widths**2), axis=-1) + confinement * y

    g = grad(x)
    for _ in range(n_steps):
        eps = rng.standard_normal(n_chains, dtype=np.float32)
        x = x - eta * (g + eps)
        g = grad(x)
        total += x


def case_throughput(objective, dim, n_chains, n_steps, step_sizes, repeats, numpy_steps):
    kwargs = dict(step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=np.full(dim, -1.0) if dim == 1 else [-1.5, 1.125], checkpoints=4)
    start = time.perf_counter()
    simulate.run(objective, **kwargs)
    first = time.perf_counter() - start
    seconds = _median_time(lambda: simulate.run(objective, seed=1, **kwargs), repeats)
    chain_steps = step_sizes.size * n_chains * n_steps
    out = {
        "chain_steps": chain_steps,
        "simulate_run_s": seconds,
        "compile_s": max(first - seconds, 0.0),
        "simulate_run_chain_steps_per_s": chain_steps / seconds,
    }
    # Bulk-noise bounds: the Gaussians the engine draws (shared by the step sizes: C*T*d), drawn
    # with one jax.random.normal call; and one per chain-step (S*C*T*d), S times that (drawing
    # them at once does not fit in memory at full size).
    draw = jax.jit(lambda key: jax.random.normal(key, (n_chains * n_steps * dim,)))
    t = _median_time(lambda: draw(jax.random.key(2)).block_until_ready(), repeats)
    out["jax_bulk_noise_drawn_s"] = t
    out["fraction_of_bound_drawn"] = t / seconds
    out["jax_bulk_noise_per_chain_step_s"] = step_sizes.size * t
    out["fraction_of_bound_per_chain_step"] = step_sizes.size * t / seconds
    rng = np.random.default_rng(0)
    out["numpy_bulk_noise_drawn_s"] = _median_time(lambda: rng.standard_normal(n_chains * n_steps * dim, dtype=np.float32), repeats)
    if numpy_steps and dim == 1:
        t = _median_time(lambda: _numpy_sharp_flat_loop(n_chains, numpy_steps, step_sizes), max(1, repeats // 2))
        out["numpy_loop_chain_steps_per_s"] = step_sizes.size * n_chains * numpy_steps / t
        out["speedup_vs_numpy_loop"] = out["simulate_run_chain_steps_per_s"] / out["numpy_loop_chain_steps_per_s"]
    return out


def case_dense(n_chains, n_steps, repeats, dim=100):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    hessian = a @ a.T + 0.1 * np.eye(dim)
    f = objectives.quadratic(hessian, np.zeros(dim))
    kwargs = dict(step_sizes=[0.1], n_steps=n_steps, n_chains=n_chains, x0=np.ones(dim), checkpoints=4)
    seconds = _median_time(lambda: simulate.run(f, **kwargs), repeats)
    h = jnp.asarray(hessian, jnp.float32)

    @jax.jit
    def matmuls(x):
        return jax.lax.scan(lambda y, _: (y - 0.1 * y @ h, None), x, None, length=n_steps)[0]

    x0 = jnp.ones((n_chains, dim), jnp.float32)
    bound = _median_time(lambda: matmuls(x0).block_until_ready(), repeats)
    return {"simulate_run_s": seconds, "matmul_bound_s": bound, "fraction_of_bound": bound / seconds,
            "chain_steps_per_s": n_chains * n_steps / seconds}


MEMORY_SCRIPT = """
import resource, sys, numpy as np, objectives, simulate
f = objectives.sharp_flat()
simulate.run(f, step_sizes=np.linspace(0.01, 0.4, 8), n_steps=int(sys.argv[1]), n_chains=16384, x0=[-1.0])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def case_memory(steps_list):
    out = {}
    for n_steps in steps_list:
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n_steps)], capture_output=True, text=True, check=True)
        out[f"peak_rss_mib_{n_steps}_steps"] = int(done.stdout.strip().splitlines()[-1]) / 1024
    values = list(out.values())
    out["ratio_long_to_short"] = values[-1] / values[0]
    return out


def case_compile():
    out = {}
    for name, f, x0 in (
        ("quadratic", objectives.quadratic([1.0, 2.0], [0.0, 0.0]), [1.0, 1.0]),
        ("rippled_quadratic", objectives.rippled_quadratic(), [0.0]),
        ("gaussian_wells", objectives.gaussian_wells([1.0, 0.5], [[-1.0], [1.0]], [0.3, 0.5]), [0.0]),
        ("sharp_flat", objectives.sharp_flat(), [-1.0]),
        ("valley_2d", objectives.valley_2d(), [-1.5, 1.125]),
    ):
        kwargs = dict(step_sizes=[0.01, 0.1], n_steps=1000, n_chains=256, x0=x0)
        start = time.perf_counter()
        simulate.run(f, **kwargs)
        first = time.perf_counter() - start
        start = time.perf_counter()
        simulate.run(f, seed=1, **kwargs)
        out[name] = first - (time.perf_counter() - start)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds): a smoke run, not figures to report")
    parser.add_argument("--out", default="benchmarks/out/bench.json")
    args = parser.parse_args(argv)
    if args.quick:
        chains, steps, repeats, numpy_steps, dense, memory_steps = 1024, 500, 2, 100, (128, 200), (100, 1000)
    else:
        chains, steps, repeats, numpy_steps, dense, memory_steps = 16_384, 10_000, 3, 500, (1024, 10_000), (1000, 100_000)
    step_sizes = np.geomspace(0.01, 0.4, 8)
    cases = {
        "machine": lambda: {"backend": jax.default_backend(), "devices": jax.device_count(), "jax": jax.__version__, "quick": args.quick},
        "case1_sharp_flat_1d": lambda: case_throughput(objectives.sharp_flat(), 1, chains, steps, step_sizes, repeats, numpy_steps),
        "case2_valley_2d": lambda: case_throughput(objectives.valley_2d(), 2, chains, steps, np.geomspace(0.005, 0.05, 8), repeats, 0),
        "case3_dense_100d_quadratic": lambda: case_dense(*dense, repeats),
        "case4_memory": lambda: case_memory(memory_steps),
        "case5_compile_s": case_compile,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = {}
    for case, measure in cases.items():
        figures[case] = measure()
        print(case, flush=True)
        for key, value in figures[case].items():
            print(f"  {key:40s} {value:.4g}" if isinstance(value, float) else f"  {key:40s} {value}", flush=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")  # what is measured so far is kept
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
