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

Before JAX is asked, the flags are checked (`HOST:PORT` with a port in 1..65535 and a host that
resolves; 0 <= process-id < num-processes; process 0's port free), and so is a launcher's
environment (every variable JAX reads, as integers). JAX aborts the process with a C++ stack
trace when the coordinator cannot be reached in its time; a watchdog ends it first, after
`timeout_s` seconds, with one line and exit code 2.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import socket
import sys
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

import simulate
from asgd.schema import ConfigError

__all__ = ["Cluster", "SINGLE", "check_address", "check_launcher_environment", "initialize", "launcher"]

#: What JAX reads from each launcher's environment (jax._src.clusters), integers where it parses them.
LAUNCHER_VARIABLES = {
    "slurm": {"SLURM_JOB_ID": int, "SLURM_STEP_NODELIST": str, "SLURM_NTASKS": int, "SLURM_PROCID": int, "SLURM_LOCALID": int},
    "openmpi": {"OMPI_MCA_orte_hnp_uri": str, "OMPI_COMM_WORLD_SIZE": int, "OMPI_COMM_WORLD_RANK": int,
                "OMPI_COMM_WORLD_LOCAL_RANK": int},
}

#: Seconds a host name may take to resolve before the address is refused.
RESOLVE_TIMEOUT_S = 10.0

# Fields of `SimulationResult` with one entry per chain, and the axis that indexes the chains.
_CHAIN_AXIS = {**dict.fromkeys(simulate.BUILT_IN_ESTIMATORS, 1), "diverged": 1, "diverged_at": 1, "trajectory": 2}
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


def check_address(coordinator, *, listen: bool = False) -> tuple[str, int]:
    """`(host, port)` of `--coordinator HOST:PORT` (`[IPv6]:PORT` for an IPv6 address), or a
    `ConfigError`: the form, a port in 1..65535, a host that resolves within RESOLVE_TIMEOUT_S;
    with `listen` (process 0, which runs the coordinator service on that port), a free port."""
    text = coordinator if isinstance(coordinator, str) else ""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", text)
    if not match:
        raise ConfigError(f"--coordinator must be HOST:PORT (e.g. node001:12345, [::1]:12345), got {coordinator!r}")
    host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    port = int(port)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--coordinator {coordinator}: the port must be in 1..65535, got {port}")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        addresses = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout=RESOLVE_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        raise ConfigError(f"--coordinator {coordinator}: the host {host!r} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
    except OSError as error:
        raise ConfigError(f"--coordinator {coordinator}: the host {host!r} does not resolve ({error.strerror or error})") from None
    finally:
        pool.shutdown(wait=False)
    if listen:
        family = addresses[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("::" if family == socket.AF_INET6 else "", port))
            except OSError as error:
                raise ConfigError(
                    f"--coordinator {coordinator}: process 0 runs the coordinator on port {port}, which cannot be "
                    f"used here ({error.strerror or error}); choose another port"
                ) from None
    return host, port


def check_launcher_environment(name: str, environ=None) -> None:
    """Refuse (`ConfigError`, naming the variables) a launcher environment JAX could not use: a
    variable missing or not an integer where JAX parses one (a partial SLURM or Open MPI
    environment, where JAX says only "coordinator_address should be defined")."""
    environ = os.environ if environ is None else environ
    variables = LAUNCHER_VARIABLES[name]
    missing = [key for key in variables if key not in environ]
    if missing:
        raise ConfigError(
            f"this process looks started by {name} with several processes, but its environment lacks {', '.join(missing)}: "
            "start it with srun / mpirun, or pass --coordinator, --num-processes and --process-id"
        )
    for key, kind in variables.items():
        if kind is int:
            try:
                int(environ[key])
            except ValueError:
                raise ConfigError(f"the {name} environment variable {key} = {environ[key]!r} must be an integer") from None
    if name == "openmpi" and not re.search(r"tcp6?://", environ["OMPI_MCA_orte_hnp_uri"]):
        raise ConfigError(f"OMPI_MCA_orte_hnp_uri = {environ['OMPI_MCA_orte_hnp_uri']!r} holds no tcp:// address of the launcher")


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, timeout_s: float = 300) -> Cluster:
    """Join the other processes of a distributed run (see the module docstring), or return
    `SINGLE`. Must run before anything else touches JAX's backends.

    Every check is made before JAX is asked. If the processes have not all met after
    `timeout_s` seconds, the process ends with one line on stderr and exit code 2 (JAX's own
    timeout, later, would abort it with a C++ stack trace)."""
    flags = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    given = [name for name, value in flags.items() if value is not None]
    if given and len(given) < len(flags):
        missing = [name for name in flags if name not in given]
        raise ConfigError(f"{', '.join(given)} given without {', '.join(missing)}: a distributed run needs all three")
    if given:
        for name, value in (("--num-processes", num_processes), ("--process-id", process_id)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if num_processes < 1:
            raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id must be in [0, {num_processes - 1}] (--num-processes {num_processes}), got {process_id}")
        check_address(coordinator, listen=process_id == 0)
        if num_processes == 1:
            return SINGLE
        kwargs = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
        where = f"the coordinator {coordinator} (process {process_id} of {num_processes})"
    elif launcher() is not None:
        check_launcher_environment(launcher())
        kwargs = {}  # JAX's cluster detection reads the coordinator and ranks from the launcher
        where = f"the other processes started by {launcher()}"
    else:
        return SINGLE
    if not timeout_s > 0:
        raise ConfigError(f"--connect-timeout must be a number of seconds > 0, got {timeout_s!r}")
    # CPU processes exchange their slices over gloo; accelerators use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    watchdog = threading.Timer(timeout_s, _give_up, args=(where, timeout_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        # JAX's timeout later than the watchdog's: at its own it aborts the process (SIGABRT).
        jax.distributed.initialize(initialization_timeout=int(timeout_s) + 60, **kwargs)
    except Exception as error:  # e.g. JaxRuntimeError: one line, not a traceback
        raise ConfigError(f"could not join {where}: {type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}") from None
    finally:
        watchdog.cancel()
    return Cluster(jax.process_index(), jax.process_count())


def _give_up(where: str, timeout_s: float) -> None:
    """The watchdog: one line and exit code 2 (the main thread is blocked inside JAX's C++)."""
    sys.stderr.write(
        f"asgd: error: no contact with {where} within {timeout_s:g} s; start every process with the same "
        "--coordinator and --num-processes (or raise --connect-timeout)\n"
    )
    sys.stderr.flush()
    os._exit(2)
