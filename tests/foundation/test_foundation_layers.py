"""The fleet's rooms import one way (docs/architecture.md's table), and no usim_tui modules import each other in
a circle. Read from the source (every import, those under TYPE_CHECKING and inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# room -> the rooms it may import (docs/architecture.md, "The rooms")
ALLOWED: dict[str, set[str]] = {
    "fleet.clock": set(),
    "fleet.store": set(),
    "fleet.providers": {"fleet.store", "fleet.clock"},
    "fleet.hosts": {"fleet.providers"},
    "fleet.vast": {"fleet.providers", "fleet.hosts", "fleet.store", "fleet.clock"},
    "fleet.control": {"fleet.store", "fleet.providers", "fleet.hosts", "fleet.clock"},
    "fleet.process": {"fleet.control", "fleet.vast", "fleet.hosts", "fleet.providers", "fleet.store", "fleet.clock"},
    "report": {"fleet.store"},
    "app": {"fleet.process", "fleet.control", "fleet.store", "fleet.clock"},
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "usim_tui" or len(parts) < 2:
        return None
    if parts[1] == "fleet":
        return f"fleet.{parts[2]}" if len(parts) > 2 else None
    return parts[1]


def imports(path: Path) -> set[str]:
    """Every usim_tui module (or package) this file imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if (ROOT / full.replace(".", "/")).with_suffix(".py").exists()
                        or (ROOT / full.replace(".", "/")).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("usim_tui")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in (ROOT / "usim_tui").rglob("*.py")}


def test_each_room_imports_only_the_rooms_below_it():
    wrong = []
    for mod, deps in graph().items():
        src = room(mod)
        if src not in ALLOWED:
            continue
        for dep in deps:
            dst = room(dep)
            if dst is not None and dst != src and dst not in ALLOWED[src]:
                wrong.append(f"{mod} imports {dep} ({src} may import: {', '.join(sorted(ALLOWED[src])) or 'nothing'})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles_in_usim_tui():
    g = graph()
    edges = {m: {d for d in deps if d in g and d != m} for m, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                circles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checks_see_real_imports():
    """The reader is not blind: the controller's imports of the store and the hosts are found."""
    deps = graph()["usim_tui.fleet.control.controller"]
    assert "usim_tui.fleet.store.ledger" in deps and "usim_tui.fleet.control.host_runs" in deps
