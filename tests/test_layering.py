"""Library below, application above: objectives -> simulate -> analysis -> theory -> figures -> asgd.

A package imports only the packages before it; no import cycle; no import of our own packages
placed inside a function (the way cycles used to be dodged); and the library packages do not
load matplotlib on import. The import graph is read statically (`ast`, every module, top-level
and function-level imports), so a module that is never imported by a test is still checked.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each package and the packages of ours it may import.
ALLOWED = {
    "objectives": set(),
    "simulate": {"objectives"},
    "analysis": {"objectives", "simulate"},
    "theory": {"objectives", "simulate", "analysis"},
    "figures": {"objectives", "simulate", "analysis", "theory"},
    "asgd": {"objectives", "simulate", "analysis", "theory", "figures"},
}


class Import:
    def __init__(self, module: str, target: str, line: int, in_function: bool):
        self.module, self.target, self.line, self.in_function = module, target, line, in_function

    @property
    def source_package(self) -> str:
        return self.module.split(".")[0]

    @property
    def target_package(self) -> str:
        return self.target.split(".")[0]

    def __repr__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.module}:{self.line} imports {self.target}{where}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(path: Path, root: Path) -> list[Import]:
    """Every import statement of ours in the module at `path`, with whether it sits in a function."""
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against this module's package
                    base = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    stem = ".".join(base + ([child.module] if child.module else []))
                else:
                    stem = child.module or ""
                # `from analysis import minima` imports the module analysis.minima when it is one.
                targets = [
                    f"{stem}.{alias.name}" if _is_module(root, f"{stem}.{alias.name}") else stem for alias in child.names
                ]
            else:
                visit(child, nested)
                continue
            for target in targets:
                if target.split(".")[0] in ALLOWED:
                    found.append(Import(module, target, child.lineno, in_function))
            visit(child, nested)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def _is_module(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph(root: Path = ROOT) -> list[Import]:
    """Every import of our packages by every module of our packages under `root`."""
    edges = []
    for package in ALLOWED:
        for path in sorted((root / package).rglob("*.py")):
            edges.extend(_imports_of(path, root))
    return edges


def upward_arrows(edges: list[Import]) -> list[Import]:
    return [
        e for e in edges
        if e.target_package != e.source_package and e.target_package not in ALLOWED[e.source_package]
    ]


def function_level_imports(edges: list[Import]) -> list[Import]:
    return [e for e in edges if e.in_function]


def cycles(edges: list[Import]) -> list[list[str]]:
    """Cycles among modules through top-level imports (an import of a package counts as an
    import of its `__init__`), and among packages; each as the list of nodes around it."""
    found = []
    for key in (lambda name: name, lambda name: name.split(".")[0]):
        graph: dict[str, set[str]] = {}
        for e in edges:
            if not e.in_function and key(e.module) != key(e.target):
                graph.setdefault(key(e.module), set()).add(key(e.target))
        state: dict[str, int] = {}  # 1: on the current path, 2: finished

        def walk(node, path):
            state[node] = 1
            for successor in sorted(graph.get(node, ())):
                if state.get(successor) == 1:
                    found.append(path[path.index(successor):] + [successor] if successor in path else [node, successor])
                elif successor not in state:
                    walk(successor, path + [successor])
            state[node] = 2

        for node in sorted(graph):
            if node not in state:
                walk(node, [node])
    return found


def test_the_graph_sees_every_package_and_the_known_arrows():
    edges = import_graph()
    assert {e.source_package for e in edges} == set(ALLOWED)
    arrows = {(e.source_package, e.target_package) for e in edges}
    assert {("simulate", "objectives"), ("analysis", "simulate"), ("theory", "analysis"), ("figures", "analysis"), ("asgd", "theory"), ("asgd", "figures")} <= arrows


def test_no_package_imports_a_later_layer():
    assert upward_arrows(import_graph()) == []


def test_no_import_cycle_between_modules_or_packages():
    assert cycles(import_graph()) == []


def test_no_import_of_our_packages_inside_a_function():
    assert function_level_imports(import_graph()) == []


def test_the_checks_catch_a_planted_upward_import_cycle_and_hidden_import(tmp_path):
    for package in ALLOWED:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    planted = tmp_path / "objectives" / "quadratic.py"
    planted.write_text(planted.read_text() + "\nfrom asgd import cli\n\n\ndef hidden():\n    import simulate\n")
    edges = import_graph(tmp_path)
    assert [repr(e) for e in upward_arrows(edges)] == [
        f"objectives.quadratic:{len(planted.read_text().splitlines()) - 4} imports asgd.cli",
        f"objectives.quadratic:{len(planted.read_text().splitlines())} imports simulate (inside a function)",
    ]
    assert [e.target for e in function_level_imports(edges)] == ["simulate"]
    assert any(c[0] == c[-1] and {"asgd", "objectives"} <= set(c) for c in cycles(edges))


@pytest.mark.parametrize("package", ["objectives", "simulate", "analysis", "theory"])
def test_importing_a_library_package_loads_no_later_layer_and_no_matplotlib(package):
    later = sorted(p for p in ALLOWED if package in ALLOWED[p])
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"assert 'matplotlib' not in sys.modules, 'import {package} loaded matplotlib'\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        f"    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {later!r}]\n"
        f"assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_the_moved_names_still_answer_from_analysis_with_a_deprecation_warning():
    """analysis.stationary_law, analysis.theory and analysis.plots moved up; for one
    release the old names give the new objects, each with a DeprecationWarning naming the new home."""
    import analysis
    import figures
    import theory

    expected = {"stationary_law": theory.stationary_law, "StationaryLaw": theory.StationaryLaw, "theory": theory.quadratic, "plots": figures}
    for name, new in expected.items():
        with pytest.warns(DeprecationWarning, match=f"analysis.{name} moved to"):
            assert getattr(analysis, name) is new
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        analysis.nonsense  # noqa: B018
    with pytest.warns(DeprecationWarning, match="analysis.minima.smoothed_solution moved to analysis.solutions"):
        assert analysis.minima.smoothed_solution is analysis.solutions.smoothed_solution


@pytest.mark.parametrize("name", ["objectives", "simulate", "analysis", "theory", "figures"])
def test_every_result_type_a_public_function_returns_is_exported_beside_it(name):
    """`analysis.minimizers` returns an `analysis.Minima`, not a type the user must find in a
    submodule: each public function's annotated return type, where it is one of the package's own
    classes, is in the package's `__all__` too."""
    import importlib
    import inspect
    import typing

    package = importlib.import_module(name)
    hidden = []
    for member in package.__all__:
        function = getattr(package, member)
        if not inspect.isfunction(function):
            continue
        returned = typing.get_type_hints(function).get("return")
        for kind in (returned, *typing.get_args(returned)):
            if inspect.isclass(kind) and kind.__module__.split(".")[0] == name and kind.__name__ not in package.__all__:
                hidden.append(f"{name}.{member} -> {kind.__module__}.{kind.__name__}")
    assert not hidden, hidden
