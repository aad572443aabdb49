"""The table of additive noise families: one object per family, one file per family.

`TABLE` maps each family's name to its object (`base.NoiseFamily`), ordered by `rank`;
`FAMILIES` is the tuple of names. Each module of this package other than `base` defines
`FAMILY`, so adding a family is adding one file here (see `base` for what a family answers).
"""

from __future__ import annotations

import importlib
import pkgutil

from objectives.noise_families.base import TABLE, NoiseFamily, NoiseModel, family_named

__all__ = ["FAMILIES", "TABLE", "NoiseFamily", "NoiseModel", "family_named"]


def _discover() -> dict[str, NoiseFamily]:
    found = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "base":
            continue
        family = importlib.import_module(f"{__name__}.{module_info.name}").FAMILY
        found.append(family)
    return {family.name: family for family in sorted(found, key=lambda family: (family.rank, family.name))}


TABLE.update(_discover())  # `base.TABLE`, which `NoiseModel.standard_law` reads
#: The additive noise families (`NoiseModel.family`).
FAMILIES: tuple[str, ...] = tuple(TABLE)
