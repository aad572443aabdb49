"""Case 4: peak resident memory of one `simulate.run`, each configuration in a fresh process.

    python -m benchmarks.memory --n-steps 100000 --n-chains 4096     (prints one JSON line)

The peak (VmHWM, the high-water mark of resident memory, from /proc/self/status; ru_maxrss where
there is no /proc) covers the whole process: Python, JAX, the compiled program and the run.
The resident memory after importing and before the run is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

__all__ = ["peak_rss", "measure"]


def _resident_mib() -> dict:
    """{"current_mib", "peak_mib"} of this process."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        kib = lambda name: int(fields[name].split()[0])
        return {"current_mib": kib("VmRSS") / 1024, "peak_mib": kib("VmHWM") / 1024}
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {"current_mib": float("nan"), "peak_mib": peak}


def measure(n_steps: int, n_chains: int, n_step_sizes: int) -> dict:
    """Run sharp_flat in this process and report its memory (call in a fresh process)."""
    import numpy as np

    import objectives
    import simulate

    before = _resident_mib()
    simulate.run(
        objectives.sharp_flat(),
        step_sizes=np.geomspace(0.01, 0.4, n_step_sizes),
        n_steps=n_steps,
        n_chains=n_chains,
        x0=[-1.0],
    )
    after = _resident_mib()
    return {
        "n_steps": n_steps,
        "n_chains": n_chains,
        "n_step_sizes": n_step_sizes,
        "resident_before_run_mib": before["current_mib"],
        "peak_resident_mib": after["peak_mib"],
    }


def peak_rss(n_steps: int, n_chains: int, n_step_sizes: int) -> dict:
    """`measure` in a separate Python process, so that each peak is that run's alone."""
    command = [sys.executable, "-m", "benchmarks.memory", "--n-steps", str(n_steps), "--n-chains", str(n_chains), "--n-step-sizes", str(n_step_sizes)]
    root = Path(__file__).resolve().parents[1]  # where `python -m benchmarks.memory` resolves
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--n-steps", type=int, required=True)
    parser.add_argument("--n-chains", type=int, required=True)
    parser.add_argument("--n-step-sizes", type=int, default=8)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.n_steps, args.n_chains, args.n_step_sizes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
