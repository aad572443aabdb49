"""The law at a user's settings: a default box that holds it, and heavy tails the box would truncate."""

import math

import numpy as np
import pytest
import scipy.stats

import objectives
import simulate
import theory
from theory.law_checks import MAX_LOST_VARIANCE, lost_variance


def test_the_default_box_grows_until_it_holds_the_law_on_sharp_flat():
    # The minima's box [-1.6, 3.4] cut off 1e-5 of mass per step at eta = 0.3; the default must work.
    law = theory.stationary_law(objectives.sharp_flat(), simulate.noise.gaussian(1.0), [0.1, 0.2, 0.3], n_grid=601)
    assert np.all(law.out_of_box <= 1e-6)
    assert law.grid.lower[0] < -1.6 and law.grid.upper[0] > 3.4
    with pytest.raises(ValueError, match="bounds="):  # a box the user gives is never changed
        theory.stationary_law(objectives.sharp_flat(), simulate.noise.gaussian(1.0), [0.3], bounds=(-1.6, 3.4), n_grid=601)


@pytest.mark.parametrize(("df", "reach"), [(2.5, 3.0), (3.0, 2.5), (6.0, 10.0)])
def test_lost_variance_is_the_tail_second_moment(df, reach):
    c = math.sqrt((df - 2) / df)
    tail = 2 * scipy.stats.t(df).expect(lambda x: (c * x) ** 2, lb=reach / c)
    assert lost_variance(df, reach) == pytest.approx(tail, rel=1e-6, abs=1e-10)


def test_student_t_near_two_degrees_of_freedom_is_refused_naming_the_step_sizes():
    # Measured before: mse 8.5e-5 where the floor is 0.0625 (the box kept 0.07% of the variance).
    f = objectives.quadratic(2.0, [0.3])
    with pytest.raises(ValueError, match=r"noise: Student-t with df = 2\.0001.*step sizes \[0\.2\]"):
        theory.stationary_law(f, simulate.noise.student_t(1.0, df=2.0001), [0.2], bounds=(-2.6, 3.1), n_grid=401)
    law = theory.stationary_law(f, simulate.noise.student_t(1.0, df=6.0), [0.2], bounds=(-4.0, 4.6), n_grid=401)
    assert lost_variance(6.0, 3.7 / 0.2) < MAX_LOST_VARIANCE and law.covariance[0, 0, 0] > 0
