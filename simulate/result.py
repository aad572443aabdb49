"""`SimulationResult`: what `simulate.run` returns, as NumPy arrays with named axes."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from simulate.files import atomic_write
from simulate.trackers import BUILT_IN_ESTIMATORS, ESTIMATORS

__all__ = ["ESTIMATORS", "SimulationResult", "atomic_write", "join_step_sizes"]  # atomic_write lives in simulate.files


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """The estimators of every chain, at the end of the run and at the checkpoints.

    Shapes use S = n_step_sizes, C = n_chains, K = number of checkpoints, d = dim.

    - `x`, `x_avg`, `x_tail`, `v`, `v_avg`: `(S, C, d)` estimators at step `n_steps`.
    - `checkpoint_steps`: `(K,)` the steps t at which estimators were recorded (the last is n_steps).
    - `checkpoints`: dict estimator name -> `(K, S, C, d)`, every tracked estimator by name (the
      built-in ones and a user's `simulate.tracker`s); `checkpoints[name][-1]` is the final
      estimator, also `result.estimator(name)` and `result.<name>`. At checkpoint t the averages are over steps 1..t and the tail average is
      over the last ceil(tail_fraction * t) of them.
    - `diverged`: `(S, C)` bool; `diverged_at`: `(S, C)` first step at which the chain left the
      ball of radius `divergence_radius` or became non-finite, -1 if never. A diverged chain stays
      at its last good state x_{k-1} from step k = `diverged_at` on (as in `trajectory`), and its
      estimators are those of that path: finite, never NaN, but meaningless; exclude them
      (`analysis.errors` does). A chain flagged at step 1 reports x0 in every estimator (v too,
      when grad f(x0) is not finite).
    - `trajectory`: `(n_steps + 1, S, C, d)` iterates x_0..x_T when asked for, else `None`.
    - `estimators`: the estimators this run has, in order: `ESTIMATORS`, without v and v_avg when
      it ran with `track_v=False` (those fields are then `None`), plus `x_ema` `(S, C, d)` when it
      ran with `ema_decay` (the debiased exponential moving average of the iterates), plus the
      names of the user's trackers (`simulate.run(..., trackers=...)`).
    - `algorithm`: the update rule, as written (`"sgd()"`, `"sam(radius=0.05)"`, `"momentum(beta=0.9)"`);
      `sam_radius`: SAM's radius (`None` for other rules; the kernel fills it, `Kernel.reported`);
      `ema_decay`: as passed (`None`: no EMA).
    - `schedule`: the step-size schedule, as written (`"constant()"`, `"cosine_decay(decay_steps=1000, final=0)"`):
      step k ran at step_sizes * s(k) (`simulate.schedules`).
    - the inputs: `step_sizes` `(S,)`, `n_steps`, `n_chains`, `seed`, `tail_fraction`, `noise`,
      `objective_name`, `dim`, `dtype`, `divergence_radius`, `method`.
    """

    x: np.ndarray
    x_avg: np.ndarray
    x_tail: np.ndarray
    v: np.ndarray
    v_avg: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    checkpoint_steps: np.ndarray
    checkpoints: dict[str, np.ndarray]
    step_sizes: np.ndarray
    n_steps: int
    n_chains: int
    seed: int
    tail_fraction: float
    noise: Any
    objective_name: str
    dim: int
    dtype: str
    divergence_radius: float
    method: str = "sgd"
    trajectory: np.ndarray | None = None
    x_ema: np.ndarray | None = None
    estimators: tuple[str, ...] = ESTIMATORS
    sam_radius: float | None = None
    ema_decay: float | None = None
    algorithm: str = "sgd()"
    schedule: str = "constant()"

    def estimator(self, name: str, checkpoint: int | None = None) -> np.ndarray:
        """Estimator `name` at the end (`checkpoint=None`) or at checkpoint step `checkpoint`."""
        if name not in self.estimators:
            raise ValueError(f"estimator must be one of this run's {self.estimators}, got {name!r}")
        if checkpoint is None:
            return self.checkpoints[name][-1]
        where = np.flatnonzero(self.checkpoint_steps == checkpoint)
        if where.size == 0:
            raise ValueError(
                f"checkpoint must be one of the recorded steps {self.checkpoint_steps.tolist()}, got {checkpoint}"
            )
        return self.checkpoints[name][where[0]]

    def __getattr__(self, name: str) -> np.ndarray:
        """A user's tracked estimator by name (`result.x_late`): its final value."""
        checkpoints = self.__dict__.get("checkpoints", {})
        if name in self.__dict__.get("estimators", ()) and name in checkpoints:
            return checkpoints[name][-1]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def n_diverged(self) -> np.ndarray:
        """`(S,)` number of diverged chains per step size."""
        return self.diverged.sum(axis=1)

    def metadata(self) -> dict:
        """The inputs that produced this result, JSON-friendly."""
        return {
            "objective": self.objective_name,
            "dim": self.dim,
            "noise": self.noise.describe() if hasattr(self.noise, "describe") else repr(self.noise),
            "step_sizes": self.step_sizes.tolist(),
            "n_steps": self.n_steps,
            "n_chains": self.n_chains,
            "seed": self.seed,
            "tail_fraction": self.tail_fraction,
            "checkpoint_steps": self.checkpoint_steps.tolist(),
            "dtype": self.dtype,
            "divergence_radius": self.divergence_radius,
            "method": self.method,
            "estimators": list(self.estimators),
            "algorithm": self.algorithm,
            "sam_radius": self.sam_radius,
            "ema_decay": self.ema_decay,
            "schedule": self.schedule,
        }

    def save(self, path: str | Path) -> Path:
        """Write every field to `path` as one `.npz` file, atomically; `SimulationResult.load`
        reads it back.

        Array fields are arrays of the file under their field name, a dict of arrays
        (`checkpoints`) under `<field>/<key>`; every other field (numbers, strings, tuples,
        `None`) goes into the JSON string array `__fields__`, with the field's kind. The noise
        model is stored as its description (`noise.describe()`). No object arrays: the file
        loads with `allow_pickle=False`. Generic over `dataclasses.fields`, so a field added to
        the type round-trips without touching this code.
        """
        arrays, fields = {}, {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise ValueError(f"{field.name} is an object array, which cannot be saved without pickle")
                arrays[field.name] = value
                fields[field.name] = {"kind": "array"}
            elif isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
                arrays.update({f"{field.name}/{key}": array for key, array in value.items()})
                fields[field.name] = {"kind": "arrays", "keys": list(value)}
            elif isinstance(value, tuple):
                fields[field.name] = {"kind": "tuple", "value": [_json_scalar(v) for v in value]}
            elif hasattr(value, "describe"):
                fields[field.name] = {"kind": "description", "value": value.describe()}
            else:
                fields[field.name] = {"kind": "value", "value": _json_scalar(value)}
        arrays["__fields__"] = np.asarray(json.dumps(fields, sort_keys=True))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "SimulationResult":
        """The result `save` wrote to `path`: every field as it was saved (the noise model as
        its description, a dict). Fields the type no longer has are refused; fields the file
        lacks take their defaults.

        The file must agree with itself (`ValueError` naming the file and the field otherwise):
        every estimator `(S, C, d)` with S = len(step_sizes), C = n_chains, d = dim; `diverged`
        and `diverged_at` `(S, C)`; `checkpoints[name]` `(K, S, C, d)` for the K
        `checkpoint_steps`, increasing and ending at n_steps; `trajectory` `(n_steps + 1, S, C, d)`.
        """
        not_ours = f"{str(path)!r} is not a file written by SimulationResult.save"
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError:
            # NumPy's message suggests allow_pickle=True: never the advice for a file of unknown origin.
            raise ValueError(f"{not_ours} (not a .npz archive of plain arrays)") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{not_ours} (a single array, not a .npz archive)")
        with data:
            if "__fields__" not in data.files:
                raise ValueError(not_ours)
            fields = json.loads(str(data["__fields__"]))
            known = {field.name for field in dataclasses.fields(cls)}
            unknown = sorted(set(fields) - known)
            if unknown:
                raise ValueError(f"{str(path)!r} holds fields {unknown} that SimulationResult does not have")
            values = {}
            for name, stored in fields.items():
                kind = stored["kind"]
                if kind == "array":
                    values[name] = data[name]
                elif kind == "arrays":
                    values[name] = {key: data[f"{name}/{key}"] for key in stored["keys"]}
                elif kind == "tuple":
                    values[name] = tuple(stored["value"])
                else:
                    values[name] = stored["value"]
        problem = _inconsistency(values)
        if problem:
            raise ValueError(f"{str(path)!r} disagrees with itself: {problem}")
        return cls(**values)

    def __repr__(self) -> str:
        return (
            f"SimulationResult({self.objective_name}, method={self.method}, "
            f"step_sizes={np.array2string(self.step_sizes, precision=4)}, n_steps={self.n_steps}, "
            f"n_chains={self.n_chains}, dim={self.dim}, diverged={int(self.diverged.sum())})"
        )


#: The fields with a step-size axis, and where it is: (S, C, ...) first, (K, S, ...) and (T + 1, S, ...) second.
_STEP_SIZE_AXIS = {**{name: 0 for name in (*BUILT_IN_ESTIMATORS, "x_ema", "diverged", "diverged_at", "step_sizes")}, "trajectory": 1}


def join_step_sizes(results) -> SimulationResult:
    """One result over the step sizes of several runs that differ in nothing else (the same
    chains, seed, steps and checkpoints): the runs of one sweep point that start each step size
    somewhere else (`asgd`'s `run.x0 = "stationary"`). A field other than the step-size arrays
    that differs between them is a `ValueError` naming it."""
    results = list(results)
    if not results or not all(isinstance(r, SimulationResult) for r in results):
        raise ValueError("results must be a non-empty sequence of SimulationResult")
    first, joined = results[0], {}
    for field in dataclasses.fields(SimulationResult):
        values = [getattr(r, field.name) for r in results]
        if field.name == "checkpoints":
            if any(set(v) != set(values[0]) for v in values):
                raise ValueError("results must track the same estimators")
            joined[field.name] = {name: np.concatenate([v[name] for v in values], axis=1) for name in values[0]}
        elif field.name in _STEP_SIZE_AXIS and values[0] is not None:
            joined[field.name] = np.concatenate(values, axis=_STEP_SIZE_AXIS[field.name])
        elif field.name == "checkpoint_steps":
            if any(not np.array_equal(v, values[0]) for v in values):
                raise ValueError("results must share checkpoint_steps")
            joined[field.name] = values[0]
        else:
            described = [v.describe() if hasattr(v, "describe") else v for v in values]
            if any(d != described[0] for d in described):
                raise ValueError(f"results must share {field.name}, got {described}")
            joined[field.name] = getattr(first, field.name)
    return SimulationResult(**joined)


def _inconsistency(values: dict) -> str | None:
    """What is wrong with a loaded result's fields (`values`, as `load` read them), or None."""
    for name in ("n_steps", "n_chains", "dim", "seed"):
        if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] < 0):
            return f"{name} = {values[name]!r} is not a count"
    arrays = BUILT_IN_ESTIMATORS + ("diverged", "diverged_at", "checkpoint_steps", "step_sizes", "trajectory")
    for name in arrays:
        if values.get(name) is not None and not isinstance(values[name], np.ndarray):
            return f"{name} must be an array, got a {type(values[name]).__name__}"
    if "checkpoints" in values and not isinstance(values["checkpoints"], dict):
        return f"checkpoints must be arrays by estimator, got a {type(values['checkpoints']).__name__}"
    step_sizes = values.get("step_sizes")
    if step_sizes is None or step_sizes.ndim != 1:
        return "step_sizes must be a 1-D array"
    shape = (step_sizes.size, values.get("n_chains"), values.get("dim"))
    estimators = tuple(values.get("estimators", ESTIMATORS))
    for name in (name for name in estimators if name in BUILT_IN_ESTIMATORS):  # a user's: in checkpoints only
        if values.get(name) is None or values[name].shape != shape:
            got = None if values.get(name) is None else values[name].shape
            return f"estimator {name} has shape {got}, not (len(step_sizes), n_chains, dim) = {shape}"
    for name in ("diverged", "diverged_at"):
        if values.get(name) is None or values[name].shape != shape[:2]:
            got = None if values.get(name) is None else values[name].shape
            return f"{name} has shape {got}, not (len(step_sizes), n_chains) = {shape[:2]}"
    steps = values.get("checkpoint_steps")
    if steps is None or steps.ndim != 1 or steps.size == 0 or np.any(np.diff(steps) <= 0) or steps[-1] != values.get("n_steps"):
        return f"checkpoint_steps {None if steps is None else steps.tolist()} must increase and end at n_steps = {values.get('n_steps')}"
    for name in estimators:
        stored = values.get("checkpoints", {}).get(name)
        if stored is None or stored.shape != (steps.size, *shape):
            return f"checkpoints[{name!r}] has shape {None if stored is None else stored.shape}, not (K, S, C, d) = {(steps.size, *shape)}"
    trajectory = values.get("trajectory")
    if trajectory is not None and trajectory.shape != (values["n_steps"] + 1, *shape):
        return f"trajectory has shape {trajectory.shape}, not (n_steps + 1, S, C, d) = {(values['n_steps'] + 1, *shape)}"
    return None


def _json_scalar(value):
    """A NumPy scalar as the Python number JSON can hold; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
