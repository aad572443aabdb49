"""The network experiment's config (`kind = "network"`, see `asgd/experiments/nn.toml`).

    kind = "network"
    name = "nn"
    [data]      dataset = "digits" | "teacher_student" | "mnist1d", and its options (`objectives.datasets`)
    [model]     kind = "mlp" | "logistic_regression" | "cnn1d", hidden = [32], activation, l2;
                for cnn1d channels = [16, 32, 32], kernel_size, stride
    [train]     step_sizes (increasing), n_steps, n_seeds (>= 2), batch_size, replace,
                tail_fraction, ema_decay, sam_radius, seed (the minibatches'), init_seed (seed i starts
                from the model's initialisation with seed init_seed + i); methods (default the five of
                `nn`: sgd, uniform_average, tail_average, ema, sam; also cosine, swa),
                cosine_final (the cosine schedule's last multiplier), swa_start (the fraction of
                the run SWA's step size decays over), swa_final (its constant multiplier)
    [metrics]   hutchinson_probes, power_iterations, sharpness_examples (the Hessian of the loss
                on the first m training examples; default all); trace_points (the iterates at this
                many evenly spaced steps, for the averaging-window diagnostic, `asgd.averaging_window`),
                diagnostic_examples (that diagnostic's training loss on the first m examples; default all)
    [replicate] replications (R >= 1, default 1): R independent draws of the data and of the
                training seeds (`asgd.replications`); `--replications R` overrides it; n_seeds
                (>= 2): the seeds of each replication when R > 1 (default train.n_seeds)
    [quick]     overrides of [data], [train] and [metrics] keys for --quick

Validated with the same rules as the sweeps (`asgd.schema`); every error names the key, the
value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from asgd.schema import check_keys, choice, fail, integer, list_of, real, table

__all__ = ["NetworkConfig", "parse_network_config"]

_DATASETS = ("digits", "teacher_student", "mnist1d")
_MODELS = ("mlp", "logistic_regression", "cnn1d")
#: Every method a network experiment can compare (`asgd.network.METHODS`), and the default five.
_METHODS = ("sgd", "uniform_average", "tail_average", "ema", "sam", "cosine", "swa")
_DEFAULT_METHODS = ("sgd", "uniform_average", "tail_average", "ema", "sam")
_ACTIVATIONS = ("tanh", "relu")
_TOP_KEYS = {"kind", "name", "description", "data", "model", "train", "metrics", "quick", "replicate"}
_DATA_KEYS = {"dataset", "n_train", "n_test", "n_features", "n_classes", "teacher_hidden", "label_noise", "test_fraction", "seed",
              "n_samples", "train_fraction"}
_MODEL_KEYS = {"kind", "hidden", "activation", "l2", "channels", "kernel_size", "stride"}
_TRAIN_KEYS = {"step_sizes", "n_steps", "n_seeds", "batch_size", "replace", "tail_fraction", "ema_decay", "sam_radius", "seed",
               "methods", "cosine_final", "swa_start", "swa_final", "init_seed"}
_METRIC_KEYS = {"hutchinson_probes", "power_iterations", "sharpness_examples", "trace_points", "diagnostic_examples"}
_REPLICATE_KEYS = {"replications", "n_seeds"}


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """A validated network experiment (see `asgd/experiments/nn.toml` for every key)."""

    name: str
    description: str
    data: dict
    model: dict
    step_sizes: tuple[float, ...]
    n_steps: int
    n_seeds: int
    batch_size: int
    replace: bool
    tail_fraction: float
    ema_decay: float
    sam_radius: float
    seed: int
    hutchinson_probes: int
    power_iterations: int
    raw: dict
    methods: tuple[str, ...] = _DEFAULT_METHODS
    cosine_final: float = 0.0
    swa_start: float = 0.75
    swa_final: float = 0.5
    sharpness_examples: int | None = None
    init_seed: int = 0
    trace_points: int = 40
    diagnostic_examples: int | None = None
    replications: int = 1
    replication_seeds: int | None = None


def parse_network_config(data: dict, *, quick: bool = False, source: str = "config") -> NetworkConfig:
    """Validate a network experiment's TOML table; every error names the key, value and what is allowed."""
    check_keys(data, _TOP_KEYS, "")
    if data.get("kind") != "network":
        fail("kind", data.get("kind"), 'must be "network" for a network experiment')
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        fail("name", name, "must be a word of letters, digits and underscores")
    sections = {}
    for section, allowed in (
        ("data", _DATA_KEYS), ("model", _MODEL_KEYS), ("train", _TRAIN_KEYS), ("metrics", _METRIC_KEYS),
        ("quick", _TRAIN_KEYS | _METRIC_KEYS | _DATA_KEYS), ("replicate", _REPLICATE_KEYS),
    ):
        sections[section] = table(data, section)
        check_keys(sections[section], allowed, section)
    if quick:
        for key, value in sections["quick"].items():
            target = "train" if key in _TRAIN_KEYS else "metrics" if key in _METRIC_KEYS else "data"
            sections[target][key] = value
    data_table, model, train, metrics = sections["data"], sections["model"], sections["train"], sections["metrics"]

    choice("data.dataset", data_table.get("dataset"), _DATASETS)
    kind = choice("model.kind", model.get("kind", "mlp"), _MODELS)
    hidden = model.get("hidden", [32])
    if not isinstance(hidden, list) or not hidden:
        fail("model.hidden", hidden, "must be a list of positive integers (layer widths)")
    hidden = list_of("model.hidden", hidden, integer, allow_scalar=False)
    activation = choice("model.activation", model.get("activation", "tanh"), _ACTIVATIONS)
    channels = model.get("channels", [16, 32, 32])
    if not isinstance(channels, list) or not channels:
        fail("model.channels", channels, "must be a list of positive integers (channels per convolution)")
    channels = list_of("model.channels", channels, integer, allow_scalar=False)
    methods = train.get("methods", list(_DEFAULT_METHODS))
    if not isinstance(methods, list) or not methods:
        fail("train.methods", methods, f"must be a non-empty list of methods from {list(_METHODS)}")
    methods = tuple(choice("train.methods", method, _METHODS) for method in methods)
    if len(set(methods)) != len(methods):
        fail("train.methods", list(methods), "must not repeat a method")
    l2 = real("model.l2", model.get("l2", 0.0), lo=0)

    step_sizes = train.get("step_sizes")
    if not isinstance(step_sizes, list) or not step_sizes:
        fail("train.step_sizes", step_sizes, "must be a non-empty list of positive numbers")
    step_sizes = list_of("train.step_sizes", step_sizes, lambda k, v: real(k, v, lo=0, open_lo=True))
    if list(step_sizes) != sorted(set(step_sizes)):
        fail("train.step_sizes", list(step_sizes), "must be strictly increasing")
    n_seeds = integer("train.n_seeds", train.get("n_seeds", 8))
    if n_seeds < 2:
        fail("train.n_seeds", n_seeds, "must be >= 2 (a standard error needs two seeds)")
    replace = train.get("replace", False)
    if not isinstance(replace, bool):
        fail("train.replace", replace, "must be true or false")
    n_steps = integer("train.n_steps", train.get("n_steps"))
    if "swa" in methods and n_steps < 2:
        fail("train.n_steps", n_steps, "must be >= 2 with method swa (a decay phase, then a constant phase to average)")
    return NetworkConfig(
        name=name,
        description=str(data.get("description", "")),
        data=data_table,
        model={"kind": kind, "hidden": hidden, "activation": activation, "l2": l2, "channels": channels,
               "kernel_size": integer("model.kernel_size", model.get("kernel_size", 5)),
               "stride": integer("model.stride", model.get("stride", 2))},
        step_sizes=step_sizes,
        n_steps=n_steps,
        n_seeds=n_seeds,
        batch_size=integer("train.batch_size", train.get("batch_size", 32)),
        replace=replace,
        tail_fraction=real("train.tail_fraction", train.get("tail_fraction", 0.5), lo=0, hi=1, open_lo=True),
        ema_decay=real("train.ema_decay", train.get("ema_decay", 0.999), lo=0, hi=1, open_lo=True, open_hi=True),
        sam_radius=real("train.sam_radius", train.get("sam_radius", 0.05), lo=0, open_lo=True),
        seed=integer("train.seed", train.get("seed", 0), lo=0, hi=2**32 - 1),
        hutchinson_probes=integer("metrics.hutchinson_probes", metrics.get("hutchinson_probes", 32)),
        power_iterations=integer("metrics.power_iterations", metrics.get("power_iterations", 50)),
        raw=data,
        methods=methods,
        cosine_final=real("train.cosine_final", train.get("cosine_final", 0.0), lo=0, hi=1),
        swa_start=real("train.swa_start", train.get("swa_start", 0.75), lo=0, hi=1, open_lo=True, open_hi=True),
        swa_final=real("train.swa_final", train.get("swa_final", 0.5), lo=0, hi=1, open_lo=True),
        sharpness_examples=None if "sharpness_examples" not in metrics else integer("metrics.sharpness_examples", metrics["sharpness_examples"]),
        init_seed=integer("train.init_seed", train.get("init_seed", 0), lo=0, hi=2**32 - 1),
        trace_points=integer("metrics.trace_points", metrics.get("trace_points", 40), lo=2),
        diagnostic_examples=None if "diagnostic_examples" not in metrics else integer("metrics.diagnostic_examples", metrics["diagnostic_examples"]),
        replications=integer("replicate.replications", sections["replicate"].get("replications", 1)),
        replication_seeds=None if "n_seeds" not in sections["replicate"] else integer("replicate.n_seeds", sections["replicate"]["n_seeds"], lo=2),
    )
