"""The layering of the project, read from the source (ast, nothing imported): imports flow one way, entry points
(``train.py``, ``evaluate.py``) -> ``operators`` (tasks -> networks/layers) -> ``datasets`` (data, PDE definitions,
config support). ``datasets`` imports nothing from ``operators`` -- at module level or inside a function -- and the
package-level import graph has no cycle."""
from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "operators")
ENTRY_POINTS = ("train", "evaluate")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file of every module of the packages and of the entry points."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    for name in ENTRY_POINTS:
        if (root / f"{name}.py").exists():
            out[name] = root / f"{name}.py"
    return out


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """``(dotted name, line)`` of everything ``source`` (the module ``module``) imports, at any depth (inside
    functions, classes, ``if``/``try`` blocks), relative imports resolved, ``importlib.import_module("...")`` and
    ``__import__("...")`` with a literal name included."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((name, node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return found


def import_graph(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """Top-level first-party package (or entry point) -> imported first-party package -> ``file:line`` of each
    import."""
    first_party = set(PACKAGES) | set(ENTRY_POINTS)
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, path in module_files(root).items():
        src = module.split(".")[0]
        for name, line in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            dst = name.split(".")[0]
            if dst in first_party and dst != src:
                graph[src][dst].append(f"{path.relative_to(root)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def datasets_importing_operators(root: Path = ROOT) -> list[str]:
    graph = import_graph(root)
    return [f"{where} imports operators" for where in graph.get("datasets", {}).get("operators", [])]


# ---------------------------------------------------------------------------------------------- the checks
def test_datasets_import_nothing_from_operators() -> None:
    offending = datasets_importing_operators()
    assert not offending, "datasets/ is the lower layer; move what it needs down:\n" + "\n".join(offending)


def test_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        edges = [f"{a} -> {b}: {', '.join(graph[a][b][:3])}" for a, b in itertools.pairwise(cycle)]
        raise AssertionError("import cycle " + " -> ".join(cycle) + "\n" + "\n".join(edges))


def test_entry_points_are_imported_by_no_library_module() -> None:
    graph = import_graph()
    offending = [f"{where} imports {entry}" for package in PACKAGES for entry in ENTRY_POINTS
                 for where in graph.get(package, {}).get(entry, [])]
    assert not offending, "\n".join(offending)


def test_every_module_is_read() -> None:
    modules = module_files()
    for needed in ("datasets.generation", "datasets.generate", "datasets.pdes", "datasets.runtime.errors",
                   "operators.physics.navier_stokes_residual", "operators.tasks.spectral_refiner", "train"):
        assert needed in modules, needed


# ---------------------------------------------------------------------------------------------- the checker
def test_checker_finds_imports_at_any_depth() -> None:
    source = '''
import numpy as np
from . import storage
from ..pdes.base import PDEProblem

def main():
    from operators.runtime.errors import exit_on_user_error
    import operators.runtime.resolvers

class A:
    def f(self):
        try:
            import importlib
            importlib.import_module("operators.physics")
        except ImportError:
            pass
'''
    found = sorted(imported_modules(source, "datasets.runtime.cli"), key=lambda item: item[1])
    assert found == [("numpy", 2), ("datasets.runtime", 3), ("datasets.pdes.base", 4),
                     ("operators.runtime.errors", 7), ("operators.runtime.resolvers", 8), ("importlib", 13),
                     ("operators.physics", 14)]
    assert [n for n, _ in imported_modules("from .base import X", "datasets.pdes", is_package=True)] == \
        ["datasets.pdes.base"]


def test_checker_finds_the_old_cycle(tmp_path: Path) -> None:
    # the layout before the split: the data CLI imported the training side's resolvers and errors
    (tmp_path / "datasets" / "pdes").mkdir(parents=True)
    (tmp_path / "operators" / "physics").mkdir(parents=True)
    (tmp_path / "datasets" / "__init__.py").write_text("")
    (tmp_path / "datasets" / "pdes" / "__init__.py").write_text("")
    (tmp_path / "datasets" / "pdes" / "navier_stokes.py").write_text("def forcing(n): ...\n")
    (tmp_path / "datasets" / "generate.py").write_text(
        "from operators.runtime import resolvers  # noqa\n\ndef main():\n    from operators.runtime.errors import x\n")
    (tmp_path / "operators" / "__init__.py").write_text("")
    (tmp_path / "operators" / "physics" / "residual.py").write_text(
        "def f():\n    from datasets.pdes.navier_stokes import forcing\n")
    assert datasets_importing_operators(tmp_path) == ["datasets/generate.py:1 imports operators",
                                                      "datasets/generate.py:4 imports operators"]
    assert find_cycle(import_graph(tmp_path)) in (["datasets", "operators", "datasets"],
                                                  ["operators", "datasets", "operators"])
    (tmp_path / "datasets" / "generate.py").write_text("from datasets.pdes import navier_stokes\n")
    assert not datasets_importing_operators(tmp_path) and find_cycle(import_graph(tmp_path)) is None
