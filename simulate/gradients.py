"""Gradient sources: where a chain's stochastic gradient g(x, draw) comes from.

Two sources share one interface, so kernels and the driver never ask which noise they run on:

- `AdditiveNoise(noise)`: g(x, eps) = grad f(x) + eps, eps ~ `noise` (a `simulate.noise` model).
- `Minibatches(batches)`: g(x, B) = (1/b) sum_{j in B} grad loss_j(x) for a finite-sum objective,
  B a minibatch of `batches.batch_size` indices (`simulate.noise.minibatch`); with label noise the
  losses at labels y_j + s xi_j, the draw then the pair (indices, xi).
- `StateDependentNoise(noise)`: g(x, z) = grad f(x) + C(x)^(1/2) z, z the Gaussian family's
  standard draws (the numbers `gaussian(...)` scales), C from `simulate.noise.state_dependent`,
  `hessian_aligned`, `loss_scaled` or `label_noise`. Not additive: SGD takes its plain form.

Interface (both are pytrees: the noise scale, df and covariance factor are traced leaves):

- `draw_block(seed, chain_indices, block_index, objective, dtype)`: the draws of one noise block,
  `(n_chains, NOISE_BLOCK_STEPS, ...)`, under the randomness contract (`simulate.randomness`).
- `grad(objective, x, draw)`: g(x, draw) for one chain, `(dim,)`.
- `additive` (static): g(x, eps) = grad f(x) + eps with the draw eps itself. Kernels may then use
  it: SGD runs as x_{k+1} = v_k - eta eps_{k+1} (`simulate.kernels.sgd`).
"""

from __future__ import annotations

import dataclasses

import jax

from objectives.noise import Minibatch, NoiseModel, gaussian
from objectives.state_noise import StateDependent
from simulate.randomness import label_block, minibatch_block, noise_block

__all__ = ["AdditiveNoise", "Minibatches", "StateDependentNoise", "gradient_source"]

#: The draws z of state-dependent noise: the Gaussian family's, unscaled (z * 1.0 is z exactly).
_STANDARD_GAUSSIAN = gaussian(1.0)


@dataclasses.dataclass(frozen=True)
class AdditiveNoise:
    """g(x, eps) = grad f(x) + eps with eps drawn from `noise` (zero mean, known covariance)."""

    noise: NoiseModel
    additive = True

    def draw_block(self, seed, chain_indices, block_index, objective, dtype):
        """eps for one block: `(n_chains, NOISE_BLOCK_STEPS, dim)`."""
        return noise_block(self.noise, seed, chain_indices, block_index, objective.dim, dtype)

    def grad(self, objective, x, draw):
        return objective.point_grad(x) + draw


@dataclasses.dataclass(frozen=True)
class Minibatches:
    """g(x, B) = (1/b) sum_{j in B} grad loss_j(x): the mean gradient over a minibatch B of examples."""

    batches: Minibatch
    additive = False

    def draw_block(self, seed, chain_indices, block_index, objective, dtype):
        """Minibatch indices for one block: int32 `(n_chains, NOISE_BLOCK_STEPS, batch_size)`; with
        label noise, (those, xi `(n_chains, NOISE_BLOCK_STEPS, batch_size) + label shape`)."""
        indices = minibatch_block(self.batches, seed, chain_indices, block_index, objective.n_examples)
        if self.batches.label_noise == 0:
            return indices
        label_shape = tuple(objective.params[1].shape[1:])
        return indices, label_block(self.batches, seed, chain_indices, block_index, label_shape, dtype)

    def grad(self, objective, x, draw):
        if self.batches.label_noise == 0:
            return objective.point_minibatch_grad(x, draw)
        indices, xi = draw
        inputs, targets = jax.tree.map(lambda leaf: leaf[indices], objective.params)
        noisy = targets + self.batches.label_noise * xi.astype(targets.dtype)  # the definition, exact for any loss
        return jax.grad(objective.value_fn, argnums=1)((inputs, noisy), x)


@dataclasses.dataclass(frozen=True)
class StateDependentNoise:
    """g(x, z) = grad f(x) + C(x)^(1/2) z, z ~ N(0, I) drawn as the Gaussian family's (eps NaN
    where C(x) is not PSD: the chain is then frozen and flagged as diverged)."""

    noise: StateDependent
    additive = False

    def draw_block(self, seed, chain_indices, block_index, objective, dtype):
        """z for one block: `(n_chains, NOISE_BLOCK_STEPS, dim)`, the additive Gaussian's draws."""
        return noise_block(_STANDARD_GAUSSIAN, seed, chain_indices, block_index, objective.dim, dtype)

    def grad(self, objective, x, draw):
        return objective.point_grad(x) + self.noise.noise(objective, x, draw)


jax.tree_util.register_dataclass(AdditiveNoise, data_fields=["noise"], meta_fields=[])
jax.tree_util.register_dataclass(Minibatches, data_fields=["batches"], meta_fields=[])
jax.tree_util.register_dataclass(StateDependentNoise, data_fields=["noise"], meta_fields=[])


def gradient_source(noise: NoiseModel | Minibatch | StateDependent) -> AdditiveNoise | Minibatches | StateDependentNoise:
    """The gradient source of a `simulate.noise` model (checked by `simulate.run` beforehand)."""
    if isinstance(noise, Minibatch):
        return Minibatches(noise)
    if isinstance(noise, StateDependent):
        return StateDependentNoise(noise)
    return AdditiveNoise(noise)
