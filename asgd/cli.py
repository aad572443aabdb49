"""The `asgd` command line (also `python -m asgd`).

    asgd reproduce [NAME ...] [--quick] [--replications R] [--out DIR] [--fresh] [--quiet] [HOSTS]
    asgd run CONFIG.toml [--quick] [--replications R] [--out DIR] [--fresh] [--quiet] [HOSTS]
    asgd list
    asgd plot RESULT_DIR
    asgd demo

Bad input (an unknown key, a wrong type, a value out of range, an unreadable file) is reported
in one line naming the key, the value and what is allowed, before any simulation; exit code 2.
An interrupted sweep keeps its finished points; the same command resumes it.
HOSTS: `--coordinator HOST:PORT --num-processes N --process-id I`, or nothing under srun or
mpirun: the chains are split across processes (`asgd.distributed`).

The CLI sits at the end of the data flow (objectives -> simulate -> analysis -> asgd).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import objectives
import simulate
import theory
from analysis.errors import ErrorTable, pool
from asgd import distributed, interrupts, network, replications, result_folder
from asgd.config import NOISE_FAMILIES, OBJECTIVE_KINDS, ConfigError, load_config
from asgd.experiment_figures import draw_figures
from asgd.network_config import NetworkConfig
from asgd.sweep import run_sweep

__all__ = ["main"]

EXPERIMENTS_DIR = Path(__file__).parent / "experiments"


#: Names that stand for several built-in experiments (`asgd reproduce mnist1d` runs both models).
GROUPS = {"mnist1d": ["mnist1d_cnn", "mnist1d_mlp"]}
#: Run only when named (alone or by their group): `asgd reproduce` (and `make demo`) stays minutes long.
ON_REQUEST = {member for members in GROUPS.values() for member in members}


def builtin_experiments() -> dict[str, Path]:
    """The shipped reproductions: name -> config path."""
    return {path.stem: path for path in sorted(EXPERIMENTS_DIR.glob("*.toml"))}


def _format_table(rows: list[dict], horizon: int) -> str:
    """Estimator x step size: mse +- se at the final horizon (simulated rows only), every seed
    pooled by `analysis.pool`: all chains of all seeds as one sample."""
    rows = [r for r in rows if r["n_steps"] == horizon and r.get("horizon", horizon) == horizon and r.get("source", "simulation") == "simulation"]
    if not rows:
        return ""
    rows = pool(ErrorTable(rows)).to_records()
    estimators = list(dict.fromkeys(r["estimator"] for r in rows))
    step_sizes = sorted({r["step_size"] for r in rows})
    lookup = {(r["estimator"], r["step_size"]): r for r in rows}
    header = f"{'step_size':>10} " + " ".join(f"{name:>22}" for name in estimators)
    lines = [header]
    for eta in step_sizes:
        cells = []
        for name in estimators:
            r = lookup.get((name, eta))
            cells.append(f"{r['mse']:>11.4g} +- {r['mse_se']:<8.2g}" if r else f"{'':>22}")
        lines.append(f"{eta:>10.4g} " + " ".join(cells))
    return "\n".join(lines)


def _run_network(config, out_dir: Path, *, fresh: bool, quiet: bool) -> None:
    outcome = network.run_network(config, out_dir, fresh=fresh, quiet=quiet)
    written = network.draw_network_figures(out_dir)
    print(f"\n== {config.name}: {config.description}")
    print(f"   {config.n_seeds} seeds, T = {config.n_steps} minibatch steps (batch {config.batch_size}); mean +- se across seeds")
    for metric in ("test_accuracy", "hessian_trace"):
        print(f"   {metric}:")
        print(network.format_table(outcome.rows, metric))
    if outcome.paired:
        baseline = outcome.paired[0]
        print(f"   test_accuracy minus the tuned baseline ({baseline['baseline']} at eta = {baseline['baseline_step_size']:g}),"
              " paired over seeds, mean [95% CI]:")
        print(network.format_paired_table(outcome.paired, "test_accuracy"))
    resumed = f", {outcome.resumed} training run(s) resumed from disk" if outcome.resumed else ""
    print(f"   {outcome.wall_time:.1f} s{resumed}; results in {out_dir}/ (results.csv, arrays.npz, metadata.json"
          + "".join(f", {p.name}" for p in written) + ")")


def _run_replicated(config, out_dir: Path, count: int, *, fresh: bool, quiet: bool) -> None:
    outcome = replications.run_replicated(config, out_dir, replications=count, fresh=fresh, quiet=quiet)
    print(f"\n== {config.name}: {config.description}")
    print(f"   {count} replications (data seed, training seeds and initialisations drawn anew; replications.csv) x "
          f"{config.replication_seeds or config.n_seeds} seeds, T = {config.n_steps}")
    print("   test_accuracy minus the tuned cosine baseline (each replication's own): pooled mean [95% CI over the "
          "replications' means] and in how many replications it is significantly above 0:")
    print(replications.format_pooled_table(outcome.pooled))
    print(f"   {outcome.wall_time:.1f} s; results in {out_dir}/ (pooled.csv, replications.csv, windows.csv, "
          "window_frequencies.csv, summary.md, replication_*/)")


def _replications(config, requested: int | None) -> int:
    """How many replications to run: `--replications`, else the config's `[replicate]` table."""
    if requested is None:
        return getattr(config, "replications", 1)
    if requested < 1:
        raise ConfigError(f"--replications {requested}: must be an integer >= 1")
    if not isinstance(config, NetworkConfig):
        raise ConfigError(f"--replications {requested}: only network experiments (kind = \"network\") replicate; {config.name!r} is a sweep")
    return requested


