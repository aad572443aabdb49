"""Test configuration: strict JAX numerics, a shared compilation cache, and a --run-slow flag for
full-size checks."""

import os
import pathlib

# Many tests, notebooks and CLI subprocesses compile the same programs (the engine's block loop
# for sharp_flat, the minimizer search...). JAX's persistent compilation cache lets every process
# of a run (pytest-xdist workers, subprocesses, which inherit the environment) reuse them: in a
# fresh process a cached sharp_flat run took 0.6 s instead of 1.8 s. Set before JAX is imported,
# because JAX reads these variables when it defines its options. Results are unchanged: a hit
# loads the very executable a compile would have produced.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402
import pytest

# Catch dtype and shape slips early: no implicit float32 -> float64 promotion between arrays,
# no implicit rank broadcasting.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run full-size (slow) checks")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full-size check: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
