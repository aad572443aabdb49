"""Configs are validated completely before any simulation; every error names the key."""

import copy

import pytest

from asgd.config import ConfigError, load_config, parse_config

BASE = {
    "name": "small",
    "description": "a small sweep",
    "objective": {"kind": "quadratic", "hessian": [1.0, 0.5], "center": [0.0, 1.0]},
    "noise": {"family": "gaussian", "scale": 1.0},
    "run": {"step_sizes": [0.1, 0.2], "n_steps": [50, 100], "n_chains": 64, "seeds": [0, 1], "x0": [1.0, 1.0]},
    "target": {"kind": "minimizer"},
    "output": {"estimators": ["x", "x_avg"], "figures": ["tradeoff"]},
    "quick": {"n_chains": 16},
}


def _with(path: str, value):
    data = copy.deepcopy(BASE)
    *tables, key = path.split(".")
    node = data
    for table in tables:
        node = node[table]
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return data


_DELETE = object()


def test_a_valid_config_builds_its_sweep_and_quick_overrides_apply():
    config = parse_config(copy.deepcopy(BASE))
    assert config.sweep_points() == [(0, 50), (0, 100), (1, 50), (1, 100)]
    assert config.objective.dim == 2 and config.noise.family == "gaussian"
    assert parse_config(copy.deepcopy(BASE), quick=True).n_chains == 16
    assert config.per_seed is False and parse_config(_with("output.per_seed", True)).per_seed is True


CASES = [
    ("colour", "blue", "colour = 'blue': unknown key"),
    ("objective.kind", "banana", "objective.kind = 'banana': must be one of"),
    ("objective.curvature", 1.0, "objective.curvature = 1.0: unknown key"),
    ("objective.hessian", [1.0, -1.0], r"objective.hessian = \[1.0, -1.0\]: hessian must be non-negative"),
    ("noise.family", "laplace", "noise.family = 'laplace': must be one of"),
    ("noise.df", 3.0, "noise.df = 3.0: unknown key"),
    ("noise.scale", -1.0, "noise.scale = -1.0: scale must be a non-negative finite number"),
    ("run.step_sizes", [0.1, -0.1], r"run.step_sizes\[1\] = -0.1: must be a finite number > 0"),
    ("run.step_sizes", "fast", r"run.step_sizes\[0\] = 'fast': must be a finite number"),
    ("run.n_steps", 0, r"run.n_steps\[0\] = 0: must be an integer >= 1"),
    ("run.n_chains", 10.5, "run.n_chains = 10.5: must be an integer"),
    ("run.n_chains", _DELETE, "run.n_chains = None: missing"),
    ("run.seeds", [-1], r"run.seeds\[0\] = -1: must be an integer in \[0, 4294967295\]"),
    ("run.x0", [1.0, 2.0, 3.0], "run.x0 = .*must have 2 coordinates"),
    ("run.x0", "origin", "run.x0 = 'origin': must be a list"),
    ("run.x0", [[1.0, 1.0], [1.0]], r"run.x0 = \[\[1.0, 1.0\], \[1.0\]\]: must be .* equally long lists"),
    ("run.tail_fraction", 1.5, r"run.tail_fraction = 1.5: must be a number in \(0, 1\]"),
    ("run.method", "adam", r"run.method = 'adam': must be one of \['sgd', 'exact'\]"),
    ("run.checkpoints", [10, 80], "run.checkpoints = .*must not exceed the shortest horizon"),
    ("run.learning_rate", 0.1, "run.learning_rate = 0.1: unknown key"),
    ("quick.n_chain", 4, "quick.n_chain = 4: unknown key"),
    ("target.kind", "argmax", "target.kind = 'argmax': must be one of"),
    ("target.point", [0.0, 1.0], "target.point = .*allowed only there"),
    ("output.estimators", ["x", "x_median"], r"output.estimators\[1\] = 'x_median': must be one of"),
    ("output.figures", ["heatmap"], r"output.figures\[0\] = 'heatmap': must be one of"),
    # BASE is a 2-D quadratic: the figures that draw f over a line are refused, by name.
    ("output.figures", ["tradeoff", "landscape"], r"output.figures = \['tradeoff', 'landscape'\]: 'landscape' draws 1-D objectives only, and objective 'quadratic' has dim 2"),
    ("output.figures", ["chains"], r"output.figures = \['chains'\]: 'chains' draws 1-D objectives only"),
    ("output.per_seed", "yes", "output.per_seed = 'yes': must be true or false"),
]


@pytest.mark.parametrize("path, value, message", CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_names_the_key_the_value_and_what_is_allowed(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_with(path, value))


def test_noise_dimension_must_match_the_objective():
    data = _with("noise", {"family": "gaussian", "covariance": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]})
    with pytest.raises(ConfigError, match="noise.covariance = .*must be 2x2 to match objective dim=2"):
        parse_config(data)


def test_missing_and_malformed_files_give_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\nn_chains = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_the_config_reference_page_lists_every_accepted_key():
    """docs/config.md is generated from the validator's key sets (asgd.config_reference), and
    every key a sweep accepts is shown in the annotated example it opens with: a key added to
    the schema without documentation fails here."""
    import re

    from asgd import config as sweep_config, config_reference, network_config

    page = config_reference.markdown()
    example = config_reference._docstring_block(sweep_config)
    for table_name, keys in config_reference.sweep_tables().items():
        if table_name:
            assert f"[{table_name}]" in example, table_name
        for key in keys - ({"n_grid"} if table_name == "quick" else set()) - (sweep_config._RUN_KEYS if table_name == "quick" else set()):
            assert re.search(rf"(^|[\s\[\(.]){key}( =|\])", example, re.M), f"[{table_name}] {key} is not in asgd.config's example"
            assert f"`{key}`" in page
    network_example = config_reference._docstring_block(network_config)
    for table_name, keys in config_reference.network_tables().items():
        for key in keys if table_name not in ("", "data") else ():
            assert re.search(rf"\b{key}\b", network_example), f"[{table_name}] {key} is not in asgd.network_config's docstring"
            assert f"`{key}`" in page
    for kind in (*sweep_config.OBJECTIVE_KINDS, "python", *sweep_config.NOISE_FAMILIES, *sweep_config.FIGURES, *sweep_config.TARGET_KINDS):
        assert f"`{kind}`" in page


def test_the_objective_and_noise_are_built_once_per_config(tmp_path):
    """A config builds its objective (and calls a user's Python factory) once: every consumer
    (targets, law, figures, each sweep point) gets the same object, so compiled programs keyed on
    it are shared."""
    (tmp_path / "counted.py").write_text(
        "import jax.numpy as jnp\nimport objectives\ncalls = []\n\n"
        "def make():\n    calls.append(1)\n    return objectives.from_function(lambda x: jnp.sum(x**2), 1)\n"
    )
    data = _with("objective", {"kind": "python", "function": "counted:make"})
    data["run"]["x0"], data["target"] = [1.0], {"kind": "point", "point": [0.0]}
    config = parse_config(data, config_dir=str(tmp_path))
    first = config.objective
    import counted  # the config's folder is where its module was found

    built = len(counted.calls)  # validation may build one of its own
    assert all(config.objective is first for _ in range(5)) and config.noise is config.noise
    assert len(counted.calls) == built
