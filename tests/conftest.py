"""Test configuration: strict JAX numerics, and a --run-slow flag for full-size checks."""

import jax
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
