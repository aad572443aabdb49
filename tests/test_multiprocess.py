"""Two processes on localhost (jax.distributed, CPU collectives over gloo) split the chains with
`first_chain`; gathered, they equal one single-process run bit for bit."""

import os
import subprocess
import sys
import textwrap

import pytest

from support import free_port

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[2]}", num_processes=2,
                               process_id=int(sys.argv[1]), initialization_timeout=60)
    from jax.experimental import multihost_utils
    import objectives, simulate

    f = objectives.quadratic([1.0, 2.0], [0.0, 1.0])
    kwargs = dict(step_sizes=[0.1, 0.3], n_steps=150, x0=[1.0, 1.0], seed=4)
    per_process = 50
    mine = simulate.run(f, n_chains=per_process, first_chain=jax.process_index() * per_process, **kwargs)
    gathered = {name: np.concatenate(list(multihost_utils.process_allgather(getattr(mine, name))), axis=1)
                for name in simulate.ESTIMATORS}
    if jax.process_index() == 0:
        reference = simulate.run(f, n_chains=2 * per_process, **kwargs)
        for name in simulate.ESTIMATORS:
            assert np.array_equal(gathered[name], getattr(reference, name)), name
        print("identical")
    """
)


def test_two_processes_split_chains_bit_identically(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(free_port())
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    workers = [
        subprocess.Popen([sys.executable, str(script), str(i), port], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (0, 1)
    ]
    try:
        outputs = [w.communicate(timeout=240) for w in workers]
    except subprocess.TimeoutExpired:
        for w in workers:
            w.kill()
        pytest.fail("the two-process run did not finish in 240 s")
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]
    assert "identical" in outputs[0][0]
