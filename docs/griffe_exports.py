"""A Griffe extension for the API pages: what a package offers is what Python sees.

1. A package's API is its `__all__`. Griffe counts every submodule whose name has no leading
   underscore as public whatever `__all__` says, so `simulate.engine` or `objectives.base` would
   get a section beside `simulate.noise` and `objectives.smoothing`, which `__all__` lists. A
   submodule that the parent's `__all__` leaves out is marked private here.
2. A name imported over a submodule of the same name is the imported object, as in Python.

`simulate/__init__.py` does `from simulate.run import run` and `analysis/__init__.py` does
`from analysis.errors import errors`: at run time `simulate.run` is the function. Griffe (which
reads the source for mkdocstrings) keeps the submodule under that name instead
(mkdocstrings/griffe#124), so `simulate.run` and `analysis.errors` would be missing from the API
pages and every cross-reference to them would be broken. After a package is loaded, this
replaces each such member by an alias to the object the import binds. It applies to any package
and any future module of the same shape (`from analysis.stationary import stationary`), so the
pages need no per-module list.
"""

from __future__ import annotations

import griffe


class PythonExports(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        for module in _modules(pkg):
            if module.exports:
                for name, member in module.members.items():
                    if not member.is_alias and member.is_module and name not in module.exports:
                        member.public = False
            shadowed = {
                name: target
                for name, target in module.imports.items()
                if isinstance(module.members.get(name), griffe.Module)
                and not module.members[name].is_alias
                and target.startswith(module.members[name].path + ".")
            }
            if not shadowed:
                continue
            # Aliases that go through a shadowed submodule (`simulate.tail_length` ->
            # `simulate.run.tail_length`) are resolved now, while that path still leads there.
            for member in module.members.values():
                if member.is_alias:
                    try:
                        member.final_target
                    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                        pass  # external (jax, numpy): left to mkdocstrings as usual
            for name, target in shadowed.items():
                imported = loader.modules_collection.get_member(target)
                module.set_member(name, griffe.Alias(name, imported, parent=module))


def _modules(module: griffe.Module):
    yield module
    for submodule in list(module.modules.values()):
        if not submodule.is_alias:
            yield from _modules(submodule)
