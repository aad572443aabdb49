"""Progress reports while the chains run (issue 6): they arrive during the run, count every
chunk's steps, end at the total, and change no result."""

import io

import numpy as np
import pytest

import objectives
import simulate
from asgd.progress import Progress
from simulate.progress import PROGRESS_REPORTS
from simulate.randomness import NOISE_BLOCK_STEPS


def _run(**kwargs):
    return simulate.run(objectives.sharp_flat(), step_sizes=[0.05, 0.2], n_chains=6, x0=[-1.0], seed=4, **kwargs)


@pytest.mark.parametrize("n_steps, chunk_size", [(1000, None), (3 * NOISE_BLOCK_STEPS + 5, 4), (20_000, 3)])
def test_reports_are_monotone_end_at_the_total_and_change_nothing(n_steps, chunk_size):
    heard = []
    result = _run(n_steps=n_steps, chunk_size=chunk_size, progress=lambda done, total: heard.append((done, total)))
    plain = _run(n_steps=n_steps, chunk_size=chunk_size)
    n_chunks = -(-6 // (chunk_size or 6))
    total = n_chunks * n_steps
    done = [d for d, _ in heard]
    assert {t for _, t in heard} == {total}
    assert all(a < b for a, b in zip(done, done[1:])) and done[-1] == total
    # Reports come during the run, every few blocks, and at most about PROGRESS_REPORTS per chunk.
    n_full_blocks = n_steps // NOISE_BLOCK_STEPS
    assert min(n_full_blocks, PROGRESS_REPORTS // 2) * n_chunks <= len(heard) <= (PROGRESS_REPORTS + 2) * n_chunks
    for name in simulate.ESTIMATORS:
        np.testing.assert_array_equal(getattr(result, name), getattr(plain, name))
    np.testing.assert_array_equal(result.diverged_at, plain.diverged_at)


def test_bad_progress_argument_is_named():
    with pytest.raises(ValueError, match="progress must be a function"):
        _run(n_steps=10, progress="yes")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_moves_within_a_sweep_point_and_is_silent_off_a_terminal():
    stream = _Terminal()
    bar = Progress(total=2000, label="demo", stream=stream)
    _run(n_steps=1000, progress=lambda done, total: bar.update(1000 * done / total))
    lines = [line for line in stream.getvalue().split("\r") if line]
    assert len(lines) > 10 and "50.0%" in lines[-1]  # first of two sweep points done
    quiet = io.StringIO()
    Progress(total=10, stream=quiet).update(5)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("algorithm", [simulate.sam(0.05), simulate.momentum(0.5)], ids=repr)
def test_every_kernel_reports_from_compiled_code_up_to_its_last_partial_block(algorithm):
    # 3 full blocks and 5 steps, in 2 chunks: each chunk's last report (its end) comes from the
    # compiled loop, after the partial block; with minibatches and the EMA too.
    a = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    f = objectives.least_squares(a, np.ones(12, np.float32))
    n_steps = 3 * NOISE_BLOCK_STEPS + 5
    heard = []
    common = dict(step_sizes=[0.1], n_steps=n_steps, n_chains=6, chunk_size=3, x0=[0.0, 0.0], algorithm=algorithm, ema_decay=0.9)
    simulate.run(f, noise=simulate.noise.minibatch(4), progress=lambda done, total: heard.append(done), **common)
    assert heard == [NOISE_BLOCK_STEPS, 2 * NOISE_BLOCK_STEPS, 3 * NOISE_BLOCK_STEPS, n_steps] + [n_steps + d for d in (NOISE_BLOCK_STEPS, 2 * NOISE_BLOCK_STEPS, 3 * NOISE_BLOCK_STEPS, n_steps)]
