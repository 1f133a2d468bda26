"""Small text helpers shared by the panes (no Textual)."""

from __future__ import annotations

import math
import time

BLOCKS = "▁▂▃▄▅▆▇█"

# Budget thresholds, shown in the help screen: the gauge turns amber, then red.
AMBER_AT = 0.75
RED_AT = 0.90

CELL_STYLE = {
    "pending": "dim",
    "launching": "yellow",
    "running": "bold cyan",
    "finished": "bold green",
    "failed": "bold red",
    "duplicate": "magenta",
}
ATTEMPT_STYLE = {
    "pending": "yellow", "loading": "yellow", "running": "bold cyan", "stopped": "bold dark_orange",
    "exited": "green", "offline": "red", "failed": "bold red", "destroyed": "dim", "launching": "yellow",
    "destroying": "dark_orange", "not_created": "dim", "leaked": "bold red reverse",
}
# Attempt states that bill (or will): quitting with these while the controller runs here asks first.
LIVE = frozenset({"pending", "loading", "running", "stopped", "launching", "destroying", "leaked"})


def sparkline(values: tuple[float, ...] | list[float], width: int = 12) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    if len(vals) > width:  # keep the last `width` buckets, each the mean of its slice
        step = len(vals) / width
        vals = [sum(chunk) / len(chunk) for chunk in
                (vals[int(i * step):max(int((i + 1) * step), int(i * step) + 1)] for i in range(width))]
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def money(x: float) -> str:
    return f"${x:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def clock_time(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def loss(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"
