"""Data flows one way: objectives -> simulate -> analysis. Importing a package never pulls in a
later one."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "package, forbidden",
    [("objectives", ["simulate", "analysis"]), ("simulate", ["analysis"])],
)
def test_a_package_does_not_import_later_layers(package, forbidden):
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        f"    if not m.name.endswith('__main__'):\n"
        f"        importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]\n"
        f"assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
