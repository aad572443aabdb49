"""Progress reports from compiled runs: the driver calls the host every few noise blocks.

A run compiled with `progress=True` calls `progress_callback` after each noise block; every few
blocks (at most `PROGRESS_REPORTS` times per run, the last block always) the host function set
with `report_progress_to` hears the number of steps done. The listener lives outside the compiled
code, so a new listener does not recompile.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simulate.randomness import NOISE_BLOCK_STEPS

__all__ = ["PROGRESS_REPORTS", "progress_callback", "report_progress_to"]

#: How many times at most a run with `progress=True` reports to the host.
PROGRESS_REPORTS = 100

# The host function that hears of finished blocks (see `report_progress_to`).
_progress_listener = None


class report_progress_to:
    """Context manager: while open, `listener(n_steps_done)` is called from runs compiled with
    `progress=True`, after every few noise blocks and after the last one.

    With chains sharded over devices each device reports, so the same count can arrive more than
    once (`simulate.run` passes on only the increases).
    """

    def __init__(self, listener):
        self.listener = listener

    def __enter__(self):
        global _progress_listener
        self._previous, _progress_listener = _progress_listener, self.listener
        return self

    def __exit__(self, *exc):
        global _progress_listener
        _progress_listener = self._previous
        return False


def _report_progress(n_steps_done) -> None:
    listener = _progress_listener
    if listener is not None:
        listener(int(n_steps_done))


def progress_callback(block_index, n_steps: int, after) -> None:
    """In compiled code: report the steps done after block `block_index`, every few blocks
    (a host round trip per block would cost more than a small block). `after` is the block's
    result: the report waits for it (a count computed from the block index alone could be sent
    before the block has run)."""
    n_blocks = -(-n_steps // NOISE_BLOCK_STEPS)
    every = -(-n_blocks // PROGRESS_REPORTS)
    done = jnp.minimum((block_index + 1) * NOISE_BLOCK_STEPS, n_steps)
    done, _ = jax.lax.optimization_barrier((done, after))
    report = ((block_index + 1) % every == 0) | (block_index + 1 == n_blocks)
    jax.lax.cond(report, lambda: jax.debug.callback(_report_progress, done), lambda: None)
