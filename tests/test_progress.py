"""Progress reports while the chains run (issue 6): they arrive during the run, count every
chunk's steps, end at the total, and change no result."""

import importlib.util
import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import objectives
import simulate
from simulate.progress import PROGRESS_REPORTS, StepBar
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
    for bad in ("yes", 1):
        with pytest.raises(ValueError, match=r"progress must be True, False or a function .*got " + repr(bad)):
            _run(n_steps=10, progress=bad)


def test_progress_true_draws_a_bar_on_stderr_off_a_terminal_and_changes_nothing(capsys):
    # Under pytest stdout and stderr are not terminals (as in a notebook or a log): the bar asked
    # for with progress=True is still drawn, on stderr, and ends at the total.
    result = _run(n_steps=1000, chunk_size=4, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "simulate.run" in captured.err and "100%" in captured.err and "2.00k/2.00k" in captured.err
    plain = _run(n_steps=1000, chunk_size=4, progress=False)
    for name in simulate.ESTIMATORS:
        np.testing.assert_array_equal(getattr(result, name), getattr(plain, name))
    np.testing.assert_array_equal(result.diverged_at, plain.diverged_at)


def test_progress_true_in_a_process_whose_stdout_and_stderr_are_pipes():
    script = textwrap.dedent("""
        import objectives, simulate
        simulate.run(objectives.sharp_flat(), step_sizes=[0.1], n_steps=500, n_chains=2, x0=[-1.0], progress=True)
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout == "done\n"
    assert "100%" in out.stderr and "500/500" in out.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_command_line_bar_moves_within_a_sweep_point_on_a_terminal_only(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with StepBar(total=2000, label="demo", enabled=None) as bar:
        _run(n_steps=1000, progress=lambda done, total: bar.update_to(1000 * done // total))
    frames = [frame for frame in stream.getvalue().split("\r") if frame.strip()]
    assert len(frames) >= 2 and "demo" in frames[-1] and "1.00k/2.00k" in frames[-1]  # first of two sweep points
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    StepBar(total=10, enabled=None).update_to(5)
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


def test_a_notebook_without_ipywidgets_gets_the_text_bar_and_no_warning(monkeypatch):
    """In a Jupyter kernel without ipywidgets, `tqdm.auto` warns "IProgress not found" (a
    TqdmWarning in every notebook's output) and then draws the text bar anyway: the bar is the
    text bar from the start, with no warning. The kernel is faked the way tqdm detects one."""
    import types
    import warnings

    from simulate import progress

    kernel = types.ModuleType("IPython")
    kernel.get_ipython = lambda: type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", kernel)
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):  # imported afresh, in the "kernel"
        monkeypatch.delitem(sys.modules, name, raising=False)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else find_spec(name, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress._bar_class()
        bar(total=3, file=io.StringIO()).close()
    from tqdm.std import tqdm

    assert bar is tqdm
