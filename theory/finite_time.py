"""The law of SGD's estimators at a run's own horizons and start: `finite_time_law` -> `FiniteTimeLaw`.

A run starts at x0 (or from a law mu_0) and stops at T. On the cell chain P of
`theory.kernel_1d` / `theory.kernel_2d` (for noise that depends on x, `theory.state_dependent`'s
mixture matrix: `theory.cell_products.cell_kernels` chooses; rows sum to 1) the law of x_k is mu_k = mu_0 P^k, and for g = x or v
(v = x - eta grad f(x), per coordinate) the sums S_T = sum_{k=s..T} g(x_k) of the estimators
(`x_avg`, `v_avg`: s = 1; `x_tail`: s = T - m + 1, m = ceil(tail_fraction T), the convention of
`simulate.run`) have exact first and second moments from forward accumulators, vectors over cells:

    p_k = mu_k,    r_k = E[S_k 1{x_k = .}],    s_k^{ab} = E[S_k^a S_k^b 1{x_k = .}],

    p_{k+1} = p_k P,   r_{k+1} = r_k P + g p_{k+1},
    s_{k+1}^{ab} = s_k^{ab} P + g_a (r_k^b P) + g_b (r_k^a P) + g_a g_b p_{k+1},

so E S_T = sum_i r_T(i) and E S_T^a S_T^b = sum_i s_T^{ab}(i): O(1) vectors per coordinate pair,
one product with P per step (never a power of P as a matrix). `theory.cell_steps` runs the steps
between two events (a horizon, the start of a tail, a switch check) in one compiled loop, in 1-D
on a window around the law's support (the mass it drops is summed and bounded). g is centred at a constant c first
(E_pi g where known), which keeps the covariance free of cancellation.

Beyond many relaxation times: the expansion. With u = Z (g - pi g) the Poisson solution
((I - P) u = g - pi g, pi u = 0; Z the fundamental matrix) the centred sum splits into martingale
increments M_k = u(x_k) - Pu(x_{k-1}) and a boundary term (Meyn and Tweedie 2009, ch. 17):

    sum_{k=1..L} (g - pi g)(x_k) = sum_k M_k + Pu(x_0) - Pu(x_L).

Started from a law nu close to pi, after many relaxation times (nu P^L ~ pi, P^L u ~ 0):

    E[R]        = nu Pu,                           (E x_avg_T = E_pi x + mu_0 (Z - I) g / T from x0)
    E[R^a R^b]  = L pi phi^{ab} + nu(Pu_a Pu_b) + pi(Pu_a Pu_b) - C^{ab} - C^{ba},

with phi^{ab} = P(u_a u_b) - Pu_a Pu_b (pi phi = lim T Cov(x_avg_T) T: the asymptotic
covariance), C^{ab} = pi[u_a w_b] - pi[Pu_a Pw_b] and w_b = (Z - I) u_b (a second Poisson solve).
The exact pass runs until a step K at which both |mu_K - pi|_1 and |P^K u|_inf / |u|_inf are
below `SWITCH_TOLERANCE`; every horizon T with T - K >= K (and a tail of at least K steps) is then
completed from the accumulators at K (the part before K exactly: E[S_K R^b] = r_K^a . Pu_b),
the others are run exactly. What the expansion neglects is bounded by |mu_K - pi|_1 times the
sup norms of Pu, phi (times L) and u w, and |P^K u|_inf times those of r and Pu: `switch_error`
reports it relative to the estimator's scale (below 1e-8 where it is used, far below the grid's error). Metastable
chains (T far below the escape time) never meet the condition and are run exactly to T: the
kernel's band is narrow there, so the products are cheap; no quasi-stationary approximation
enters.

Errors: the cell chain rounds every step to a centre, an O(h^2) error (h the cell width) in the
moments, as for `stationary_law`; a point start x0 is split linearly between the neighbouring
centres (its mean kept exactly).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from analysis.search import search_box
from objectives import Objective, validation
from theory import linalg as solvers
from theory.cell_products import cell_kernels, one_blas_thread, start_law
from theory.cell_steps import Stepper
from theory.grid import make_grid
from theory.state_dependent import bind_noise, is_state_dependent
from theory.stationary import StationaryLaw, check_horizons, check_inputs, check_resolution, per_step_size

__all__ = ["ESTIMATORS", "FiniteTimeLaw", "finite_time_law", "SWITCH_TOLERANCE"]

#: The estimators of `simulate.run`, in its order.
ESTIMATORS = ("x", "x_avg", "x_tail", "v", "v_avg")
#: The exact pass hands over to the expansion once |mu_K - pi|_1 and |P^K u|_inf / |u|_inf are below this.
SWITCH_TOLERANCE = 1e-8
#: The switch is looked for only where the longest horizon is at least this many steps (below it,
#: the pass is cheaper than the stationary and Poisson solves), and checked every CHECK_EVERY steps.
SWITCH_FROM = 2000
CHECK_EVERY = 32
#: `coarsen=True`: cells per eta sigma_min across the box, and the most the grid is coarsened.
CELLS_PER_SPREAD = 4
MOST_COARSENING = 4

@dataclasses.dataclass(frozen=True)
class FiniteTimeLaw:
    """The law of each estimator of SGD at horizons T from a start, on the cell chain.

    Shapes use H horizons, S step sizes, d the dimension.

    - `step_sizes` `(S,)`; `n_steps` `(H,)` the horizons, increasing; `tail_fraction`.
    - `means`: estimator -> `(H, S, d)`; `covariances`: estimator -> `(H, S, d, d)`.
    - `method` `(H, S)`: "exact" (forward accumulators to T) or "expansion" (exact to
      `switch_step`, the fundamental-matrix expansion after it).
    - `switch_step` `(S,)`: the step K after which the expansion is valid, or -1.
    - `switch_error` `(H, S)`: a bound on what the expansion neglects in the averages' moments,
      relative to their scale, plus the mass the 1-D windows of `theory.cell_steps` dropped
      (below 1e-25 a call).
    - `grid`: the finest `Grid`; `n_cells` `(S,)` the cells per axis at each step size.
    """

    step_sizes: np.ndarray
    n_steps: np.ndarray
    tail_fraction: float
    means: dict
    covariances: dict
    method: np.ndarray
    switch_step: np.ndarray
    switch_error: np.ndarray
    grid: Any
    n_cells: np.ndarray

    @property
    def dim(self) -> int:
        return self.grid.dim

    def _check(self, estimator: str) -> str:
        if estimator not in self.means:
            raise ValueError(f"estimator must be one of {tuple(self.means)}, got {estimator!r}")
        return estimator

    def mean(self, estimator: str) -> np.ndarray:
        """E[estimator] `(H, S, d)`."""
        return self.means[self._check(estimator)]

    def covariance(self, estimator: str) -> np.ndarray:
        """Cov(estimator) `(H, S, d, d)`."""
        return self.covariances[self._check(estimator)]

    def mse(self, estimator: str, target) -> np.ndarray:
        """E |estimator - target|^2 `(H, S)` = |mean - target|^2 + tr Cov; `target` `(d,)` or `(S, d)`."""
        mean = self.mean(estimator)
        s, d = len(self.step_sizes), self.dim
        t = np.asarray(target, dtype=np.float64)
        if t.shape not in ((d,), (s, d)):
            raise ValueError(f"target must have shape ({d},) or (S, d) = ({s}, {d}), got {t.shape}")
        return np.sum((mean - t) ** 2, axis=-1) + np.trace(self.covariance(estimator), axis1=-2, axis2=-1)


# ---- the forward pass ----------------------------------------------------------------------


def _pairs(d: int, offset: int = 0):
    """Index pairs (a <= b) of d coordinates starting at `offset`: the covariance's entries."""
    a, b = np.triu_indices(d)
    return a + offset, b + offset


