"""The targets of issue 7 and the printed table of figures."""

from __future__ import annotations

__all__ = ["TARGETS", "case_table", "check_targets", "machine_line", "table", "targets_table"]

#: (name, what is compared, threshold): a target is met when the measured value >= threshold
#: (for memory, when the ratio <= threshold).
TARGETS = (
    ("case1_vs_numpy_loop", "sharp_flat: simulate.run rate / NumPy-loop rate", 2.0),
    ("case1_vs_bulk_noise", "sharp_flat: bulk-noise time (C*T Gaussians, one jax.random.normal) / simulate.run time", 0.8),
    ("case3_vs_matmul", "dense 100-D quadratic: matmul-bound time / simulate.run time", 0.5),
    ("case4_memory", "peak RSS at 10^5 steps / peak RSS at 10^3 steps", 1.1),
    ("compile_once", "recompilations for a new sweep point of the same shapes (all cases)", 0),
    ("compile_time", "slowest first-call compile time over the built-in objectives, seconds", 5.0),
    ("stationary_1d", "theory.stationary_law, sharp_flat, 16 step sizes x 4,001 cells, seconds", 10.0),
    ("stationary_2d", "theory.stationary_law, 2-D wells, one step size, 201 x 201 cells, seconds", 60.0),
    ("smoothed_solution_2d", "analysis.smoothed_solution, 2-D from_function wells, 5 step sizes, first call (compiles included), seconds", 5.0),
)

_AT_MOST = ("case4_memory", "compile_once", "compile_time", "stationary_1d", "stationary_2d", "smoothed_solution_2d")


def check_targets(figures: dict) -> dict:
    """{target: {"measured", "threshold", "met", "what"}} for the targets the figures cover."""
    measured = {}
    if "case1_sharp_flat" in figures:
        case1 = figures["case1_sharp_flat"]
        measured["case1_vs_numpy_loop"] = case1["speedup_vs_numpy_loop"]
        measured["case1_vs_bulk_noise"] = case1["fraction_of_bulk_noise_bound"]
    if "case3_dense_quadratic" in figures:
        measured["case3_vs_matmul"] = figures["case3_dense_quadratic"]["fraction_of_matmul_bound"]
    if "case4_memory" in figures:
        measured["case4_memory"] = figures["case4_memory"]["peak_ratio"]
    sweeps = [c["recompilations_new_sweep_point"] for c in figures.values() if isinstance(c, dict) and "recompilations_new_sweep_point" in c]
    sweeps += [c["recompilations_new_sweep_point"] for c in figures.get("case5_compile", {}).values()]
    if sweeps:
        measured["compile_once"] = max(sweeps)
    if "case5_compile" in figures:
        measured["compile_time"] = max(c["compile_s"] for c in figures["case5_compile"].values())
    case6 = figures.get("case6_stationary_law")
    if case6 and (case6["n_grid_1d"], case6["n_step_sizes"], case6["n_grid_2d"]) == (4_001, 16, 201):  # the sizes only
        measured["stationary_1d"] = case6["one_d_s"]
        measured["stationary_2d"] = case6["two_d_s"]
    case7 = figures.get("case7_smoothed_solution")
    if case7 and case7["n_step_sizes"] == 5:  # the size only
        measured["smoothed_solution_2d"] = case7["smoothed_solution_first_call_s"]
    out = {}
    for name, what, threshold in TARGETS:
        if name not in measured:
            continue
        value = measured[name]
        met = value <= threshold if name in _AT_MOST else value >= threshold
        out[name] = {"measured": value, "threshold": threshold, "met": bool(met), "what": what}
    return out


def _rate(value: float) -> str:
    return f"{value:.3g}"


def machine_line(machine: dict) -> str:
    return (
        f"{machine['command']}: jax {machine['jax']} on {machine['backend']} ({machine['cpu_count']} CPUs), "
        f"load average {machine['load_average_before_after'][0]:.1f} before, {machine['load_average_before_after'][1]:.1f} after"
    )


