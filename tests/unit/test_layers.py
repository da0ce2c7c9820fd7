"""The code's imports follow its layers, with no cycles; test modules share helpers, not each other.

Layers, high to low (docs/architecture.md): a module may import its own
package and the layers below it, never a layer above, and never a sibling
package of its own layer. Every import counts, inside functions and
`TYPE_CHECKING` blocks too: a cycle hidden from the interpreter is still one
for the reader. grimp and import-linter, made for this, cannot analyse a
project whose top level holds single-file modules (`settings.py`,
`metrics.py`), so the graph is read here with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS: tuple[tuple[str, ...], ...] = (
    ("web",),
    ("actors", "cluster"),  # beside each other: neither imports the other
    ("routing",),
    ("storage",),
    ("protocol",),
    ("settings", "metrics", "greenlets"),
)
LAYER_OF = {top: depth for depth, tops in enumerate(LAYERS) for top in tops}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_modules() -> dict[str, Path]:
    """Every module of the service's own packages and top-level modules, by dotted name."""
    paths: list[Path] = []
    for top in LAYER_OF:
        package = ROOT / top
        paths += sorted(package.rglob("*.py")) if package.is_dir() else [ROOT / f"{top}.py"]
    return {module_name(path): path for path in paths if path.exists()}


def imported_modules(path: Path, known: set[str] | dict[str, Path]) -> set[str]:
    """The known modules `path` imports: `from a.b import c` is `a.b.c` if that is a module, else `a.b`."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                imported.add(submodule if submodule in known else node.module)
    return {name for name in imported if name in known}


def import_graph() -> dict[str, set[str]]:
    modules = first_party_modules()
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    violations = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != top and LAYER_OF[other] <= LAYER_OF[top]:
                relation = "a sibling" if LAYER_OF[other] == LAYER_OF[top] else "a higher layer"
                violations.append(f"{module} imports {target}, {relation}")
    return violations


def test_every_first_party_package_has_a_layer():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    outside = packages - set(LAYER_OF) - {"tests", "bench", "scripts", "deploy"}
    assert not outside, f"packages with no layer in LAYERS: {sorted(outside)}"


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "modules importing each other, directly or not:\n" + "\n".join(map(" <-> ".join, found))


def test_no_import_from_a_higher_layer_or_a_sibling_package():
    found = layer_violations(import_graph())
    assert not found, "imports against the layers (see LAYERS):\n" + "\n".join(found)


def test_layers_of_the_checker_itself():
    """The checker sees cycles and upward imports (so that an empty answer above means something)."""
    graph = {"storage.a": {"storage.b"}, "storage.b": {"storage.a"}, "protocol.c": {"web.d"}, "web.d": set()}
    assert cycles(graph) == [["storage.a", "storage.b"]]
    assert layer_violations(graph) == ["protocol.c imports web.d, a higher layer"]
    siblings = {"actors.x": {"cluster.y"}, "cluster.y": set()}
    assert layer_violations(siblings) == ["actors.x imports cluster.y, a sibling"]


def test_modules_are_found():
    modules = first_party_modules()
    assert {"actors.runtime", "storage.batching", "protocol.frames", "settings", "metrics"} <= set(modules)


TEST_ROOT = ROOT / "tests"


def modules_of_the_tests() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(TEST_ROOT.rglob("*.py"))}


@pytest.mark.parametrize("path", sorted(TEST_ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_module_imports_another_or_a_conftest(path: Path):
    tests = modules_of_the_tests()
    shared = {name for name, p in tests.items() if p.name.startswith("test_") or p.name == "conftest.py"}
    borrowed = sorted(imported_modules(path, tests) & shared)
    assert not borrowed, f"{path.name} imports {borrowed}: shared test code belongs in tests/helpers"
