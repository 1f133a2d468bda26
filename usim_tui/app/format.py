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
STOPPED_EARLY_STYLE = "bold medium_purple1"   # a decision, not a fault: never the failures' red
CELL_STYLE = {
    C.PENDING: "dim", C.LAUNCHING: "yellow", C.RUNNING: "bold cyan", C.FINISHED: "bold green", C.FAILED: "bold red",
    C.STOPPED_EARLY: STOPPED_EARLY_STYLE, C.DUPLICATE: "magenta",
}
# States and end reasons as the panes say them, where the ledger's word would read as a code.
STATE_WORD: dict[str, str] = {C.STOPPED_EARLY: "stopped early"}
# End reasons the reason column colours (the rest are plain): a stopped-early attempt is not a failure.
REASON_STYLE: dict[str, str] = {states.EndReason.STOPPED_EARLY: STOPPED_EARLY_STYLE}
KEEP_MARK = "⚑"   # a cell a person keeps: the stopping rule never stops it
ATTEMPT_STYLE = {
    A.PENDING: "yellow", A.LOADING: "yellow", A.RUNNING: "bold cyan", A.STOPPED: "bold dark_orange",
    A.EXITED: "green", A.OFFLINE: "red", A.FAILED: "bold red", A.DESTROYED: "dim", A.LAUNCHING: "yellow",
    A.DESTROYING: "dark_orange", A.NOT_CREATED: "dim", A.LEAKED: "bold red reverse",
}
# Attempt states that bill (or may): quitting with these while the controller runs here asks first.
LIVE = states.LIVE


def state_word(state: str | None) -> str:
    """A cell state or end reason as the app says it (`stopped early`); others as recorded."""
    return STATE_WORD.get(state, state) if state else ""


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


def short_names(names: list[str], width: int, rounds: dict[str, str] | None = None) -> dict[str, str]:
    """Each name within `width`, keeping what tells it from the others (the round and the varied values), never
    a tail two names share and never a cut inside a value. Names that fit stay whole; else the first of these
    forms that fits every name and keeps them distinct: the parts (between `_`) every name shares at the front
    go (`…lr1e-3_w0pct`); the round (`rounds`: name -> its round) shortened to what tells the rounds apart
    (`A·lr4.5e-4_w3pct`, then the shortest distinct start of each round's name); the axis names every name of a
    round shares (`A·4.5e-4_3pct`); each round in the first form that fits all its names (`B·cap64` beside
    `A·4.5e-4_3pct`). Only a width too small for all of these cuts characters (the middle out)."""
    if all(len(n) <= width for n in names):
        return {n: n for n in names}
    rounds = rounds or {}
    forms = _forms(names, rounds)
    by_round: dict[str, list[str]] = {}
    for n in names:
        by_round.setdefault(rounds.get(n, ""), []).append(n)
    labels = {}
    for members in by_round.values():
        form = next((f for f in forms if all(len(f[n]) <= width for n in members)), forms[-1])
        labels.update({n: form[n] for n in members})
    if all(len(v) <= width for v in labels.values()) and len(set(labels.values())) == len(set(names)):
        return labels
    for labels in forms:
        if all(len(v) <= width for v in labels.values()) and len(set(labels.values())) == len(set(names)):
            return labels
    labels = forms[-1]
    for head in _heads(width):   # where to cut the middle out: the first cut that keeps every label distinct
        out = {n: _fit(label, width, head) for n, label in labels.items()}
        if len(set(out.values())) == len(set(labels.values())):
            return out
    return {n: _fit(label, width, (width - 1) // 2) for n, label in labels.items()}


def _forms(names: list[str], rounds: dict[str, str]) -> list[dict[str, str]]:
    """short_names' forms, each shorter than the one before: per name (what stands for the front, the rest)."""
    parts = {n: n.split("_") for n in names}
    front = _shared_front(list(parts.values())) if len(names) > 1 else 0
    less_front = {n: ("…", "_".join(p[front:])) if front else ("", n) for n, p in parts.items()}
    rest = {n: n[len(rounds[n]) + 1:] for n in names if rounds.get(n) and n.startswith(rounds[n] + "_")}
    # the shared front alone, unless it would leave half a round's name (`…a_lr2e-4` of round_a, round_b)
    forms = [less_front] if front and all(rounds[n].count("_") < front for n in rest) else []
    if rest:
        for short in _round_names(sorted({rounds[n] for n in rest})):
            forms.append({n: (short[rounds[n]] + "·" if short[rounds[n]] else "", rest[n]) if n in rest
                          else less_front[n] for n in names})
    last = forms[-1] if forms else less_front
    groups: dict[str, list[list[str]]] = {}
    for lead, tail in last.values():   # axis names are shared within a round: the same lead
        groups.setdefault(lead, []).append(tail.split("_"))
    forms.append({n: (lead, "_".join(_without_axis_names(groups[lead], tail.split("_"))))
                  for n, (lead, tail) in last.items()})
    return [{n: lead + tail for n, (lead, tail) in form.items()} for form in forms]


def _round_names(rounds: list[str]) -> list[dict[str, str]]:
    """Shorter names for the rounds: less the front they all share (`round_a` -> `A`), then the shortest start
    that tells each from the others. One round alone needs none."""
    if len(rounds) == 1:
        return [{rounds[0]: ""}]
    parts = [r.split("_") for r in rounds]
    front = _shared_front(parts)
    less = {r: "_".join(p[front:]) for r, p in zip(rounds, parts, strict=True)}
    n = 1
    while len({v[:n] for v in less.values()}) < len(less) and n < max(map(len, less.values())):
        n += 1
    return [{r: _capital(v) for r, v in less.items()}, {r: _capital(v[:n]) for r, v in less.items()}]


def _capital(short: str) -> str:
    """A one-letter round name in capitals (`A`), as the sweep's rounds are spoken of."""
    return short.upper() if len(short) == 1 else short


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


LOSS_WIDTH = 7   # the instances table's loss column


def loss(x: float | None, width: int = LOSS_WIDTH) -> str:
    """Within `width` characters, never cut: 3 significant digits, fewer where they do not fit, the exponent
    without its `+` and leading zeros (`7.46e-6`, `1.23e3`)."""
    if x is None or not math.isfinite(x):
        return "-"
    for digits in (3, 2, 1):
        text = f"{x:.{digits}g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
        if len(text) <= width:
            break
    return text
