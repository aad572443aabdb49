"""Benchmarks of the engine (issue 7): speed against references measured in the same process.

    python -m benchmarks            # full sizes, a few minutes (make bench)
    python -m benchmarks --quick    # small sizes, seconds: a smoke run, not figures to report

Prints a table and writes the figures to `benchmarks/out/bench.json` (or `--out`). Results and
how to read them: benchmarks/README.md. Modules, one job each:

- `timing`: interleaved repetitions, medians, compile time.
- `references`: what `simulate.run` is compared with (NumPy loops, bulk noise, matrix products).
- `cases`: the cases of the issue, each a dict of figures.
- `memory`: peak resident memory of one run, in a separate process.
- `report`: the targets and the printed table.

Benchmarks are not tests: nothing fails because the machine is slow or busy.
"""
