"""Imports of core/, scheduler/ and pages/: no circles, and no guards around our own modules.

No module imports itself back through others.

The graph is read from the source with `ast` (nothing is imported): module-level and
function-level imports both count, because a circle hidden inside a function still ties the
two modules together (neither can be read, tested or moved alone). Imports under
`if TYPE_CHECKING:` are left out: they never run.
"""
from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

from core.config import PROJECT_ROOT

PACKAGES = ("core", "scheduler", "pages")

# Circles tolerated for now: none. An entry would be the sorted tuple of the modules in one
# circle (one strongly connected component); a circle that is gone must leave the set too.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:  # alembic scripts are loaded by alembic, not imported
                continue
            found[module_name(path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Names of the modules `tree` imports.

    `from core import budget` imports the module core.budget; `from core.search import search`
    imports the package core.search (its __init__) for the function. The parent packages that
    Python runs on the way are not counted: every submodule would otherwise "import" its
    package's __init__, which imports it back.
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets = _imports(tree, name, path.name == "__init__.py", set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete circle inside a component (shortest path from its first module back to itself)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return component  # pragma: no cover - a component always has a circle


def test_the_module_walk_sees_function_level_imports_and_packages():
    """The walker itself: a guard against a test that passes because it reads nothing."""
    graph = import_graph()
    assert {"core.pipeline", "scheduler.jobs", "pages.search"} <= set(graph)
    assert "core.db" in graph["scheduler.jobs"]  # module level
    assert "core.sources.registry" in graph["core.pipeline"]
    demo = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(demo) == [["a", "b", "c"]]
    assert one_cycle(demo, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_module_of_core_scheduler_or_pages_imports_itself_back():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if tuple(c) not in KNOWN_CYCLES]
    report = "\n".join(" → ".join(one_cycle(graph, c)) + f"   (component: {', '.join(c)})" for c in cycles)
    assert not cycles, f"import circles:\n{report}"
    gone = KNOWN_CYCLES - {tuple(c) for c in strongly_connected(graph)}
    assert not gone, f"these circles are gone: remove them from KNOWN_CYCLES: {sorted(gone)}"


def test_import_guards_protect_only_optional_packages():
    """`except ImportError` around one of our own modules hides a broken build (and once hid a
    skipped search-cache invalidation): only packages a build may lack are guarded."""
    modules = all_modules()
    guarded_own: list[str] = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not catches & {"ImportError", "ModuleNotFoundError"}:
                continue
            inner = _imports(ast.Module(body=node.body, type_ignores=[]), name, path.name == "__init__.py", set(modules))
            guarded_own += [f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} guards {m}" for m in sorted(inner & set(modules))]
            guarded_own += [
                f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} guards {m}"
                for m in sorted(inner) if m.split(".")[0] in PACKAGES and m not in modules
            ]
    assert not guarded_own, "import guards around project modules:\n" + "\n".join(guarded_own)


def test_every_command_a_module_registers_is_named_in_core_cli_commands():
    """`python -m core X` imports only X's module, found through core.cli.COMMANDS: a command a
    module registers but COMMANDS does not name would be missing from every run but --help's."""
    import subprocess
    import sys

    from core.cli import COMMANDS

    registered: dict[str, set[str]] = {}
    for module in set(COMMANDS.values()):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        registered[module] = set(sub.choices)
    named = {module: {c for c, m in COMMANDS.items() if m == module} for module in registered}
    assert registered == named
    # The real CLI: a command runs with only its own module loaded.
    out = subprocess.run([sys.executable, "-c", "import sys; from core.__main__ import build_parser; "
                          "build_parser(['backfill', 'status']); print(sorted(m for m in sys.modules if m.startswith('core.cli.')))"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['core.cli.backfill']", out.stdout + out.stderr
