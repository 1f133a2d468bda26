"""The progress protocol shared by the trainer (writer) and the fleet (reader). No torch.

Every event is one line `@usim {json}` on stdout (so a provider's log endpoint carries it) and the same JSON
object appended to `events.jsonl` in the run directory. Fields present on every event:
  v (protocol version), kind, t (unix seconds).
Kinds: started, stage_start, metric, stage_end, eval, done, error (and free-form others, ignored by readers
that do not know them). A run ends with exactly one `done` or `error` event.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

PREFIX = "@usim "
VERSION = 1
KINDS = ("started", "stage_start", "metric", "stage_end", "eval", "done", "error")


def format_event(kind: str, **fields: Any) -> str:
    """One protocol line (without newline)."""
    return PREFIX + json.dumps({"v": VERSION, "kind": kind, "t": round(time.time(), 3), **fields},
                               separators=(",", ":"), default=str)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event carried by a log line, or None. Tolerates log prefixes (timestamps) before the marker."""
    i = line.find(PREFIX)
    if i < 0:
        return None
    try:
        event = json.loads(line[i + len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "kind" in event else None


def parse_lines(text: str) -> list[dict[str, Any]]:
    return [e for e in (parse_line(line) for line in text.splitlines()) if e is not None]


class EventLog:
    """Writes each event to stdout (prefixed) and appends it to events.jsonl, flushing both."""

    def __init__(self, run_dir: str | Path, stream: TextIO | None = None) -> None:
        self.path = Path(run_dir) / "events.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = stream or sys.stdout

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        line = format_event(kind, **fields)
        print(line, file=self.stream, flush=True)
        with open(self.path, "a") as f:
            f.write(line[len(PREFIX):] + "\n")
            f.flush()
            os.fsync(f.fileno())
        return json.loads(line[len(PREFIX):])


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
    return out
