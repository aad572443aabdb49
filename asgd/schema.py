"""The validators of every experiment config (sweeps and the network experiment), one set.

A config error is one line, `key = value: what is allowed`, raised as `ConfigError` (a
`ValueError`) before any simulation. The rules on numbers are those of
`objectives.validation`, so a config and a library call reject the same values in the same
words; here they are reported against the config's key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from objectives import validation

__all__ = [
    "ConfigError",
    "check_keys",
    "choice",
    "fail",
    "integer",
    "list_of",
    "read_toml",
    "real",
    "table",
]


class ConfigError(ValueError):
    """A config that cannot be run: names the key, the value and what is allowed."""


def fail(key: str, value, allowed: str) -> NoReturn:
    raise ConfigError(f"{key} = {value!r}: {allowed}")


def _as_config_error(check: Callable, key: str, value, **options):
    """Run an `objectives.validation` check; its "key must be RULE, got VALUE" becomes the
    config's "key = VALUE: must be RULE"."""
    try:
        return check(key, value, **options)
    except ValueError as error:
        rule = str(error).removeprefix(f"{key} ").removesuffix(f", got {value!r}")
        fail(key, value, rule)


def integer(key: str, value, *, lo: int | None = 1, hi: int | None = None) -> int:
    """An integer in [lo, hi] (TOML integers; a float such as 10.0 is refused)."""
    return _as_config_error(validation.integer, key, value, lo=lo, hi=hi)


def real(key: str, value, *, lo=None, hi=None, open_lo: bool = False, open_hi: bool = False) -> float:
    """A finite number (TOML integer or float) in the interval lo..hi, open at either end if asked."""
    return _as_config_error(validation.real, key, value, lo=lo, hi=hi, open_lo=open_lo, open_hi=open_hi)


def choice(key: str, value, options: Iterable):
    """`value` if it is one of `options`."""
    options = list(options)
    if value not in options:
        fail(key, value, f"must be one of {options}")
    return value


def list_of(key: str, value, check: Callable, *, allow_scalar: bool = True, nonempty: bool = True) -> tuple:
    """`check(f"{key}[{i}]", item)` for every item of the list `value` (a scalar is a list of one
    when `allow_scalar`)."""
    if not isinstance(value, list):
        if not allow_scalar:
            fail(key, value, "must be a list")
        value = [value]
    if nonempty and not value:
        fail(key, value, "must not be empty")
    return tuple(check(f"{key}[{i}]", item) for i, item in enumerate(value))


def check_keys(section: dict, allowed: Iterable[str], where: str) -> None:
    """Refuse a key of `section` (the table `[where]`, "" for the top level) not in `allowed`."""
    allowed = sorted(allowed)
    for key in section:
        if key not in allowed:
            fail(f"{where}.{key}" if where else key, section[key], f"unknown key; allowed keys in [{where or 'top level'}]: {allowed}")


def table(data: dict, name: str, *, required: bool = False) -> dict:
    """A copy of the table `[name]` of `data` (an empty one when absent and not `required`)."""
    if name not in data:
        if required:
            fail(f"[{name}]", None, "missing (required table)")
        return {}
    if not isinstance(data[name], dict):
        fail(f"[{name}]", data[name], "must be a table")
    return dict(data[name])


def read_toml(path: str | Path) -> dict:
    """The TOML file at `path` as a dict; an unreadable or invalid file is a `ConfigError`."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config {str(path)!r}: {error.strerror or error}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
