"""The figures and targets of a sweep are tables (`asgd.sweep_figures.FIGURES`,
`asgd.targets.TARGETS`): a new entry is accepted by the config's validator and used by the
sweep and `asgd plot` with no other edit."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import support
from asgd import sweep_figures, targets
from asgd.config import ConfigError, load_config
from asgd.experiment_figures import draw_figures
from asgd.sweep import run_sweep

TINY = {"run": {"step_sizes": [0.1, 0.2], "n_steps": [40], "n_chains": 8, "seeds": [0], "checkpoints": 2}}


def test_a_figure_added_to_the_table_is_validated_and_drawn(tmp_path, monkeypatch):
    seen = []

    def mine(drawing):  # a user's figure: the step sizes against the pooled chains' count
        seen.append(drawing)
        fig, ax = plt.subplots()
        ax.plot(drawing.step_sizes, drawing.step_sizes)
        return [("mine", fig)]

    monkeypatch.setitem(sweep_figures.FIGURES, "mine", sweep_figures.FigureKind(mine, from_points=True))
    config = load_config(support.write_config(tmp_path / "c.toml", **TINY, output={"figures": ["mine"]}))
    outcome = run_sweep(config, tmp_path / "out", quiet=True)
    written = draw_figures(outcome.out_dir)
    assert [path.name for path in written] == ["mine.png"] and written[0].exists() and (outcome.out_dir / "mine.pdf").exists()
    (drawing,) = seen
    np.testing.assert_array_equal(drawing.step_sizes, [0.1, 0.2])
    assert drawing.horizon == 40 and len(drawing.results) == 1 and drawing.results[0].n_chains == 8  # from_points: the saved point

    # What the entry says it needs is what the validator enforces.
    monkeypatch.setitem(sweep_figures.FIGURES, "mine", sweep_figures.FigureKind(mine, one_d=True))
    flat = support.config(**TINY, output={"figures": ["mine"]})
    flat["objective"] = {"kind": "valley_2d"}
    flat["run"]["x0"] = [0.5, 0.5]
    with pytest.raises(ConfigError, match="output.figures.*'mine' draws 1-D objectives only"):
        load_config(support.write_config(tmp_path / "flat.toml", flat))


def test_a_target_added_to_the_table_is_validated_and_measured(tmp_path, monkeypatch):
    # The origin as a target: every error row is then E|x|^2, whatever the well.
    monkeypatch.setitem(targets.TARGETS, "origin", targets.TargetKind("the origin", point=lambda config: np.zeros(config.objective.dim)))
    config = load_config(support.write_config(tmp_path / "c.toml", **TINY, target={"kind": "origin"}))
    outcome = run_sweep(config, tmp_path / "out", quiet=True)
    np.testing.assert_array_equal(outcome.targets, np.zeros((2, 1)))
    result = outcome.results[(0, 40)]
    for row in outcome.rows:
        if row["estimator"] == "x" and row["n_steps"] == 40:
            s = config.step_sizes.index(row["step_size"])
            assert row["target"] == "origin"
            assert row["mse"] == pytest.approx(float(np.mean(np.sum(result.x[s] ** 2, axis=-1))), rel=1e-6)
    with pytest.raises(ConfigError, match="target.kind"):
        load_config(support.write_config(tmp_path / "bad.toml", **TINY, target={"kind": "nowhere"}))