def _run_config(config, out_dir: Path, *, fresh: bool, quiet: bool, cluster=distributed.SINGLE, count: int = 1) -> None:
    if isinstance(config, NetworkConfig):
        if cluster.is_writer and count > 1:
            _run_replicated(config, out_dir, count, fresh=fresh, quiet=quiet)
        elif cluster.is_writer:  # its seeds are vmapped in one program: process 0 runs it whole
            _run_network(config, out_dir, fresh=fresh, quiet=quiet)
        return None
    if config.n_chains < cluster.num_processes:
        raise ConfigError(f"run.n_chains = {config.n_chains} is fewer than the {cluster.num_processes} processes; give each process at least one chain")

    outcome = run_sweep(config, out_dir, fresh=fresh, quiet=quiet, cluster=cluster)
    if outcome is None:
        return None
    written = draw_figures(out_dir)
    horizon = max(config.horizons)
    print(f"\n== {config.name}: {config.description}")
    seeds = config.seeds
    chains = f"{config.n_chains} chains" if len(seeds) == 1 else (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}) x {config.n_chains} = {len(seeds) * config.n_chains} chains, "
        "pooled: mean and se over all chains as one sample")
    print(f"   error to the {config.target_kind} target after T = {horizon} steps, {chains} (mse +- se)")
    print(_format_table(outcome.rows, horizon))
    law = sorted((r["step_size"], r["law_regime"]) for r in outcome.rows if r.get("source") == "stationary" and r["estimator"] == "x" and r["n_steps"] == horizon)
    if law:
        reached = [f"{eta:g}" for eta, regime in law if regime == "stationary"]
        print("   exact law at each checkpoint from x0: rows with source = law in results.csv")
        print(f"   exact long-run law: rows with source = stationary; a run of T = {horizon} steps reaches it at eta = {', '.join(reached) or 'none'}")
    resumed = f", {outcome.resumed} sweep point(s) resumed from disk" if outcome.resumed else ""
    print(f"   {outcome.wall_time:.1f} s{resumed}; results in {out_dir}/ (results.csv, arrays.npz, metadata.json"
          + "".join(f", {p.name}" for p in written) + ")")


def cmd_reproduce(args) -> int:
    available = builtin_experiments()
    requested = args.names or [name for name in available if name not in ON_REQUEST]
    names = [member for name in requested for member in GROUPS.get(name, [name])]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"experiment {unknown[0]!r}: unknown; built-in experiments: {sorted(available)}, groups: {sorted(GROUPS)}")
    cluster = _cluster(args)
    configs = [load_config(available[name], quick=args.quick) for name in names]  # validate all first
    counts = [_replications(config, args.replications) for config in configs]
    out_root = Path(args.out)
    for config, count in zip(configs, counts):
        _run_config(config, out_root / config.name, fresh=args.fresh, quiet=args.quiet, cluster=cluster, count=count)
    return 0


def cmd_run(args) -> int:
    cluster = _cluster(args)
    config = load_config(args.config, quick=args.quick)
    count = _replications(config, args.replications)
    _run_config(config, Path(args.out) / config.name, fresh=args.fresh, quiet=args.quiet, cluster=cluster, count=count)
    return 0


def _cluster(args) -> distributed.Cluster:
    """Join a distributed run when the flags or a cluster launcher say so (before JAX starts)."""
    return distributed.initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.connect_timeout)


def cmd_list(args) -> int:
    def first_line(obj) -> str:
        return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""

    print("objectives (objective.kind):")
    for name, constructor in sorted(OBJECTIVE_KINDS.items()):
        print(f"  {name:<20} {first_line(constructor)}")
    print(f"  {'python':<20} your own: function = \"module:make_objective\" returning an Objective, [objective.args]")
    print(f"  {'(any kind)':<20} search_box = [lower, upper]: where minimizers and v*(eta) are searched (needed by python objectives)")
    print("noise models (noise.family):")
    for name, constructor in sorted(NOISE_FAMILIES.items()):
        print(f"  {name:<20} {first_line(constructor)}")
    print("built-in experiments (asgd reproduce NAME):")
    for name, path in builtin_experiments().items():
        print(f"  {name:<20} {load_config(path).description}")
    return 0


def cmd_plot(args) -> int:
    folder = Path(args.result_dir)
    if not (folder / "results.csv").exists() or not (folder / "metadata.json").exists():
        raise ConfigError(f"{str(folder)!r} is not a result folder (results.csv and metadata.json are missing)")
    is_network = result_folder.read_metadata(folder).get("kind") == "network"
    for path in (network.draw_network_figures if is_network else draw_figures)(folder):
        print(path)
    return 0


