"""The exact minibatch kernel of a small finite sum: every minibatch with its probability.

SGD with minibatches on f = (1/n) sum_j f_j moves from x to x - eta grad f_b(x), with
grad f_b = (1/B) sum_{j in b} grad f_j and b a minibatch of B examples drawn afresh at every step.
Its kernel is the mixture of point maps

    P(x, .) = sum_b p_b delta(x - eta grad f_b(x)),

over

- without replacement: the C(n, B) subsets b, each with p_b = 1 / C(n, B);
- with replacement: the C(n + B - 1, B) multisets b (counts c_j summing to B), each with the
  multinomial probability p_b = B! / (prod_j c_j!) n^-B, and grad f_b = (1/B) sum_j c_j grad f_j.

The number of minibatches grows fast (C(24, 12) = 2.7 million), and the kernel has one point
map per minibatch and cell: `MAX_MINIBATCHES` bounds it.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import numpy as np
import scipy.special

__all__ = ["MAX_MINIBATCHES", "Minibatches", "enumerate_minibatches", "example_gradients", "in_float64"]

#: The most minibatches the exact mixture enumerates (C(24, 3) = 2024, C(16, 8) = 12870).
MAX_MINIBATCHES = 20_000


class Minibatches(NamedTuple):
    """Every minibatch: `counts` `(K, n)` how often each example is in it; `probability` `(K,)`."""

    counts: np.ndarray
    probability: np.ndarray


def enumerate_minibatches(n_examples: int, batch_size: int, replace: bool) -> Minibatches:
    """All minibatches of `batch_size` from `n_examples`, with their probabilities (module docstring).

    **Raises:** `ValueError` naming `noise` (its batch size) and the objective's `n_examples` when
    there are more than `MAX_MINIBATCHES`, or when `batch_size` exceeds `n_examples` without replacement.
    """
    n, b = int(n_examples), int(batch_size)
    if not replace and b > n:
        raise ValueError(f"noise: batch_size={b} exceeds the objective's n_examples={n} (minibatches without replacement)")
    k = math.comb(n + b - 1, b) if replace else math.comb(n, b)
    if k > MAX_MINIBATCHES:
        kind = f"C(n + B - 1, B) = C({n + b - 1}, {b})" if replace else f"C(n, B) = C({n}, {b})"
        raise ValueError(
            f"noise: the exact minibatch kernel of batch_size={b} on a finite sum of n_examples={n} mixes "
            f"{kind} = {k} minibatches, more than MAX_MINIBATCHES = {MAX_MINIBATCHES}; use fewer examples or a "
            f"smaller batch size (or simulate)"
        )
    counts = np.zeros((k, n), np.int64)
    if replace:
        for row, batch in enumerate(itertools.combinations_with_replacement(range(n), b)):
            np.add.at(counts[row], list(batch), 1)
        log_p = math.lgamma(b + 1) - np.sum(scipy.special.gammaln(counts + 1), axis=1) - b * math.log(n)
        probability = np.exp(log_p)
    else:
        for row, batch in enumerate(itertools.combinations(range(n), b)):
            counts[row, list(batch)] = 1
        probability = np.full(k, 1.0 / k)
    return Minibatches(counts, probability / probability.sum())


_per_example = jax.jit(lambda objective, points: jax.vmap(objective.point_example_grads)(points))


def in_float64(f):
    """The finite sum `f` with its floating data in float64 (float32 data would meet float64 points)."""
    data = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64) if np.issubdtype(np.asarray(leaf).dtype, np.floating) else leaf, f.params)
    return f.replace(params=data)


def example_gradients(f, points: np.ndarray) -> np.ndarray:
    """grad f_j at every point, `(N, n, d)` float64 (the l2 term, if any, in each)."""
    with jax.enable_x64(True):
        return np.asarray(_per_example(in_float64(f), np.asarray(points, np.float64)), np.float64)
