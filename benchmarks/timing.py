"""Timing: competitors run in turns in one process, so a busy machine slows them all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax

__all__ = ["interleaved", "compile_events"]


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Median wall time of each candidate: one warm-up call each, then `repeats` rounds in turn.

    Each call's result is waited for (`jax.block_until_ready`), so asynchronous dispatch cannot
    hide work. **Returns:** `{name: {"median_s", "min_s", "times_s", "warmup_s"}}`.
    """
    warmup = {}
    for name, run in candidates.items():
        start = time.perf_counter()
        jax.block_until_ready(run())
        warmup[name] = time.perf_counter() - start
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "times_s": t, "warmup_s": warmup[name]}
        for name, t in times.items()
    }


class compile_events:
    """Context manager that adds up JAX's compile events: tracing, lowering and XLA compilation.

        with compile_events() as compiled:
            simulate.run(...)
        compiled.count, compiled.seconds
    """

    _EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __enter__(self):
        self.count = 0
        self.seconds = 0.0

        def listener(event, duration, **kwargs):
            if event in self._EVENTS:
                self.seconds += duration
            if event == "/jax/core/compile/backend_compile_duration":
                self.count += 1

        self._listener = listener
        jax.monitoring.register_event_duration_secs_listener(listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)
        return False
