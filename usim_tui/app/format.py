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
    """Each name shortened to `width` by dropping what the names share at the front (`…lr1e-3_w0pct`), never the
    tail that tells them apart; names that fit stay whole."""
    if all(len(n) <= width for n in names):
        return {n: n for n in names}
    cut = common_prefix(names) if len(names) > 1 else 0
    out = {}
    for n in names:
        rest = n[cut:]
        out[n] = n if len(n) <= width else "…" + rest[-(width - 1):] if width > 1 else n[-1:]
    return out


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