def _covariance_from_pairs(values, d):
    out = np.empty(values.shape[:-1] + (d, d))
    a, b = np.triu_indices(d)
    out[..., a, b] = values
    out[..., b, a] = values
    return out


class _Expansion:
    """What the expansion needs for g (columns `(N, c)`): pi, u, Pu, pi phi, C (module docstring)."""

    def __init__(self, chain, pi, poisson, g):
        self.pi = pi
        self.u = poisson(g)
        self.pu = self.u - (g - pi @ g)  # P u = u - (g - pi g)
        w = poisson(self.u)  # Z u (u is centred)
        w = w - self.u
        pw = chain.pull(w)
        pi_u = pi[:, None] * self.u
        # pi phi^{ab} = pi(u_a u_b) - pi(Pu_a Pu_b); C^{ab} = pi(u_a w_b) - pi(Pu_a Pw_b)
        self.sigma = pi_u.T @ self.u - (pi[:, None] * self.pu).T @ self.pu
        self.cross = pi_u.T @ w - (pi[:, None] * self.pu).T @ pw
        self.scale_u = np.max(np.abs(self.u))
        self.scale_pu = np.max(np.abs(self.pu))
        self.scale_w = np.max(np.abs(w))


def _moments_after(expansion, segment, p, columns, pairs, length, started):
    """(E S, E S^a S^b over `pairs`) of the centred sum of a segment completed by the expansion:
    `length` = L steps after the current one, from the law `p`; `started`: the segment's
    accumulators hold its part so far (else it starts after the current step)."""
    pu = expansion.pu[:, columns]
    ia, ib = pairs
    first = p @ pu
    second = (
        length * expansion.sigma[np.ix_(columns, columns)][ia, ib]
        + (p * pu[:, ia].T * pu[:, ib].T).sum(axis=1)
        + (expansion.pi * pu[:, ia].T * pu[:, ib].T).sum(axis=1)
        - expansion.cross[np.ix_(columns, columns)][ia, ib]
        - expansion.cross[np.ix_(columns, columns)][ib, ia]
    )
    if started:
        r, s = segment.r, segment.s
        first = first + r.sum(axis=0)
        second = second + s.sum(axis=0) + np.sum(r[:, ia] * pu[:, ib], axis=0) + np.sum(r[:, ib] * pu[:, ia], axis=0)
    return first, second


