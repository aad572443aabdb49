"""Objectives written in Python, named from a config: `kind = "python"`.

    [objective]
    kind = "python"
    function = "my_wells:make_objective"   # "module:function" or "package.module:function"

    [objective.args]                       # optional: keyword arguments of the function
    depth = 2.0
    centers = [-1.0, 1.0]                  # TOML values as read (a list stays a list)

The module is looked up in the folder of the config file first, then on `sys.path` (the
current directory under `python -m asgd`, the installed packages): a study's objective can sit
next to its TOML. A file there whose name is a module already imported (`analysis.py`,
`simulate.py`, `numpy.py`: Python would hand back the library's module) is loaded from its file,
under a private name; a package of such a name is refused, naming the clash. The function is called once per use with the arguments of `[objective.args]`
and must return an `objectives.Objective` (for example from `objectives.from_function`).

Every failure is a `ConfigError` naming `objective.function`: a malformed name, a module that
is not found or fails to import, a missing or non-callable attribute, a call that raises, and a
return value that is not an `Objective`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import objectives
from asgd.schema import ConfigError, fail

__all__ = ["KEYS", "config_folder", "make_objective", "resolve"]

#: The keys of `[objective]` with `kind = "python"` (besides `kind`).
KEYS = {"function", "args"}

_KEY = "objective.function"


def resolve(function: str, config_dir: str | None, key: str = _KEY):
    """The callable named by `function` ("module:attribute"), its module looked up in
    `config_dir` first (when given), then on `sys.path`; failures name the config `key`."""
    module_name, _, attribute = function.partition(":") if isinstance(function, str) else ("", "", "")
    if not module_name or not attribute or not all(part.isidentifier() for part in (*module_name.split("."), *attribute.split("."))):
        fail(key, function, "must be 'module:function' or 'package.module:function' (Python names)")
    shadowed = _shadowed(module_name, config_dir, function, key)
    added = config_dir is not None and config_dir not in sys.path
    if added:
        sys.path.insert(0, config_dir)
    try:
        module = _load_file(shadowed, module_name) if shadowed else importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            where = f"the config's folder {config_dir!r} or sys.path" if config_dir is not None else "sys.path"
            fail(key, function, f"module {module_name!r} not found (looked in {where})")
        fail(key, function, f"importing module {module_name!r} failed: {type(error).__name__}: {error}")
    except Exception as error:  # the user's module raised while importing: say so, in one line
        fail(key, function, f"importing module {module_name!r} failed: {type(error).__name__}: {error}")
    finally:
        if added:
            sys.path.remove(config_dir)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            fail(key, function, f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        fail(key, function, f"{attribute!r} in module {module_name!r} is not callable (a {type(target).__name__})")
    return target


def _shadowed(module_name: str, config_dir: str | None, function: str, key: str = _KEY) -> Path | None:
    """The config folder's file `<module_name>.py` when `sys.modules` already holds another
    module of that name (the library's `analysis`, `simulate`...), which `import_module` would
    return instead; None otherwise."""
    top = module_name.split(".")[0]
    if config_dir is None or top not in sys.modules:
        return None
    folder = Path(config_dir)
    loaded = getattr(sys.modules[top], "__file__", None)
    mine = folder / f"{top}.py" if (folder / f"{top}.py").is_file() else folder / top / "__init__.py"
    if not mine.is_file() or (loaded is not None and Path(loaded).resolve() == mine.resolve()):
        return None
    if top != module_name or mine.name == "__init__.py":
        fail(key, function, f"the package {top!r} in the config's folder has the name of the module {top!r} already "
                             f"imported from {loaded!r}; rename it")
    return mine


def _load_file(path: Path, module_name: str):
    """The module in the file `path`, loaded under the private name `asgd_config.<module_name>`."""
    name = f"asgd_config.{module_name}"
    previous = sys.modules.get(name)
    if previous is not None and Path(getattr(previous, "__file__", "")).resolve() == path.resolve():
        return previous  # the same function objects each time: compiled programs are reused
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by its name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


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
