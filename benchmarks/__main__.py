"""`python -m benchmarks [--quick] [--out PATH] [--cases 1,2,3,4,5,6,7]`: run, print, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import objectives
import simulate
from benchmarks import cases, memory
from benchmarks.report import case_table, check_targets, machine_line, targets_table

#: Sizes. Full: the issue's. NumPy's loop runs fewer steps (its per-step cost does not change
#: with the number of steps), the dense case 1,000 steps (10,000 take minutes per repetition),
#: the memory case 4,096 chains (10^5 steps of 16,384 chains take minutes). Quick: seconds, and
#: only sharp_flat's compile time.
SIZES = {
    "full": dict(chains=16_384, steps=10_000, numpy_steps=1_000, repeats=3, dense=(1_024, 1_000), memory=(1_000, 100_000, 4_096), compile=(256, 1_000, None), stationary=(4_001, 16, 201, 1), smoothed=(5, 4_096, 10_000), minibatch=(512, 20, 16, 512, 512), finite=(2_001, 8_192, 20_000, 101, tuple(np.geomspace(0.01, 0.3, 8)))),
    "quick": dict(chains=256, steps=128, numpy_steps=32, repeats=1, dense=(32, 20), memory=(50, 500, 64), compile=(16, 64, ("sharp_flat",)), stationary=(401, 4, 41, 0), smoothed=(2, 64, 100), minibatch=(64, 4, 8, 32, 64), finite=(401, 256, 500, 31, (0.3,))),
}
STEP_SIZES = np.geomspace(0.01, 0.4, 8)  # sharp_flat: both sides of its critical step size
VALLEY_STEP_SIZES = np.geomspace(0.005, 0.1, 8)  # valley_2d: stable near its widest point
DENSE_STEP_SIZES = np.geomspace(0.01, 0.1, 8)  # dense quadratic: eta * largest curvature < 0.5


def cases_to_run(selected: set[int], size: dict) -> dict:
    """{figures key: a function measuring that case}, for the selected case numbers."""
    chains, steps, numpy_steps, repeats = size["chains"], size["steps"], size["numpy_steps"], size["repeats"]
    dense_chains, dense_steps = size["dense"]
    short, long, memory_chains = size["memory"]
    compile_chains, compile_steps, compile_names = size["compile"]

    def memory_case():
        runs = {"short": memory.peak_rss(short, memory_chains, STEP_SIZES.size), "long": memory.peak_rss(long, memory_chains, STEP_SIZES.size)}
        runs["peak_ratio"] = runs["long"]["peak_resident_mib"] / runs["short"]["peak_resident_mib"]
        return runs

    everything = {
        1: ("case1_sharp_flat", lambda: cases.throughput(
            objectives.sharp_flat(), x0=[-1.0], step_sizes=STEP_SIZES, n_chains=chains, n_steps=steps,
            numpy_steps=numpy_steps, repeats=repeats)),
        2: ("case2_valley_2d", lambda: cases.throughput(
            objectives.valley_2d(), x0=[0.5, 0.125], step_sizes=VALLEY_STEP_SIZES, n_chains=chains, n_steps=steps,
            numpy_steps=numpy_steps, repeats=repeats)),
        3: ("case3_dense_quadratic", lambda: cases.dense_quadratic(
            dim=100, step_sizes=DENSE_STEP_SIZES, n_chains=dense_chains, n_steps=dense_steps, repeats=repeats)),
        4: ("case4_memory", memory_case),
        5: ("case5_compile", lambda: cases.compile_times(n_chains=compile_chains, n_steps=compile_steps, names=compile_names)),
        6: ("case6_stationary_law", lambda: cases.stationary_law_times(
            n_grid_1d=size["stationary"][0], n_step_sizes=size["stationary"][1], n_grid_2d=size["stationary"][2],
            repeats=size["stationary"][3])),
        7: ("case7_smoothed_solution", lambda: cases.smoothed_solution_times(
            n_step_sizes=size["smoothed"][0], n_chains=size["smoothed"][1], n_steps=size["smoothed"][2])),
        8: ("case8_minibatch", lambda: cases.minibatch_paths(
            n_examples=size["minibatch"][0], dim=size["minibatch"][1], batch_size=size["minibatch"][2],
            n_chains=size["minibatch"][3], n_steps=size["minibatch"][4], repeats=repeats)),
        9: ("case9_finite_time_law", lambda: cases.finite_time_law_times(
            n_grid=size["finite"][0], n_chains=size["finite"][1], n_steps=size["finite"][2], n_grid_2d=size["finite"][3],
            step_sizes_2d=size["finite"][4])),
    }
    return dict(everything[number] for number in sorted(selected))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Benchmarks of simulate.run (issue 7).")
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: a smoke run, not figures to report")
    parser.add_argument("--out", default="benchmarks/out/bench.json", help="where to write the JSON figures")
    parser.add_argument("--cases", default="1,2,3,4,5", help="comma-separated case numbers (default: 1-5; on request 6, the exact stationary law of issue 12, 7, analysis.smoothed_solution of issue 14, 8, minibatch/SAM/EMA runs of issue 13, and 9, the finite-time law of issue 22)")
    args = parser.parse_args(argv)
    try:
        selected = {int(c) for c in args.cases.split(",")}
    except ValueError:
        parser.error(f"--cases must be comma-separated numbers from 1 to 9, got {args.cases!r}")
    if not selected <= {1, 2, 3, 4, 5, 6, 7, 8, 9}:
        parser.error(f"--cases must be numbers from 1 to 9, got {sorted(selected)}")
    mode = "quick" if args.quick else "full"

    started, load_before = time.perf_counter(), os.getloadavg()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = {}
    for key, measure in cases_to_run(selected, SIZES[mode]).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", simulate.DivergenceWarning)
            figures[key] = measure()
        print(case_table(key, figures[key]), flush=True)
        path.write_text(json.dumps(figures, indent=2, default=float) + "\n")  # keep what is measured so far
    figures["targets"] = check_targets(figures)
    figures["machine"] = {
        "mode": mode,
        "command": "python -m benchmarks" + (" --quick" if args.quick else "") + (f" --cases {args.cases}" if args.cases != "1,2,3,4,5" else ""),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "total_s": time.perf_counter() - started,
        # Other processes slow the 2-thread engine more than the 1-thread NumPy loop: read
        # the figures with the load in mind (1-minute load average, before and after).
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
    }
    print(machine_line(figures["machine"]))
    print(targets_table(figures["targets"]))
    path.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