def _slots_needed(horizons, tails) -> int:
    """The most tails summing at once: tail h covers steps T_h - m_h + 1 .. T_h."""
    firsts = horizons - tails + 1
    return max(int(np.sum((firsts <= t) & (t <= horizons))) for t in firsts)


def _one_step_size(grid, gradient, chain, eta, start, horizons, tails, pin, want_expansion, window=True):
    d = grid.dim
    points = grid.points
    values = np.concatenate([points, points - eta * gradient], axis=1)  # g: x then v, (N, 2d)
    expansion = None
    centre = start @ values
    if want_expansion and horizons[-1] >= SWITCH_FROM:
        solved = chain.stationary(pin)
        if solved is not None:
            pi, poisson = solved
            expansion = _Expansion(chain, pi, poisson, values)
            centre = pi @ values
    g = values - centre
    # the block (theory.cell_steps): p; r of the average (x, v: 2d rows) and of each tail slot (d rows);
    # s of the average (pairs of x, pairs of v) and of each slot (pairs of x)
    xs, nq = np.arange(d), d * (d + 1) // 2
    pairs_x = _pairs(d)
    pairs_full = (np.concatenate([pairs_x[0], _pairs(d, d)[0]]), np.concatenate([pairs_x[1], _pairs(d, d)[1]]))
    n_slots = _slots_needed(horizons, tails)
    n_r = 2 * d + n_slots * d
    pairs = (
        np.concatenate([pairs_full[0]] + [pairs_x[0] + 2 * d + j * d for j in range(n_slots)]),
        np.concatenate([pairs_full[1]] + [pairs_x[1] + 2 * d + j * d for j in range(n_slots)]),
    )
    stepper = Stepper(chain, pairs, dim=d, window=window)
    summed = np.zeros((n_r, grid.size))  # the centred g of each r row (a free slot's: 0)
    summed[: 2 * d] = g.T
    block = np.zeros((1 + n_r + len(pairs[0]), grid.size))
    block[0] = start

    def r_rows(slot):
        return slice(1 + 2 * d + slot * d, 1 + 2 * d + (slot + 1) * d)

    def s_rows(slot):
        first = 1 + n_r + 2 * nq + slot * nq
        return slice(first, first + nq)

    def segment(slot):  # the accumulators of a slot as (N, c) arrays for the expansion; None: not started
        if slot is None:
            return None
        return _Sums(block[r_rows(slot)].T, block[s_rows(slot)].T)

    average = lambda: _Sums(block[1 : 1 + 2 * d].T, block[1 + n_r : 1 + n_r + 2 * nq].T)  # noqa: E731
    firsts = horizons - tails + 1
    slot_of, free = {}, list(range(n_slots))
    H = len(horizons)
    means = {name: np.zeros((H, d)) for name in ESTIMATORS}
    seconds = {name: np.zeros((H, d, d)) for name in ESTIMATORS}
    method = np.array(["exact"] * H, dtype=object)
    errors = np.zeros(H)
    done = np.zeros(H, bool)
    killed = 0.0

    def point_moments(p, columns):
        mean = p @ values[:, columns]
        centred = values[:, columns] - mean
        return mean, (centred * p[:, None]).T @ centred

    def store(name, h, first, second, length, offset):
        mean_centred = first / length
        seconds[name][h] = _covariance_from_pairs(second, d) / length**2 - np.outer(mean_centred, mean_centred)
        means[name][h] = mean_centred + offset

    def finish(h):
        done[h] = True
        slot = slot_of.pop(h, None)
        if slot is not None:  # free the slot: its rows back to zero
            summed[r_rows(slot).start - 1 : r_rows(slot).stop - 1] = 0.0
            block[r_rows(slot)] = 0.0
            block[s_rows(slot)] = 0.0
            free.append(slot)

    def read_exact(h, k, p):
        means["x"][h], seconds["x"][h] = point_moments(p, xs)
        means["v"][h], seconds["v"][h] = point_moments(p, xs + d)
        r, s = block[1 : 1 + 2 * d].sum(axis=1), block[1 + n_r : 1 + n_r + 2 * nq].sum(axis=1)
        store("x_avg", h, r[:d], s[:nq], k, centre[:d])
        store("v_avg", h, r[d:], s[nq:], k, centre[d:])
        slot = slot_of[h]
        store("x_tail", h, block[r_rows(slot)].sum(axis=1), block[s_rows(slot)].sum(axis=1), tails[h], centre[:d])
        errors[h] = killed

    def read_expansion(h, k, p, switch):
        length = horizons[h] - k
        pi = expansion.pi
        means["x"][h], seconds["x"][h] = point_moments(pi, xs)
        means["v"][h], seconds["v"][h] = point_moments(pi, xs + d)
        first, second = _moments_after(expansion, average(), p, np.arange(2 * d), pairs_full, length, True)
        store("x_avg", h, first[:d], second[:nq], horizons[h], centre[:d])
        store("v_avg", h, first[d:], second[nq:], horizons[h], centre[d:])
        tail = segment(slot_of.get(h))
        started = tail is not None
        first, second = _moments_after(expansion, tail, p, xs, pairs_x, length if started else tails[h], started)
        store("x_tail", h, first, second, tails[h], centre[:d])
        method[h] = "expansion"
        errors[h] = switch + killed

    switch_step, switch = -1, math.inf
    useful = int(np.max(np.minimum(horizons // 2, tails)))
    decays = []  # (k, |P^k u| / |u|) at the checks so far
    powered, powers = (None, 0) if expansion is None else (expansion.u.T.copy(), 0)  # P^powers u, (2d, N)
    k = 0
    while not done.all():
        if switch_step > 0:  # finish the horizons the expansion reaches from here
            for h in np.flatnonzero(~done):
                if horizons[h] - k >= switch_step and tails[h] >= switch_step:
                    read_expansion(h, k, block[0], switch)
                    finish(h)
            if done.all():
                break
        for h in np.flatnonzero(~done & (firsts == k + 1)):  # tails whose first term is the next step
            slot_of[h] = slot = free.pop()
            summed[r_rows(slot).start - 1 : r_rows(slot).stop - 1] = g[:, :d].T
        events = [horizons[~done].min()] + [t - 1 for t in firsts[~done] if t - 1 > k]
        # a switch at K serves only horizons T >= 2K with tails >= K: no check (nor P^k u) beyond that
        checking = expansion is not None and switch_step < 0 and k + CHECK_EVERY <= useful
        if checking:
            events.append((k // CHECK_EVERY + 1) * CHECK_EVERY)
        following = int(min(events))
        block, lost = stepper.advance(block, summed, following - k)
        killed, k = killed + lost, following
        p = block[0]
        if checking and k % CHECK_EVERY == 0:
            mixing = float(np.abs(p - expansion.pi).sum())
            if mixing < SWITCH_TOLERANCE:  # only then P^k u: metastable chains never pay for it
                powered, powers = stepper.pull(powered, k - powers), k
                decay = float(np.max(np.abs(powered)) / max(expansion.scale_u, 1e-300))
                if decay < SWITCH_TOLERANCE:
                    switch_step, switch = k, max(mixing, decay)
                elif _too_slow(decays, k, decay, useful):  # a speed-up only: exact products to T
                    useful = -1
                decays.append((k, decay))
        for h in np.flatnonzero(~done & (horizons == k)):
            read_exact(h, k, p)
            finish(h)
    return means, seconds, method, errors, switch_step


def _too_slow(decays, k, decay, useful) -> bool:
    """Whether |P^k u| / |u| (non-increasing: P is stochastic), at the rate it fell since the first
    check, would reach `SWITCH_TOLERANCE` only after the last useful step: then the checks stop
    (a chain that mixes to pi inside one basin while u relaxes on the escape time). Judged once
    the checks span 4 `CHECK_EVERY`; a decay that speeds up later is missed, which costs time,
    never accuracy."""
    if not decays or k - decays[0][0] < 4 * CHECK_EVERY:
        return False
    rate = math.log(max(decay, 1e-300) / decays[0][1]) / (k - decays[0][0])
    return rate >= 0 or k + math.log(SWITCH_TOLERANCE / decay) / rate > useful


class _Sums(NamedTuple):
    """One sum's accumulators over the cells: r `(N, c)`, s `(N, q)`."""

    r: np.ndarray
    s: np.ndarray


def _horizons(n_steps) -> np.ndarray:
    """The distinct horizons of `n_steps` (`check_horizons`), ascending, `(H,)` int64."""
    return np.array(sorted({int(t) for t in check_horizons(n_steps)}), dtype=np.int64)


def finite_time_law(
    f, noise, step_sizes, *, x0, n_steps, bounds=None, n_grid=None, tail_fraction: float = 0.5, expansion: bool = True,
    coarsen: bool = False,
) -> FiniteTimeLaw:
    """The exact law of SGD's estimators at horizons `n_steps` from `x0`, on the cell chain.

    **Arguments:**

    - `f`: an `objectives.Objective` of dimension 1 or 2; `noise`: an additive `simulate.noise`
      model (as `stationary_law`), or noise whose covariance depends on x (`hessian_aligned`,
      `loss_scaled`, `label_noise`, `state_dependent`, `minibatch` on a finite sum: the kernel of
      `theory.state_law`, `theory.cell_products.StateDependentCells`). Where such noise vanishes
      at a minimizer (absorbing cells) the law is the exact products to every T (no expansion);
      `v` is x - eta grad f(x) with the full gradient.
    - `step_sizes`: eta > 0, a number or a sequence (S values).
    - `x0`: the start: a point `(d,)` in the box, points `(C, d)` (one per chain: their empirical
      law), a `StationaryLaw` on this grid (the chains start from its law, per step size), or a
      density on the grid (`grid.shape`, `(N,)` or per step size).
    - `n_steps`: an integer T >= 1 or a sequence of them (H horizons, returned sorted).
    - `bounds`, `n_grid`: the box and cells per axis, as `stationary_law` (default: f's search
      box, 2001 cells in 1-D, 101 per axis in 2-D; a `StationaryLaw` start: its grid); `n_grid`
      may also give one number per step size.
    - `coarsen`: fewer cells at the step sizes whose kernel is wide (`_cells`: about
      `CELLS_PER_SPREAD` cells per eta sigma, at least n_grid // `MOST_COARSENING`; additive noise
      only: state-dependent noise has no one sigma and keeps n_grid); the cost of a
      step falls like the square of the cells in 1-D. `law.n_cells` says what was used.
    - `tail_fraction`: the tail average covers the last ceil(tail_fraction T) iterates.
    - `expansion`: allow the fundamental-matrix expansion beyond many relaxation times (False:
      exact products to every T).

    **Returns:** a `FiniteTimeLaw` over `ESTIMATORS`.

    **Raises:** `ValueError` naming the argument: x0 outside the box or a law on another grid,
    n_steps below 1 or not an integer, and the inputs `stationary_law` refuses (a grid whose cells
    are wider than `theory.stationary.COARSEST_CELL` eta sigma among them).
    """
    if isinstance(x0, StationaryLaw):
        if bounds is None:
            bounds = (x0.grid.lower, x0.grid.upper)
        if n_grid is None:
            n_grid = x0.grid.n_cells
    per_step = isinstance(n_grid, (list, tuple, np.ndarray))
    law = None  # state-dependent noise: no one noise law; its kernel is built per grid (cell_kernels)
    if is_state_dependent(noise) and isinstance(f, Objective) and f.dim in (1, 2):
        noise = bind_noise(f, noise)
        eta = validation.step_sizes("step_sizes", step_sizes)
        n = validation.integer("n_grid", (2001 if f.dim == 1 else 101) if n_grid is None else (max(n_grid) if per_step else n_grid), lo=16, note="cells per axis")
    else:
        law, eta, n = check_inputs(f, noise, step_sizes, max(n_grid) if per_step else n_grid, 0.5)
    horizons = _horizons(n_steps)
    tail_fraction = validation.real("tail_fraction", tail_fraction, lo=0.0, hi=1.0, open_lo=True)
    lower, upper = search_box(f, bounds)
    cells = _cells(n_grid, n, eta, law, upper - lower, coarsen)
    tails = np.array([max(1, math.ceil(round(tail_fraction * int(t), 9))) for t in horizons], dtype=np.int64)
    grids = {c: make_grid(lower, upper, int(c)) for c in sorted(set(cells.tolist()))}
    for c, grid in grids.items():  # cells that do not resolve one step's noise: refused, as stationary_law does
        if law is not None:
            check_resolution(grid, law, eta[cells == c])
    starts = {c: start_law(x0, grid, eta.size) for c, grid in grids.items()}
    kernels = {c: cell_kernels(f, noise, law, grid) for c, grid in grids.items()}

    def one(s, e):
        c = int(cells[s])
        chain, ergodic = kernels[c].chain(e)  # ergodic: one closed class, so pi and the expansion exist
        return _one_step_size(grids[c], kernels[c].gradient, chain, e, starts[c][s], horizons, tails, kernels[c].pin, expansion and ergodic)

    try:
        with one_blas_thread():
            results = per_step_size(one, eta)
    except solvers.NoStationaryLaw as error:
        raise ValueError(f"step_sizes {eta.tolist()}: no cell chain in bounds={lower.tolist()}, {upper.tolist()}: {error}") from None
    means = {name: np.stack([r[0][name] for r in results], axis=1) for name in ESTIMATORS}
    covariances = {name: np.stack([r[1][name] for r in results], axis=1) for name in ESTIMATORS}
    return FiniteTimeLaw(
        step_sizes=eta, n_steps=horizons, tail_fraction=tail_fraction, means=means, covariances=covariances,
        method=np.stack([r[2] for r in results], axis=1), switch_step=np.array([r[4] for r in results]),
        switch_error=np.stack([r[3] for r in results], axis=1), grid=grids[max(grids)], n_cells=cells,
    )


def _cells(n_grid, n, eta, law, widths, coarsen) -> np.ndarray:
    """Cells per axis for each step size `(S,)`: `n_grid` itself (a number, or one per step size),
    or with `coarsen`, n reduced where the kernel is wide: enough for `CELLS_PER_SPREAD` cells
    per eta sigma_min across the box, never below n // `MOST_COARSENING` (the landscape's own
    scale) nor above n."""
    if isinstance(n_grid, (list, tuple, np.ndarray)):
        cells = np.array([validation.integer("n_grid", c, lo=16, note="cells per axis") for c in n_grid], dtype=np.int64)
        if cells.shape != eta.shape:
            raise ValueError(f"n_grid must be a number or one per step size ({eta.size}), got {len(cells)}")
        return cells
    if not coarsen or law is None:  # state-dependent noise (law None): no one sigma to coarsen by
        return np.full(eta.shape, n, dtype=np.int64)
    spread = eta * float(np.sqrt(np.min(np.diag(law.covariance))))
    needed = np.ceil(float(np.max(widths)) * CELLS_PER_SPREAD / spread).astype(np.int64)
    return np.clip(needed, max(16, n // MOST_COARSENING), n)
