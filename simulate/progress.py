"""Progress of compiled runs: the driver reports finished steps to the host, and one bar shows them.

A run compiled with `progress=True` calls `progress_callback` after each noise block; every few
blocks (at most `PROGRESS_REPORTS` times per run, the last block always) the host function set
with `report_progress_to` hears the number of steps done. The listener lives outside the compiled
code, so a new listener does not recompile.

`StepBar` is the one progress bar of the library (`simulate.run(..., progress=True)` and the
`asgd` command line): a `tqdm.auto` bar on stderr, which is a widget in Jupyter when ipywidgets
is installed and a text line in a terminal, a log or a notebook without ipywidgets (there the
text bar is chosen directly: `tqdm.auto` would warn "IProgress not found" in every notebook, a
warning about an optional widget, and then draw the same text bar).
"""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp

from simulate.randomness import NOISE_BLOCK_STEPS

__all__ = ["PROGRESS_REPORTS", "StepBar", "progress_callback", "report_progress_to"]


def _bar_class():
    """The tqdm class of the bar: `tqdm.auto`'s (a widget in Jupyter) when ipywidgets is
    installed, else the text bar `tqdm.std.tqdm`, which is what `tqdm.auto` falls back to there,
    after a TqdmWarning the user cannot act on short of installing a widget library."""
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm


#: How many times at most a run with `progress=True` reports to the host.
PROGRESS_REPORTS = 100

# The host function that hears of finished blocks (see `report_progress_to`).
_progress_listener = None


class StepBar:
    """A progress bar of SGD steps (`tqdm.auto` on stderr), usable as the `progress` hook.

    - `StepBar(total, label)`, then `bar.update_to(done)` moves it to `done` steps (never back);
    - `bar(done, total)` is the `simulate.run(progress=...)` hook: it takes the total from the run;
    - `bar.close()` (or a `with` block) ends the line.

    `enabled`: True draws on stderr whatever it is (a pipe, a notebook's stream); None draws only
    when stderr is a terminal (the command line: logs and CI stay clean); False draws nothing.
    The tqdm bar is made at the first update, so a run that reports nothing draws nothing.
    """

    def __init__(self, total: int | None = None, label: str = "", enabled: bool | None = True):
        self.total = total
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._bar = None

    def update_to(self, done: int) -> None:
        """Move the bar to `done` steps (an earlier count is ignored)."""
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = _bar_class()(total=self.total, desc=self.label or None, unit="step", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        if done > self._bar.n:
            self._bar.update(int(done) - self._bar.n)

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
        self.update_to(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


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