def cmd_demo(args) -> int:
    print(demo(n_chains=args.chains, n_steps=args.steps, seed=args.seed))
    return 0


def demo(n_chains: int = 4096, n_steps: int = 2000, seed: int = 0) -> str:
    """SGD on an ill-conditioned 2-D quadratic against the exact law of every estimator."""
    hessian, center, x0 = np.diag([1.0, 0.1]), np.array([1.0, -1.0]), np.array([3.0, 3.0])
    f = objectives.quadratic(hessian, center, name="ill-conditioned quadratic")
    noise = simulate.noise.gaussian(1.0)
    step_sizes = [0.05, 0.2, 1.0]
    start = time.perf_counter()
    result = simulate.run(f, step_sizes=step_sizes, n_steps=n_steps, n_chains=n_chains, x0=x0, noise=noise, seed=seed)
    elapsed = time.perf_counter() - start
    lines = [
        f"{f.name}: H = diag(1, 0.1), Gaussian noise (scale 1), T = {n_steps}, {n_chains} chains per step size",
        f"simulated in {elapsed:.2f} s (compile included)",
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asgd", description="Averaged SGD as SGD on a smoothed objective.")
    commands = parser.add_subparsers(dest="command", required=True)

    def sweep_options(sub, out_default):
        sub.add_argument("--quick", action="store_true", help="small sizes: the whole set in minutes on 2 CPU cores")
        sub.add_argument("--out", default=out_default, help=f"results go to OUT/<experiment name>/ (default {out_default})")
        sub.add_argument("--fresh", action="store_true", help="start over: the folder's previous results are removed (in one rename) instead of resumed")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        sub.add_argument("--replications", type=int, metavar="R", help="network experiments: R independent draws of the data "
                         "and training seeds, pooled (default: the config's [replicate] table, else 1)")
        hosts = sub.add_argument_group(
            "several processes (hosts)",
            "split every sweep point's chains across processes (jax.distributed); process 0 writes "
            "the folder, byte-identical to one process. Under srun or mpirun with more than one task "
            "the launcher's environment is used and these flags are not needed.",
        )
        hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0's coordinator")
        hosts.add_argument("--num-processes", type=int, metavar="N", help="how many processes share the run")
        hosts.add_argument("--process-id", type=int, metavar="I", help="this process's rank, 0 .. N-1")
        hosts.add_argument("--connect-timeout", type=float, default=300.0, metavar="SECONDS",
                           help="give up (one line, exit 2) if the processes have not all met within SECONDS (default 300)")

    reproduce = commands.add_parser("reproduce", help="run the built-in reproductions")
    reproduce.add_argument("names", nargs="*", help="experiments or groups to run (default: all but the mnist1d group, which runs when named; see asgd list)")
    sweep_options(reproduce, "results")
    reproduce.set_defaults(handler=cmd_reproduce)

    run = commands.add_parser("run", help="run a sweep described in a TOML config")
    run.add_argument("config", help="path to CONFIG.toml")
    sweep_options(run, "results")
    run.set_defaults(handler=cmd_run)

    listing = commands.add_parser("list", help="objectives, noise models and built-in experiments")
    listing.set_defaults(handler=cmd_list)

    plot = commands.add_parser("plot", help="re-draw the figures of a result folder without simulating")
    plot.add_argument("result_dir")
    plot.set_defaults(handler=cmd_plot)

    demo_parser = commands.add_parser("demo", help="a small experiment against exact theory (seconds)")
    demo_parser.add_argument("--chains", type=int, default=4096, help="chains per step size (default 4096)")
    demo_parser.add_argument("--steps", type=int, default=2000, help="SGD steps (default 2000)")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.set_defaults(handler=cmd_demo)
    return parser


def _one_line_warning(command: str):
    """`warnings.showwarning` for the CLI: `asgd COMMAND: warning: message`, one line per warning."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"asgd {command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with interrupts.recorded(), warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            code = args.handler(args)
            interrupts.check()  # a Ctrl-C that Python dropped (see asgd.interrupts) still counts
        return code
    except ValueError as error:  # ConfigError, ResultFolderError and the library's own argument checks
        print(f"asgd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"asgd {args.command}: error: out of memory; use fewer chains (run.n_chains, run.chunk_size) or a "
              "smaller grid (theory.n_grid)", file=sys.stderr)
        return 2
    except OSError as error:  # a file or folder the checks did not foresee: one line naming it
        where = f"{error.filename!s}: " if error.filename else ""
        print(f"asgd {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nasgd {args.command}: interrupted; finished sweep points are saved, "
            "run the same command again to resume (--fresh to start over)",
            file=sys.stderr,
        )
        return exit_now(130)


def exit_now(code: int) -> int:
    """End the process with `code` at once, after flushing stdout and stderr.

    After a Ctrl-C, XLA's compiler and runtime threads may still be running; the interpreter's
    normal teardown then frees objects under them and the process segfaults (exit -11 instead
    of 130). Every file is already complete or absent (atomic writes), so there is nothing left
    to clean up and `os._exit` is safe.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
