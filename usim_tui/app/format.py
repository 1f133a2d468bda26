"""Small text helpers shared by the panes (no Textual)."""

from __future__ import annotations

import math
import time

from usim_tui.fleet.store import states

BLOCKS = "▁▂▃▄▅▆▇█"

# Budget thresholds, shown in the help screen: the gauge turns amber, then red.
AMBER_AT = 0.75
RED_AT = 0.90

C, A = states.CellState, states.AttemptState
CELL_STYLE = {
    C.PENDING: "dim", C.LAUNCHING: "yellow", C.RUNNING: "bold cyan", C.FINISHED: "bold green", C.FAILED: "bold red",
    C.DUPLICATE: "magenta",
}
ATTEMPT_STYLE = {
    A.PENDING: "yellow", A.LOADING: "yellow", A.RUNNING: "bold cyan", A.STOPPED: "bold dark_orange",
    A.EXITED: "green", A.OFFLINE: "red", A.FAILED: "bold red", A.DESTROYED: "dim", A.LAUNCHING: "yellow",
    A.DESTROYING: "dark_orange", A.NOT_CREATED: "dim", A.LEAKED: "bold red reverse",
}
# Attempt states that bill (or may): quitting with these while the controller runs here asks first.
LIVE = states.LIVE


def sparkline(values: tuple[float, ...] | list[float], width: int = 12) -> str:
    """The series squeezed into `width` buckets (bucket means), one block character each."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    n = len(vals)
    if n > width:
        edges = [n * i // width for i in range(width + 1)]
        vals = [sum(vals[lo:hi]) / (hi - lo) for lo, hi in zip(edges, edges[1:], strict=False) if hi > lo]
    lo, hi = min(vals), max(vals)
    scale = 7.999 / (hi - lo) if hi > lo else 0.0
    return "".join([BLOCKS[int((v - lo) * scale)] for v in vals])


def money(x: float) -> str:
    return f"${x:,.2f}"


def duration(seconds: float | None) -> str:
    """`42s`, `4m12s` under an hour (a phase timer must move), `3h07m` beyond."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    m = s // 60
    return f"{m}m{s % 60:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def short_names(names: list[str], width: int) -> dict[str, str]:
    """Each name within `width`, keeping what tells it from the others (the round and the varied values), never
    a tail two names share. Names that fit stay whole; else, step by step until each fits: the parts (between
    `_`) every name shares at the front go (`…lr1e-3_w0pct`), then the axis names every name shares at a
    position (`…1e-3_0pct`), then the middle of what is left. Distinct names stay distinct as long as the
    width allows them to."""
    if all(len(n) <= width for n in names):
        return {n: n for n in names}
    parts = {n: n.split("_") for n in names}
    front = _shared_front(list(parts.values())) if len(names) > 1 else 0
    rest = {n: p[front:] or p[-1:] for n, p in parts.items()}
    values = {n: "_".join(r) for n, r in rest.items()}
    if any(len(v) + 1 > width for v in values.values()):
        values = {n: "_".join(_without_axis_names(list(rest.values()), r)) for n, r in rest.items()}
    labels = {n: n if len(n) <= width else "…" + values[n] for n in names}
    for head in _heads(width):   # where to cut the middle out: the first cut that keeps every label distinct
        out = {n: _fit(label, width, head) for n, label in labels.items()}
        if len(set(out.values())) == len(set(labels.values())):
            return out
    return {n: _fit(label, width, (width - 1) // 2) for n, label in labels.items()}


def _heads(width: int) -> list[int]:
    """Characters kept before the cut, from the middle outwards."""
    mid = (width - 1) // 2
    return sorted(range(width), key=lambda h: (abs(h - mid), h))


def _shared_front(parts: list[list[str]]) -> int:
    """How many leading parts every name shares (one is always left to each)."""
    n = 0
    while all(len(p) > n + 1 for p in parts) and len({p[n] for p in parts}) == 1:
        n += 1
    return n


def _without_axis_names(all_parts: list[list[str]], parts: list[str]) -> list[str]:
    """`lr1e-3` -> `1e-3` where every name's part at that position starts with the same letters (an axis name)."""
    out = []
    for i, part in enumerate(parts):
        column = [p[i] for p in all_parts if len(p) > i]
        head = _letters(part)
        shared = head and all(_letters(c) == head for c in column) and len(part) > len(head)
        out.append(part[len(head):] if shared else part)
    return out


def _letters(part: str) -> str:
    n = 0
    while n < len(part) and part[n].isalpha():
        n += 1
    return part[:n]


def _fit(label: str, width: int, head: int) -> str:
    """The label within `width`: `head` characters, `…`, the end (the ends tell names apart: the round, the
    last value)."""
    if len(label) <= width:
        return label
    if width < 3:
        return label[-width:]
    head = min(max(head, 1), width - 2)
    return label[:head] + "…" + label[len(label) - (width - 1 - head):]


def common_prefix(names: list[str]) -> int:
    """Length of the shared front of the names, cut back to just after a `_` so a value is not split."""
    if not names:
        return 0
    lo, hi = min(names), max(names)
    n = 0
    while n < len(lo) and lo[n] == hi[n]:
        n += 1
    return lo.rfind("_", 0, n) + 1


def clock_time(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def loss(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"
