"""Human-facing output next to the machine protocol: metrics.jsonl, train.log, and a rich progress bar on a
terminal (plain lines otherwise). The `@usim` event lines are printed by EventLog regardless."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class MetricsFile:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), **record}, separators=(",", ":")) + "\n")


def describe(kind: str, ev: dict[str, Any]) -> str | None:
    """One readable line for an event (None = not worth a line)."""
    if kind == "stage_start":
        return f"stage {ev['stage']}: {ev['epochs']} epochs, {ev['steps']} steps"
    if kind == "metric":
        m = ", ".join(f"{k}={v:.4g}" for k, v in ev["metrics"].items() if isinstance(v, float))
        return f"{ev['stage']} epoch {ev['epoch']} step {ev['step']}/{ev.get('total_steps', '?')}: {m}"
    if kind == "stage_end":
        return f"stage {ev['stage']} done at step {ev['step']} (best val {ev.get('best_val')})"
    if kind == "eval":
        return f"eval {ev['name']}: {len(ev.get('metrics', {}))} metrics"
    if kind in ("started", "done", "error", "warning"):
        return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in ev.items() if k not in ("v", "kind", "t"))
    return None


class Display:
    """Rich progress on a TTY, else one plain line per event on stdout; every line also goes to train.log."""

    def __init__(self, log_path: Path, quiet: bool = False) -> None:
        self.log = open(log_path, "a", buffering=1)
        self.quiet = quiet
        self.progress = None
        self.task = None
        if sys.stdout.isatty() and not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.progress.start()

    def on_event(self, kind: str, ev: dict[str, Any]) -> None:
        line = describe(kind, ev)
        if line:
            self.log.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        if self.progress is None:
            if line and not self.quiet:
                print(line, flush=True)
            return
        if kind == "stage_start":
            self.task = self.progress.add_task(ev["stage"], total=max(ev["steps"], 1), info="")
        elif kind == "metric" and self.task is not None:
            loss = next((v for k, v in ev["metrics"].items() if k.endswith("/loss")), None)
            self.progress.update(self.task, completed=ev["step"], info=f"loss {loss:.4g}" if loss else "")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.log.close()
