"""The `asgd` command line.

    asgd demo      a small built-in experiment: SGD vs averaged SGD on a quadratic against the
                   exact law of every estimator (seconds on a laptop CPU)

The CLI sits at the end of the data flow (objectives -> simulate -> analysis -> CLI).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import objectives
import simulate
from analysis import theory

__all__ = ["main"]


def demo(n_chains: int = 4096, n_steps: int = 2000, seed: int = 0) -> str:
    """SGD on f(x) = 1/2 ||x||^2_H (2-D, ill-conditioned) with Gaussian noise, three step sizes.

    Prints, per step size and estimator, the simulated E||estimator - x*||^2 with its Monte Carlo
    standard error next to the exact value from the linear-Gaussian law: the last iterate keeps
    an O(eta) floor, the averages fall to O(1/T).
    """
    hessian = np.diag([1.0, 0.1])
    center = np.array([1.0, -1.0])
    f = objectives.quadratic(hessian, center, name="ill-conditioned quadratic")
    noise = simulate.noise.gaussian(1.0)
    step_sizes = [0.05, 0.2, 1.0]
    x0 = np.array([3.0, 3.0])
    start = time.perf_counter()
    result = simulate.run(f, step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=x0, noise=noise, seed=seed)
    elapsed = time.perf_counter() - start

    lines = [
        f"{f.name}: H = diag(1, 0.1), Gaussian noise (scale 1), T = {n_steps}, {n_chains} chains per step size",
        f"simulated in {elapsed:.2f} s ({len(step_sizes) * n_chains * n_steps / elapsed:.3g} chain-steps/s, compile included)",
        "",
        f"{'estimator':<10}{'step_size':>10}{'simulated MSE':>16}{'+- se':>11}{'exact MSE':>13}{'z':>7}",
    ]
    for s, eta in enumerate(step_sizes):
        law = theory.quadratic_law(hessian, noise.covariance(2), eta, n_steps, x0, center, result.tail_fraction)
        for name in simulate.ESTIMATORS:
            squared = np.sum((getattr(result, name)[s].astype(np.float64) - center) ** 2, axis=-1)
            mse, se = squared.mean(), squared.std(ddof=1) / np.sqrt(n_chains)
            exact = law.mse(name, center)
            lines.append(f"{name:<10}{eta:>10.3g}{mse:>16.5g}{se:>11.2g}{exact:>13.5g}{(mse - exact) / se:>7.2f}")
        lines.append("")
    lines.append("z = (simulated - exact) / se: within a few units when the engine is right.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgd", description="Averaged SGD as SGD on a smoothed objective.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="a small built-in experiment against exact theory")
    demo_parser.add_argument("--chains", type=int, default=4096, help="chains per step size (default 4096)")
    demo_parser.add_argument("--steps", type=int, default=2000, help="SGD steps (default 2000)")
    demo_parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            print(demo(n_chains=args.chains, n_steps=args.steps, seed=args.seed))
        except ValueError as error:
            print(f"asgd demo: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