def case_table(key: str, c: dict) -> str:
    """One case's figures as plain text (rates in chain-steps/s, times in seconds)."""
    if key in ("case1_sharp_flat", "case2_valley_2d"):
        label = {"case1_sharp_flat": "1. sharp_flat 1-D", "case2_valley_2d": "2. valley_2d 2-D"}[key]
        lines = [
            f"{label}: {c['n_step_sizes']} step sizes x {c['n_chains']} chains x {c['n_steps']} steps",
            f"  simulate.run           {c['simulate_run_s']:8.2f} s   {_rate(c['simulate_run_chain_steps_per_s'])} chain-steps/s   (compile {c['compile_s']:.2f} s, first call {c['first_call_s']:.2f} s)",
            f"  NumPy loop             {'':8s}     {_rate(c['numpy_loop_chain_steps_per_s'])} chain-steps/s   ({c['numpy_loop_steps']} steps)   -> simulate.run is {c['speedup_vs_numpy_loop']:.2f}x",
            f"  NumPy loop, the engine's noise and XLA's gradient"
            f"  {_rate(c['numpy_loop_engine_noise_chain_steps_per_s'])} chain-steps/s   -> simulate.run is {c['speedup_vs_numpy_loop_engine_noise']:.2f}x",
            f"  bulk noise, C*T*d = {c['gaussians_drawn']:.3g} Gaussians:",
            f"    jax.random.normal        {c['jax_bulk_normal_s']:8.2f} s   -> simulate.run reaches {100 * c['fraction_of_bulk_noise_bound']:.0f}% of this bound",
            f"    NumPy standard_normal    {c['numpy_bulk_normal_s']:8.2f} s",
            f"  bulk noise, S*C*T*d (no common random numbers), S x the above: {c['jax_bulk_normal_per_chain_step_s']:.2f} s -> {100 * c['fraction_of_bulk_noise_bound_per_chain_step']:.0f}%",
            f"  parts of the engine's work alone: gradients {c['gradients_alone_s']:.2f} s + its noise {c['engine_noise_alone_s']:.2f} s"
            f" = {c['gradients_alone_s'] + c['engine_noise_alone_s']:.2f} s; the rest (sums, checks, records) ~{c['simulate_run_s'] - c['gradients_alone_s'] - c['engine_noise_alone_s']:.2f} s",
        ]
    elif key == "case3_dense_quadratic":
        lines = [
            f"3. dense {c['dim']}-D quadratic: {c['n_step_sizes']} step sizes x {c['n_chains']} chains x {c['n_steps']} steps",
            f"  simulate.run           {c['simulate_run_s']:8.2f} s   {_rate(c['simulate_run_chain_steps_per_s'])} chain-steps/s   (compile {c['compile_s']:.2f} s)",
            f"  matmul bound           {c['matmul_bound_s']:8.2f} s   ({c['matmul_bound_gflops']:.0f} GFLOP/s)   -> simulate.run reaches {100 * c['fraction_of_matmul_bound']:.0f}%",
            f"  gradient as (x-c) H^T  {c['simulate_run_row_major_gradient_s']:8.2f} s   -> {100 * c['fraction_of_matmul_bound_row_major_gradient']:.0f}% of the bound",
            f"  its noise alone: C*T*d Gaussians in one jax.random.normal {c['jax_bulk_normal_s']:.2f} s, as the engine draws them {c['engine_noise_alone_s']:.2f} s",
        ]
    elif key == "case4_memory":
        lines = [f"4. peak resident memory, {c['short']['n_step_sizes']} step sizes x {c['short']['n_chains']} chains (separate processes)"]
        for run in (c["short"], c["long"]):
            lines.append(f"  {run['n_steps']:>7d} steps: peak {run['peak_resident_mib']:7.0f} MiB   (before the run {run['resident_before_run_mib']:.0f} MiB)")
        lines.append(f"  ratio {c['peak_ratio']:.3f}")
    elif key == "case5_compile":
        lines = ["5. first-call compile time (tracing + lowering + XLA), recompilations for a new sweep point"]
        for name, compiled in c.items():
            lines.append(f"  {name:24s} {compiled['compile_s']:6.2f} s   recompilations {compiled['recompilations_new_sweep_point']}")
    elif key == "case6_stationary_law":
        lines = [
            "6. theory.stationary_law (exact long-run law; coarse grid, Poisson equation and spectral gap included)",
            f"  1-D sharp_flat, {c['n_step_sizes']} step sizes x {c['n_grid_1d']} cells: {c['one_d_s']:7.2f} s (first call {c['one_d_first_call_s']:.2f} s); solvers {c['one_d_methods']}",
            f"  2-D wells, one step size, {c['n_grid_2d']} x {c['n_grid_2d']} cells:   {c['two_d_s']:7.2f} s (first call {c['two_d_first_call_s']:.2f} s)",
        ]
    elif key == "case7_smoothed_solution":
        lines = [f"7. v*(eta) for a 2-D from_function double well, {c['n_step_sizes']} step sizes, beside simulating it ({c['n_chains']} chains x {c['n_steps']} steps)"]
        for name, label in (("smoothed_solution", "analysis.smoothed_solution"), ("simulate_run", "simulate.run")):
            lines.append(
                f"  {label:27s} first call {c[name + '_first_call_s']:6.2f} s (compile {c[name + '_compile_s']:.2f} s), "
                f"second call {c[name + '_second_call_s']:6.2f} s, recompilations {c[name + '_recompilations_new_sweep_point']}"
            )
    elif key == "case8_minibatch":
        lines = [
            f"8. minibatch/SAM/EMA runs: {c['dim']}-D least squares, {c['n_examples']} examples, batch {c['batch_size']}, "
            f"{c['n_step_sizes']} step sizes x {c['n_chains']} chains x {c['n_steps']} steps",
            f"  additive noise: SGD + EMA {c['additive_sgd_ema_s']:.2f} s, SAM {c['additive_sam_s']:.2f} s",
            f"  minibatches without replacement: SGD {c['minibatch_sgd_s']:.2f} s, SGD + EMA {c['minibatch_sgd_ema_s']:.2f} s, SAM {c['minibatch_sam_s']:.2f} s",
            f"  minibatches with replacement: SGD {c['minibatch_sgd_with_replacement_s']:.2f} s",
            f"  the index draw alone, one 64-step block of {c['n_chains']} chains: without replacement "
            f"{c['indices_without_replacement_s']:.4f} s, with {c['indices_with_replacement_s']:.4f} s",
        ]
    elif key == "case9_finite_time_law":
        two_d = f"solvers {c['two_d_methods']}" if "two_d_methods" in c else f"refused: {c['two_d_refused']}"
        lines = [
            f"9. theory.finite_time_law, sharp_flat_tradeoff (6 step sizes, {c['n_grid']} cells, 10 checkpoints to T = {c['n_steps']}, from x0 = -1)",
            f"  the law {c['finite_time_law_s']:7.2f} s (expansion from step {c['switch_step']}, -1: exact to T)   "
            f"simulate.run {c['n_chains']} chains {c['simulation_s']:7.2f} s   ratio {c['law_over_simulation']:.2f}",
            f"  coarsen=True (as asgd run): {c['finite_time_law_coarsen_s']:.2f} s (ratio {c['coarsened_law_over_simulation']:.2f}), "
            f"a second call {c['finite_time_law_coarsen_again_s']:.2f} s (compiled)",
            f"  2-D theory.stationary_law, double_well_2d, step sizes {[round(e, 4) for e in c['step_sizes_2d']]}, {c['n_grid_2d']} cells per axis: "
            f"{c['two_d_stationary_law_s']:.2f} s, {two_d}",
        ]
    else:
        raise ValueError(f"unknown case {key!r}")
    return "\n".join(lines)


def targets_table(checked: dict) -> str:
    lines = ["targets"]
    for name, t in checked.items():
        lines.append(f"  {'met    ' if t['met'] else 'NOT MET'} {name:22s} measured {t['measured']:.3g} (threshold {t['threshold']:g}): {t['what']}")
    return "\n".join(lines)


def table(figures: dict) -> str:
    """All figures as plain text: the machine, each case, the targets they cover."""
    lines = [machine_line(figures["machine"])] if "machine" in figures else []
    lines += [case_table(key, value) for key, value in figures.items() if key.startswith("case")]
    checked = check_targets(figures)
    if checked:
        lines.append(targets_table(checked))
    return "\n".join(lines)
