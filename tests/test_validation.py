"""objectives.validation: each check returns the canonical value or names argument, value and rule."""

import jax.numpy as jnp
import numpy as np
import pytest

from objectives import validation as check


@pytest.mark.parametrize("value", [0, -3, True, 1.0, "2", None])
def test_positive_int_rejects_with_name_value_and_rule(value):
    with pytest.raises(ValueError, match=rf"n_steps must be an integer >= 1, got {value!r}"):
        check.positive_int("n_steps", value)


def test_integer_checks_return_python_ints():
    assert check.positive_int("n", np.int64(3)) == 3 and type(check.positive_int("n", np.int64(3))) is int
    assert check.non_negative_int("bootstrap", 0) == 0
    assert check.integer("k", 5, lo=2, hi=5) == 5
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 4\] \(why\), got 5"):
        check.integer("k", 5, lo=2, hi=4, note="why")
    assert check.seed("seed", 2**32 - 1) == 2**32 - 1
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\), got 4294967296"):
        check.seed("seed", 2**32)


def test_real_checks_bounds_and_finiteness():
    assert check.finite_float("x", np.float32(1.5)) == 1.5
    assert check.non_negative_float("scale", 0) == 0.0
    with pytest.raises(ValueError, match="scale must be a finite number >= 0, got -1"):
        check.non_negative_float("scale", -1)
    with pytest.raises(ValueError, match="df must be a finite number > 0, got 0"):
        check.positive_float("df", 0)
    with pytest.raises(ValueError, match="x must be a finite number, got inf"):
        check.finite_float("x", float("inf"))
    with pytest.raises(ValueError, match="x must be a finite number, got True"):
        check.finite_float("x", True)
    assert check.real("x", float("inf"), finite=False) == float("inf")


def test_probability_closed_and_open():
    assert check.probability("p", 1.0) == 1.0
    with pytest.raises(ValueError, match=r"p must be a number in \(0, 1\), got 1.0"):
        check.probability("p", 1.0, closed=False)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\], got nan"):
        check.probability("p", float("nan"))


def test_step_sizes_vector_and_rule():
    np.testing.assert_array_equal(check.step_sizes("step_sizes", 0.1), [0.1])
    np.testing.assert_array_equal(check.step_sizes("step_size", [0, 0.2], allow_zero=True), [0, 0.2])
    with pytest.raises(ValueError, match=r"step_sizes must be finite and > 0, got \[0.0\] in \[0.1, 0.0\]"):
        check.step_sizes("step_sizes", [0.1, 0.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        check.step_sizes("step_sizes", [])


def test_finite_array_shape_and_values():
    assert check.finite_array("x0", [1, 2], shape=(2,)).dtype == np.float64
    with pytest.raises(ValueError, match=r"x0 must have shape \(3,\), got shape \(2,\)"):
        check.finite_array("x0", [1, 2], shape=(3,))
    with pytest.raises(ValueError, match="target must be finite"):
        check.finite_array("target", [1, np.nan])


def test_psd_matrix_symmetry_and_eigenvalues():
    a = np.random.default_rng(0).normal(size=(4, 3))
    check.psd_matrix("covariance", a @ a.T)  # rank 3: semi-definite passes
    with pytest.raises(ValueError, match="covariance must be symmetric"):
        check.psd_matrix("covariance", [[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="hessian must be positive semi-definite, got smallest eigenvalue -1"):
        check.psd_matrix("hessian", np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="covariance must be a 3x3 matrix, got shape"):
        check.psd_matrix("covariance", np.eye(2), dim=3)


def test_one_of_and_float_dtype():
    assert check.one_of("method", "exact", ("exact", "simulate")) == "exact"
    with pytest.raises(ValueError, match=r"method must be one of \['exact', 'simulate'\], got 'x'"):
        check.one_of("method", "x", ("exact", "simulate"))
    with pytest.raises(ValueError, match=r"key must be one of"):
        check.one_of("key", [1], {"a"})
    assert check.float_dtype("dtype", "float32") == jnp.float32
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got 'int32'"):
        check.float_dtype("dtype", "int32")


def test_points_broadcasts_one_point_or_takes_one_per_row():
    assert check.points("x0", [1.0, 2.0], 3, 2).shape == (3, 2)
    np.testing.assert_array_equal(check.points("x0", np.ones((3, 2)), 3, 2), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\) \(one point for all\) or \(n_chains, dim\) = \(3, 2\)"):
        check.points("x0", np.ones((5, 2)), 3, 2, rows="n_chains")
    with pytest.raises(ValueError, match="x0 must be finite"):
        check.points("x0", [np.nan, 0.0], 3, 2)


def test_dimension_float_array_and_per_coordinate():
    assert check.dimension("dim", 2) == 2
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        check.dimension("dim", 0)
    with pytest.raises(ValueError, match=r"depths must be a vector, got shape \(2, 2\)"):
        check.float_array("depths", np.ones((2, 2)), ndim=(1,), allowed="a vector")
    np.testing.assert_array_equal(check.per_coordinate("curvature", 2.0, 3, positive=True), [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="curvature must be positive"):
        check.per_coordinate("curvature", [1.0, 0.0], 2, positive=True)
    with pytest.raises(ValueError, match="has shape"):
        check.per_coordinate("center", [1.0, 0.0], 3)
