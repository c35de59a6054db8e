"""The code's shape in figures (issue 11): files over 500 lines, functions over 60 lines,
import cycles between modules (imports inside functions counted), and the places that load
a generated inventory themselves.

    .venv/bin/python scripts/shape_report.py [--list]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("localcloud", "nornos_infra")
OTHERS = ("provision.py", "tasks.py", "deploys")
LONG_FILE, LONG_FUNCTION = 500, 60


def sources() -> Iterator[Path]:
    for top in (*PACKAGES, *OTHERS):
        path = ROOT / top
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, current: str, known: set[str]) -> set[str]:
    """Every project module ``current`` imports, at any depth of the code."""
    found: set[str] = set()
    is_package = current in known and (ROOT / current.replace(".", "/")).is_dir()
    package = current if is_package else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != current:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def main(show: bool) -> int:
    files = list(sources())
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    known = {module_name(path) for path in files}
    long_files = [(len(path.read_text().splitlines()), path) for path in files]
    long_files = sorted(((n, p) for n, p in long_files if n > LONG_FILE), reverse=True)
    long_functions = sorted(
        ((node.end_lineno or node.lineno) - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}")
        for path, tree in trees.items() for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > LONG_FUNCTION)
    graph = {module_name(path): imported_modules(tree, module_name(path), known) for path, tree in trees.items()}
    found_cycles = cycles(graph)
    # a reader of a generated inventory that loads the file itself instead of one shared loader
    inventory_loaders = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}" for path, tree in trees.items() for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run_path"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "runpy")
    print(f"files over {LONG_FILE} lines: {len(long_files)}")
    print(f"functions over {LONG_FUNCTION} lines: {len(long_functions)}")
    print(f"import cycles (imports inside functions counted): {len(found_cycles)}, "
          f"modules in them: {sum(len(c) for c in found_cycles)}")
    print(f"places that load an inventory file themselves (runpy.run_path): {len(inventory_loaders)}")
    if show:
        for lines, path in long_files:
            print(f"  file {path.relative_to(ROOT)}: {lines}")
        for lines, name in sorted(long_functions, reverse=True):
            print(f"  function {name}: {lines}")
        for cycle in found_cycles:
            print(f"  cycle: {' '.join(cycle)}")
        for place in inventory_loaders:
            print(f"  inventory loaded at {place}")
    return 0


if __name__ == "__main__":
    sys.exit(main("--list" in sys.argv[1:]))
