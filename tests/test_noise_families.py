"""One object per noise family (`objectives.noise_families`): its law is what it says (draws,
density, tails agree), the table is found from the files, a family added in one file runs in
the simulator, in smoothing and in the exact law, and no code outside the family objects compares
family names."""

import math
import pathlib
import re
import textwrap

import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.special

import objectives
import simulate
import theory
from objectives import noise_families

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_table_lists_every_family_in_rank_order_and_each_constructor_builds_its_own():
    assert noise_families.FAMILIES == ("gaussian", "rademacher", "uniform", "student_t")
    for name, family in noise_families.TABLE.items():
        model = family.constructor()
        assert model.family == name and model.standard_law is family
    with pytest.raises(ValueError, match="unknown noise family 'laplace'"):
        noise_families.family_named("laplace")


@pytest.mark.parametrize("name", ["gaussian", "uniform", "student_t"])
def test_density_integrates_to_the_upper_tail_and_has_unit_variance(name):
    family, df = noise_families.TABLE[name], 5.0
    density = lambda z: float(family.density(np.float64(z), df, np))  # noqa: E731
    points = [-math.sqrt(3.0), math.sqrt(3.0)] if name == "uniform" else None
    for z in (-2.0, -0.3, 0.0, 0.7, 1.5, 4.0):
        tail, _ = scipy.integrate.quad(density, z, np.inf if name != "uniform" else 2.0, points=[p for p in points or [] if p > z] or None)
        got = float(family.upper_tail(np.float64(z), df, np, scipy.special))
        assert got == pytest.approx(tail, rel=1e-7, abs=1e-12), (name, z)
    bound = 2.0 if name == "uniform" else np.inf
    variance, _ = scipy.integrate.quad(lambda z: z * z * density(z), -bound, bound, points=points)
    assert variance == pytest.approx(1.0, rel=1e-7)


@pytest.mark.parametrize("name", list(noise_families.FAMILIES))
def test_standard_draws_match_the_law_within_4_5_standard_errors(name):
    family, df, n = noise_families.TABLE[name], 5.0, 200_000
    z = np.asarray(family.standard(jax.random, jax.random.key(7), (n,), np.float32, np.float32(df)), np.float64)
    assert abs(z.mean()) < 4.5 * math.sqrt(1.0 / n)
    assert abs((z * z).mean() - 1.0) <= 4.5 * (z * z).std() / math.sqrt(n)
    if family.atoms is not None:
        assert set(np.unique(z).tolist()) == set(family.atoms)
        return
    for threshold in (0.5, 1.5):
        p = float(family.upper_tail(np.float64(threshold), df, np, scipy.special))
        assert abs((z > threshold).mean() - p) < 4.5 * math.sqrt(p * (1 - p) / n), (name, threshold)


LAPLACE = '''
"""Laplace noise (a test family): density exp(-sqrt(2)|z|)/sqrt(2), unit variance."""
import math

import numpy as np

from objectives.noise_families.base import NoiseFamily, NoiseModel, check_scale


class Laplace(NoiseFamily):
    threefry_bulk = False

    def standard(self, random, key, shape, dtype, df):
        return random.laplace(key, shape, dtype) / math.sqrt(2.0)

    def density(self, z, df, xp=np):
        return xp.exp(-math.sqrt(2.0) * xp.abs(z)) / math.sqrt(2.0)

    def upper_tail(self, z, df, xp=np, special=None):
        half = 0.5 * xp.exp(-math.sqrt(2.0) * xp.abs(z))
        return xp.where(z >= 0, half, 1.0 - half)


def laplace(scale=1.0):
    return NoiseModel("laplace", scale=check_scale(scale))


FAMILY = Laplace("laplace", rank=4, constructor=laplace)
'''


def test_a_family_added_in_one_file_runs_in_the_simulator_smoothing_and_the_exact_law(tmp_path, monkeypatch):
    (tmp_path / "laplace.py").write_text(textwrap.dedent(LAPLACE))
    monkeypatch.setattr(noise_families, "__path__", list(noise_families.__path__) + [str(tmp_path)])
    monkeypatch.syspath_prepend(str(tmp_path.parent))
    import importlib.util

    spec = importlib.util.spec_from_file_location("objectives.noise_families.laplace", tmp_path / "laplace.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, "objectives.noise_families.laplace", module)
    spec.loader.exec_module(module)
    table = noise_families._discover()
    assert list(table) == ["gaussian", "rademacher", "uniform", "student_t", "laplace"]
    monkeypatch.setitem(noise_families.TABLE, "laplace", table["laplace"])

    noise = module.laplace(0.5)
    f = objectives.quadratic(np.eye(1))
    result = simulate.run(f, step_sizes=[0.5], n_steps=4000, n_chains=64, x0=[0.0], noise=noise, seed=1)
    # SGD on x^2/2: the stationary variance of x is eta s^2 / (2 - eta) = 1/12 for any law of eps.
    tail = result.checkpoints["x"][-1, 0, :, 0]
    assert abs(np.mean(tail**2) - 0.5 * 0.25 / 1.5) < 4.5 * np.std(tail**2) / math.sqrt(tail.size)
    smoothed = objectives.smoothed(f, noise, 1.0)  # no rule: Monte Carlo; E (x - eps)^2 / 2 = (x^2 + s^2) / 2
    assert dict(smoothed.info)["method"] == "monte_carlo"
    value, error = float(smoothed.value(np.array([0.3]))), float(objectives.smoothing.standard_error(smoothed, np.array([0.3])))
    assert abs(value - 0.5 * (0.09 + 0.25)) < 4.5 * error
    law = theory.stationary_law(f, noise, [0.5], bounds=(-3.0, 3.0), n_grid=601)  # cells of h = 0.01
    assert law.covariance[0, 0, 0] == pytest.approx(0.5 * 0.25 / 1.5, abs=law.grid.widths[0] ** 2)


#: A family name compared as a string: `== "gaussian"`, `!= 'uniform'`, `in ("rademacher", ...`.
_COMPARISON = re.compile(r"""(==|!=|\bin)\s*[(\[{]?\s*["'](gaussian|rademacher|uniform|student_t)["']""")


def test_no_code_outside_the_family_objects_compares_family_names():
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", ".venv", "build") or relative.parts[:2] == ("objectives", "noise_families"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _COMPARISON.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "ask the family object (noise.standard_law) instead:\n" + "\n".join(offenders)


def test_the_2d_leak_of_an_atomic_law_is_the_mass_of_the_atoms_outside_the_box():
    import itertools

    import jax

    from theory import grid as cells
    from theory.kernel_2d import Operator2D

    grid = cells.make_grid([-1.0, -1.0], [1.0, 1.0], 20)
    noise, eta = simulate.noise.rademacher(1.0), 0.45
    with jax.enable_x64(True):
        leak = np.asarray(Operator2D(grid, np.zeros((grid.size, 2)), cells.noise_law(noise, 2), eta).leak)
    # Every one of the 4 equally likely sign vectors, moved from each centre: the share outside.
    outside = np.zeros(grid.size)
    for signs in itertools.product((-1.0, 1.0), repeat=2):
        landed = grid.points + eta * np.array(signs)
        outside += 0.25 * np.any((landed < -1.0) | (landed > 1.0), axis=1)
    np.testing.assert_allclose(leak, outside, atol=1e-12)
    assert {0.0, 0.5, 0.75} <= set(np.round(outside, 12))
