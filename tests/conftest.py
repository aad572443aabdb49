"""Test configuration: strict JAX numerics, a shared compilation cache, a --run-slow flag for
full-size checks, and the shared fixtures (`asgd`: the command line in a subprocess;
`small_config`: the sharp_flat base config with a test's overrides; both from tests/support.py)."""

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
import pytest  # noqa: E402

import support  # noqa: E402

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


@pytest.fixture(scope="session")
def asgd():
    """`asgd(*args, cwd=None, timeout=300, env=None, popen=False)`: the command line in a subprocess."""
    return support.asgd


@pytest.fixture
def x64():
    """JAX in float64 for the test (`jax.enable_x64`); a module asks for it with
    `pytestmark = pytest.mark.usefixtures("x64")`."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def small_config(tmp_path):
    """`small_config(name="small.toml", base=support.SHARP_FLAT, **tables)`: a config written
    under this test's tmp_path from the base with `tables` merged in (see `support.config`)."""
    return lambda name="small.toml", base=support.SHARP_FLAT, **tables: support.write_config(tmp_path / name, base, **tables)
