"""The shape of the house, checked: the source packages import down the layout table only, no
module imports back into a loop (imports at module level, inside functions and under
`TYPE_CHECKING` all count), and no source file grows past 800 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("transports", "router_core", "stores", "mcp_gateway", "a2a", "acp", "junction")
MAY_IMPORT: dict[str, set[str]] = {
    "transports": set(),
    "router_core": set(),
    "stores": set(),
    "mcp_gateway": {"transports", "router_core"},
    "a2a": {"transports", "router_core", "stores"},
    "acp": {"transports", "router_core", "stores"},
    "junction": set(PACKAGES),
}
"""docs/architecture.md's table: what each package may import besides itself. (acp reaches the
MCP gateway and the A2A agents only through its own Protocols, adapted in junction.bridges.)"""
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """Every module of ours that `module` imports anywhere in its file, resolved to a module
    (an imported name that is a submodule counts as that submodule)."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                source = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" for alias in node.names]
            names = [name if name in MODULES else source for name in names]
        else:
            continue
        for name in names:
            found = name
            while found and found not in MODULES:
                found = found.rpartition(".")[0]
            if found and found != module:
                targets.add(found)
    return targets


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def _is_package_init(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def test_no_import_loops() -> None:
    # A package's __init__ re-exports its modules; a module importing its own package's public
    # names is the loop that hides the others, so it counts like any other.
    assert _cycles() == []


def test_packages_import_down_the_layout_table_only() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if (src := module.split(".")[0]) != (dst := target.split(".")[0])
        and dst not in MAY_IMPORT[src]
    )
    assert wrong == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_source_files_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"


def test_the_checker_sees_imports() -> None:
    """The graph is not empty by accident: known edges are found."""
    assert "transports.peer" in GRAPH["transports"]
    assert "router_core.tracing" in GRAPH["mcp_gateway.upstream"]
