"""`asgd run` across processes: two processes on localhost (jax.distributed, gloo) write the
same result folder, byte for byte, as one process; the chain split, the launcher detection and
the flags' errors."""

import os
import re
import socket
import subprocess

import numpy as np
import pytest

from asgd import distributed
from asgd.cli import main
from support import asgd, free_port, write_config

#: The shared sharp_flat config with an odd chain count (the slices differ in size), two seeds
#: and checkpoints: every per-chain field of a result goes through the gather.
CONFIG = dict(name="hosts", run={"n_chains": 13, "seeds": [0, 3]}, target={"kind": "minimizer"})


def _asgd(*args):
    # One CPU device per process (no XLA_FLAGS), as on most hosts.
    return asgd(*args, env={"JAX_PLATFORMS": "cpu", "XLA_FLAGS": None}, popen=True)


def _finish(processes, timeout=300):
    try:
        outputs = [p.communicate(timeout=timeout) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        pytest.fail(f"the run did not finish in {timeout} s")
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def _files(folder):
    """Every file of a result folder but metadata.json (wall time, command, process count): its
    bytes, or for `.npz` files (zip entries carry their write time) every array's bytes."""
    def content(path):
        if path.suffix != ".npz":
            return path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            return {name: (data[name].dtype.str, data[name].shape, data[name].tobytes()) for name in data.files}

    return {str(p.relative_to(folder)): content(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "metadata.json"}


def test_two_processes_write_the_folder_of_one_process_byte_for_byte(tmp_path):
    config = tmp_path / "hosts.toml"
    write_config(config, **CONFIG)
    port = str(free_port())
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    split = [_asgd("run", str(config), "--out", str(tmp_path / "two"), "--quiet", *flags, "--process-id", str(i))
             for i in (0, 1)]
    one = _asgd("run", str(config), "--out", str(tmp_path / "one"), "--quiet")
    (out0, _), (out1, _), (single, _) = _finish([*split, one])

    two, reference = _files(tmp_path / "two" / "hosts"), _files(tmp_path / "one" / "hosts")
    assert {"results.csv", "arrays.npz", "points/seed0_T200.npz", "points/seed3_T200.npz"} <= set(reference)
    assert two.keys() == reference.keys()
    for name in reference:
        assert two[name] == reference[name], name
    assert "== hosts" in out0 and "== hosts" not in out1  # process 0 alone reports
    assert '"processes": 2' in (tmp_path / "two" / "hosts" / "metadata.json").read_text()


@pytest.mark.parametrize("n_processes", [1, 2, 3, 5, 13])
@pytest.mark.parametrize("n_chains", [13, 64])
def test_chain_slices_partition_the_chains_in_order(n_processes, n_chains):
    slices = [distributed.Cluster(p, n_processes).chain_slice(n_chains) for p in range(n_processes)]
    covered = [chain for first, count in slices for chain in range(first, first + count)]
    assert covered == list(range(n_chains))
    counts = [count for _, count in slices]
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, None),  # the batch script itself
    ({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}, None),
    ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"}, "slurm"),
    ({"OMPI_COMM_WORLD_SIZE": "1"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, "openmpi"),
])
def test_launcher_is_detected_only_with_several_tasks(environ, expected):
    assert distributed.launcher(environ) == expected


@pytest.mark.parametrize("flags, message", [
    (["--coordinator", "127.0.0.1:1234"], "--coordinator given without --num-processes, --process-id"),
    (["--num-processes", "2", "--process-id", "0"], "without --coordinator"),
    (["--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"], "--num-processes must be >= 1, got 0"),
    (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], r"--process-id must be in \[0, 1\]"),
])
def test_incomplete_or_inconsistent_flags_are_refused_before_jax_starts(tmp_path, capsys, flags, message):
    config = tmp_path / "hosts.toml"
    write_config(config, **CONFIG)
    assert main(["run", str(config), "--out", str(tmp_path), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgd run: error: ") and re.search(message, err), err
    assert not (tmp_path / "hosts").exists()


# ---- hostile host flags and environments (issue 26) ------------------------------------------


@pytest.fixture
def hosts_config(tmp_path):
    config = tmp_path / "hosts.toml"
    write_config(config, **CONFIG)
    return config


@pytest.mark.parametrize("coordinator, process_id, message", [
    ("localhost:abc", 1, r"--coordinator must be HOST:PORT \(e.g. node001:12345, \[::1\]:12345\), got 'localhost:abc'"),  # was JaxRuntimeError
    ("localhost", 1, "--coordinator must be HOST:PORT .*got 'localhost'"),  # was IndexError
    ("localhost:70000", 1, "the port must be in 1..65535, got 70000"),
    ("256.1.1.1:1234", 0, "the host '256.1.1.1' does not resolve"),  # was 309 s of silence, then SIGABRT
    (":1234", 1, "--coordinator must be HOST:PORT"),
])
def test_a_bad_coordinator_address_is_refused_before_jax_starts(hosts_config, tmp_path, capsys, coordinator, process_id, message):
    flags = ["--coordinator", coordinator, "--num-processes", "2", "--process-id", str(process_id)]
    assert main(["run", str(hosts_config), "--out", str(tmp_path), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgd run: error: ") and err.count("\n") == 1 and re.search(message, err), err


def test_process_0_refuses_a_coordinator_port_already_in_use(hosts_config, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"]
        assert main(["run", str(hosts_config), "--out", str(tmp_path), "--quiet", *flags]) == 2
    assert f"process 0 runs the coordinator on port {port}, which cannot be used here" in capsys.readouterr().err


@pytest.mark.parametrize("environ, message", [
    ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0"}, "started by slurm .* lacks SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS, SLURM_LOCALID"),
    ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "SLURM_JOB_ID": "x7", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "2",
      "SLURM_LOCALID": "0"}, "SLURM_JOB_ID = 'x7' must be an integer"),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, "started by openmpi .* lacks OMPI_MCA_orte_hnp_uri, OMPI_COMM_WORLD_LOCAL_RANK"),
])
def test_a_partial_launcher_environment_names_what_is_missing(hosts_config, tmp_path, capsys, monkeypatch, environ, message):
    # Was: "coordinator_address should be defined" from inside JAX.
    for key in list(os.environ):
        if key.startswith(("SLURM_", "OMPI_")):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert main(["run", str(hosts_config), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgd run: error: ") and re.search(message, err), err


def test_an_unreachable_coordinator_fails_within_the_stated_time_with_one_line(hosts_config, tmp_path):
    # Process 1 of 2 with nobody listening: JAX would wait its timeout, then abort (SIGABRT, rc 134,
    # a C++ stack trace). The watchdog ends it at --connect-timeout with one line and exit code 2.
    process = _asgd("run", str(hosts_config), "--out", str(tmp_path), "--quiet", "--coordinator", f"127.0.0.1:{free_port()}",
                    "--num-processes", "2", "--process-id", "1", "--connect-timeout", "2")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert err.strip().splitlines() == [
        "asgd: error: no contact with the coordinator 127.0.0.1:" + err.split("127.0.0.1:")[1].split(" ")[0]
        + " (process 1 of 2) within 2 s; start every process with the same --coordinator and --num-processes (or raise --connect-timeout)"
    ], err
