"""The rooms import one way, as docs/architecture.md's table says, and no usim_tui modules import each other in
a circle. Read from the source (every import, those under TYPE_CHECKING, inside functions and through
importlib included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLEET_ROOMS = ("process", "control", "vast", "hosts", "providers", "stopping", "store", "clock")


def allowed_table() -> dict[str, set[str]]:
    """room -> the rooms it may import, read from docs/architecture.md's table ("The rooms"), whose rows run
    from the top room down: a room may import only rooms listed below it."""
    text = (ROOT / "docs/architecture.md").read_text()
    rows = re.findall(r"^\| `usim_tui/([\w/.]+?)/?` \|.*\| ([\w, ]+) \|$", text.split("## The rooms")[1], re.M)
    table: dict[str, set[str]] = {}
    order = []
    for path, may in rows:
        room = path.replace("/", ".").removesuffix(".py")
        names = set() if may.strip() == "nothing" else {n.strip() for n in may.split(",")}
        table[room] = {f"fleet.{n}" if n in FLEET_ROOMS else n for n in names}
        order.append(room)
    for i, room in enumerate(order):   # the table's own order says the same as its last column
        above = set(order[:i + 1])
        assert not table[room] & above, f"docs/architecture.md: {room} may import a room listed above it"
    return table


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
    """Every usim_tui module (or package) this file imports, `importlib.import_module("...")` included."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            out.add(node.args[0].value)
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


def test_each_room_imports_only_what_the_architecture_page_allows():
    allowed = allowed_table()
    assert {f"fleet.{r}" for r in FLEET_ROOMS} | {"app", "report", "emulator"} <= set(allowed), \
        "docs/architecture.md's table lacks a room"
    wrong = []
    for mod, deps in graph().items():
        src = room(mod)
        if src not in allowed:
            continue
        for dep in deps:
            dst = room(dep)
            if dst is not None and dst != src and dst not in allowed[src]:
                wrong.append(f"{mod} imports {dep} ({src} may import: {', '.join(sorted(allowed[src])) or 'nothing'})")
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
