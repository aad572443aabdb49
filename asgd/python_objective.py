"""Objectives written in Python, named from a config: `kind = "python"`.

    [objective]
    kind = "python"
    function = "my_wells:make_objective"   # "module:function" or "package.module:function"

    [objective.args]                       # optional: keyword arguments of the function
    depth = 2.0
    centers = [-1.0, 1.0]                  # TOML values as read (a list stays a list)

The module is looked up in the folder of the config file first, then on `sys.path` (the
current directory under `python -m asgd`, the installed packages): a study's objective can sit
next to its TOML. The function is called once per use with the arguments of `[objective.args]`
and must return an `objectives.Objective` (for example from `objectives.from_function`).

Every failure is a `ConfigError` naming `objective.function`: a malformed name, a module that
is not found or fails to import, a missing or non-callable attribute, a call that raises, and a
return value that is not an `Objective`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import objectives
from asgd.schema import ConfigError, fail

__all__ = ["KEYS", "config_folder", "make_objective", "resolve"]

#: The keys of `[objective]` with `kind = "python"` (besides `kind`).
KEYS = {"function", "args"}

_KEY = "objective.function"


def resolve(function: str, config_dir: str | None):
    """The callable named by `function` ("module:attribute"), its module looked up in
    `config_dir` first (when given), then on `sys.path`."""
    module_name, _, attribute = function.partition(":") if isinstance(function, str) else ("", "", "")
    if not module_name or not attribute or not all(part.isidentifier() for part in (*module_name.split("."), *attribute.split("."))):
        fail(_KEY, function, "must be 'module:function' or 'package.module:function' (Python names)")
    added = config_dir is not None and config_dir not in sys.path
    if added:
        sys.path.insert(0, config_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            where = f"the config's folder {config_dir!r} or sys.path" if config_dir is not None else "sys.path"
            fail(_KEY, function, f"module {module_name!r} not found (looked in {where})")
        fail(_KEY, function, f"importing module {module_name!r} failed: {type(error).__name__}: {error}")
    except Exception as error:  # the user's module raised while importing: say so, in one line
        fail(_KEY, function, f"importing module {module_name!r} failed: {type(error).__name__}: {error}")
    finally:
        if added:
            sys.path.remove(config_dir)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            fail(_KEY, function, f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        fail(_KEY, function, f"{attribute!r} in module {module_name!r} is not callable (a {type(target).__name__})")
    return target


def make_objective(function: str, args: dict | None, config_dir: str | None) -> objectives.Objective:
    """Call the function named by `function` with the keyword arguments `args`; check that it
    returns an `objectives.Objective`."""
    if args is not None and not isinstance(args, dict):
        fail("objective.args", args, "must be a table of keyword arguments ([objective.args])")
    make = resolve(function, config_dir)
    try:
        objective = make(**(args or {}))
    except Exception as error:
        raise ConfigError(
            f"{_KEY} = {function!r}: calling it with objective.args = {args or {}!r} raised {type(error).__name__}: {error}"
        ) from None
    if not isinstance(objective, objectives.Objective):
        fail(_KEY, function, f"must return an objectives.Objective (e.g. objectives.from_function(f, dim)), returned a {type(objective).__name__}")
    return objective


def config_folder(source: str) -> str | None:
    """The folder of the config file `source`, where its Python objective may sit (None when
    the config did not come from a file)."""
    path = Path(source)
    return str(path.resolve().parent) if path.suffix == ".toml" else None
