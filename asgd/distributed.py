"""One sweep split across processes (hosts): `jax.distributed` under SLURM, Open MPI or flags.

Every process runs a contiguous slice of each sweep point's chains (`simulate.run(...,
first_chain=...)`); the slices are gathered on every process, and process 0 alone writes the
result folder. By the randomness contract (chain i's noise at step k depends only on
(seed, i, k)), the gathered result is bit-identical to a one-process run, and so are the
files written from it.

A run is distributed when

- `--coordinator HOST:PORT --num-processes N --process-id I` are given (all three), or
- it was started by `srun` with more than one task (`SLURM_STEP_NUM_TASKS > 1`), or by
  Open MPI's `mpirun` with more than one process (`OMPI_COMM_WORLD_SIZE > 1`); JAX then reads
  the coordinator and the process's rank from the launcher's environment.

Otherwise it is one process, and nothing here talks to the network.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

import simulate
from asgd.schema import ConfigError

__all__ = ["Cluster", "SINGLE", "initialize", "launcher"]

# Fields of `SimulationResult` with one entry per chain, and the axis that indexes the chains.
_CHAIN_AXIS = {"x": 1, "x_avg": 1, "x_tail": 1, "v": 1, "v_avg": 1, "x_ema": 1, "diverged": 1,
               "diverged_at": 1, "trajectory": 2}
_CHECKPOINT_CHAIN_AXIS = 2  # checkpoints[name]: (K, S, C, d)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among `num_processes` processes that share one sweep."""

    process_id: int = 0
    num_processes: int = 1

    @property
    def is_writer(self) -> bool:
        """Process 0 claims and writes the result folder; the others only compute."""
        return self.process_id == 0

    def chain_slice(self, n_chains: int) -> tuple[int, int]:
        """`(first_chain, count)` of this process's chains: `n_chains` split in contiguous
        slices whose sizes differ by at most one (the first `n_chains % num_processes` get one more)."""
        base, extra = divmod(n_chains, self.num_processes)
        first = self.process_id * base + min(self.process_id, extra)
        return first, base + (self.process_id < extra)

    def agree(self, value: bool) -> bool:
        """Process 0's `value`, on every process: one decision (resume this point? is the
        folder ours?) for all, even when the processes do not share a file system."""
        if self.num_processes == 1:
            return bool(value)
        return bool(multihost_utils.broadcast_one_to_all(np.asarray(bool(value))))

    def gather(self, part: simulate.SimulationResult, n_chains: int) -> simulate.SimulationResult:
        """The whole result from every process's slice `part`, in chain order, on every process.

        Slices are padded to the largest one so that each gather has one shape, then trimmed;
        they travel as raw bytes, so every dtype arrives bit for bit.
        """
        if self.num_processes == 1:
            return part
        counts = [Cluster(p, self.num_processes).chain_slice(n_chains)[1] for p in range(self.num_processes)]

        def gathered(array, axis):
            pad = [(0, 0)] * array.ndim
            pad[axis] = (0, max(counts) - array.shape[axis])
            padded = np.ascontiguousarray(np.pad(array, pad))
            # As raw bytes: JAX would narrow int64 / float64 to 32 bits when x64 is off.
            raw = np.asarray(multihost_utils.process_allgather(padded.reshape(-1).view(np.uint8), tiled=False))
            stacked = raw.view(array.dtype).reshape(self.num_processes, *padded.shape)
            pieces = [np.take(stacked[p], np.arange(counts[p]), axis=axis) for p in range(self.num_processes)]
            return np.concatenate(pieces, axis=axis)

        fields = {name: gathered(getattr(part, name), axis) for name, axis in _CHAIN_AXIS.items()
                  if getattr(part, name) is not None}
        fields["checkpoints"] = {name: gathered(array, _CHECKPOINT_CHAIN_AXIS) for name, array in part.checkpoints.items()}
        return dataclasses.replace(part, n_chains=n_chains, **fields)


SINGLE = Cluster()


def launcher(environ=None) -> str | None:
    """The cluster launcher that started this process with others (`"slurm"`, `"openmpi"`), or `None`."""
    environ = os.environ if environ is None else environ

    def count(name):
        try:
            return int(environ.get(name, "1"))
        except ValueError:
            return 1

    if count("SLURM_STEP_NUM_TASKS") > 1 and "SLURM_PROCID" in environ:
        return "slurm"
    if count("OMPI_COMM_WORLD_SIZE") > 1:
        return "openmpi"
    return None


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, timeout_s: int = 300) -> Cluster:
    """Join the other processes of a distributed run (see the module docstring), or return
    `SINGLE`. Must run before anything else touches JAX's backends."""
    flags = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    given = [name for name, value in flags.items() if value is not None]
    if given and len(given) < len(flags):
        missing = [name for name in flags if name not in given]
        raise ConfigError(f"{', '.join(given)} given without {', '.join(missing)}: a distributed run needs all three")
    if given:
        if num_processes < 1:
            raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id must be in [0, {num_processes - 1}] (--num-processes {num_processes}), got {process_id}")
        if num_processes == 1:
            return SINGLE
        kwargs = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    elif launcher() is not None:
        kwargs = {}  # JAX's cluster detection reads the coordinator and ranks from the launcher
    else:
        return SINGLE
    # CPU processes exchange their slices over gloo; accelerators use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(initialization_timeout=timeout_s, **kwargs)
    return Cluster(jax.process_index(), jax.process_count())
