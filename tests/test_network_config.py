"""The network experiment's config (issue 8): the shipped file parses, --quick overrides, and
every bad value is refused before any training with a message naming the key and value."""

import copy
import tomllib
from pathlib import Path

import pytest

from asgd.config import ConfigError, load_config
from asgd.network_config import NetworkConfig, parse_network_config

SHIPPED = Path(__file__).resolve().parents[1] / "asgd" / "experiments" / "nn.toml"


def _raw():
    return tomllib.loads(SHIPPED.read_text())


def test_shipped_config_loads_and_quick_overrides_only_what_it_names():
    full = load_config(SHIPPED)
    quick = load_config(SHIPPED, quick=True)
    assert isinstance(full, NetworkConfig) and isinstance(quick, NetworkConfig)
    assert quick.n_steps < full.n_steps and quick.n_seeds == 8 >= 8
    assert quick.step_sizes == full.step_sizes and quick.batch_size == full.batch_size
    assert full.n_seeds >= 8  # the issue asks for >= 8 seeds, vectorized


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        (None, "colour", "red", "colour = 'red': unknown key"),
        ("data", "dataset", "mnist", "data.dataset = 'mnist': must be one of"),
        ("data", "n_pixels", 3, "data.n_pixels = 3: unknown key"),
        ("model", "kind", "resnet", "model.kind = 'resnet': must be one of"),
        ("model", "hidden", [32, 0], "model.hidden[1] = 0: must be an integer >= 1"),
        ("model", "activation", "gelu", "model.activation = 'gelu'"),
        ("train", "step_sizes", [0.1, -1.0], "train.step_sizes[1] = -1.0: must be a finite number > 0"),
        ("train", "step_sizes", [0.3, 0.1], "train.step_sizes = [0.3, 0.1]: must be strictly increasing"),
        ("train", "n_seeds", 1, "train.n_seeds = 1: must be >= 2"),
        ("train", "n_steps", 0, "train.n_steps = 0: must be an integer >= 1"),
        ("train", "ema_decay", 1.0, "train.ema_decay = 1.0: must be a number in (0, 1)"),
        ("train", "sam_radius", 0.0, "train.sam_radius = 0.0: must be a finite number > 0"),
        ("train", "batch_size", 2.5, "train.batch_size = 2.5: must be an integer"),
        ("metrics", "hutchinson_probes", 0, "metrics.hutchinson_probes = 0"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(section, key, value, expected):
    raw = copy.deepcopy(_raw())
    (raw if section is None else raw[section])[key] = value
    with pytest.raises(ConfigError) as caught:
        parse_network_config(raw)
    assert expected in str(caught.value)


def test_public_load_is_load_config_plus_overrides():
    """`asgd.networks.load` (the notebooks' entry point): a built-in name reads the shipped file
    as `load_config` does; overrides land over [quick] (or alone without it); bad names and keys
    are `ConfigError`s naming them."""
    from asgd import networks

    assert networks.load("nn") == load_config(SHIPPED) and networks.load("nn", quick=True) == load_config(SHIPPED, quick=True)
    assert networks.load(SHIPPED, quick=True) == load_config(SHIPPED, quick=True)
    full, quick = load_config(SHIPPED), load_config(SHIPPED, quick=True)
    over_quick = networks.load("nn", quick=True, overrides={"n_steps": 7, "hutchinson_probes": 3})
    assert (over_quick.n_steps, over_quick.hutchinson_probes, over_quick.n_seeds) == (7, 3, quick.n_seeds)
    over_full = networks.load("nn", overrides={"n_steps": 7})
    assert (over_full.n_steps, over_full.n_seeds) == (7, full.n_seeds)  # [quick] not applied
    with pytest.raises(ConfigError, match=r"config = 'nope'.*'mnist1d_cnn'"):
        networks.load("nope")
    with pytest.raises(ConfigError, match=r"n_stepz = 3: unknown key"):
        networks.load("nn", overrides={"n_stepz": 3})
    with pytest.raises(ConfigError, match=r"n_steps = -1"):
        networks.load("nn", overrides={"n_steps": -1})
