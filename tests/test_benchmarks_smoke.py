"""`python -m benchmarks --quick` runs and writes the figures it promises (their values are not checked:
benchmarks are not timed tests)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import objectives
import simulate
from benchmarks import references

ROOT = Path(__file__).resolve().parents[1]

THROUGHPUT_KEYS = {
    "simulate_run_s",
    "simulate_run_chain_steps_per_s",
    "compile_s",
    "recompilations_new_sweep_point",
    "numpy_loop_chain_steps_per_s",
    "speedup_vs_numpy_loop",
    "numpy_loop_engine_noise_chain_steps_per_s",
    "speedup_vs_numpy_loop_engine_noise",
    "gaussians_drawn",
    "jax_bulk_normal_s",
    "numpy_bulk_normal_s",
    "fraction_of_bulk_noise_bound",
    "fraction_of_bulk_noise_bound_per_chain_step",
}
DENSE_KEYS = {"simulate_run_s", "matmul_bound_s", "fraction_of_matmul_bound", "compile_s"}
TARGETS = {"case1_vs_numpy_loop", "case1_vs_bulk_noise", "case3_vs_matmul", "case4_memory", "compile_once", "compile_time"}


def test_quick_benchmark_writes_every_case_and_target(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "targets" in done.stdout
    figures = json.loads(out.read_text())

    for case in ("case1_sharp_flat", "case2_valley_2d"):
        assert THROUGHPUT_KEYS <= figures[case].keys(), THROUGHPUT_KEYS - figures[case].keys()
        assert figures[case]["gaussians_drawn"] == figures[case]["n_chains"] * figures[case]["n_steps"] * figures[case]["dim"]
    assert DENSE_KEYS <= figures["case3_dense_quadratic"].keys()
    memory = figures["case4_memory"]
    assert memory["short"]["n_steps"] < memory["long"]["n_steps"]
    assert memory["short"]["peak_resident_mib"] > 0 and math.isfinite(memory["peak_ratio"])
    assert figures["case5_compile"] and all("compile_s" in c for c in figures["case5_compile"].values())
    assert TARGETS == figures["targets"].keys()
    assert all(isinstance(t["met"], bool) for t in figures["targets"].values())
    assert figures["machine"]["mode"] == "quick"


def test_stricter_numpy_loop_draws_the_engines_noise_and_matches_its_average():
    # `numpy_loop_engine_noise` claims the engine's common random numbers: its average of x must
    # equal simulate.run's x_avg up to float rounding (3 noise blocks, the last one partial),
    # while the plain NumPy loop, with its own generator, is far from it.
    f, step_sizes, x0 = objectives.sharp_flat(), [0.01, 0.05], [-1.0]
    engine = simulate.run(f, step_sizes=step_sizes, n_steps=150, n_chains=32, x0=x0, seed=3).x_avg
    strict = references.numpy_loop_engine_noise(f, step_sizes, 32, 150, x0, seed=3)()
    plain = references.numpy_loop(f, step_sizes, 32, 150, x0, seed=3)
    assert strict.shape == engine.shape == (2, 32, 1)
    np.testing.assert_allclose(strict, engine, rtol=0, atol=2e-5)
    assert np.max(np.abs(plain - engine)) > 100 * 2e-5
