"""The progress protocol shared by the trainer (writer) and the fleet (reader). No torch.

Every event is one line `@usim {json}` on stdout (so a provider's log endpoint carries it) and the same JSON
object appended to `events.jsonl` in the run directory. Fields present on every event:
  v (protocol version), kind, t (unix seconds).
Kinds: started, stage_start, metric, stage_end, eval, done, error (and others, such as the host bootstrap's
`bootstrap` and `exit` lines, that readers which do not know them ignore). A run ends with exactly one `done`
or `error` event. The shape of each kind is declared once, below, for the writer and every reader.
"""


import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal, NotRequired, TextIO, TypedDict

PREFIX = "@usim "
VERSION = 1


class Event(TypedDict):
    v: int
    kind: str
    t: float


class StartedEvent(Event):
    config_hash: str
    architecture: str
    device: str
    resume: bool
    stage: str | None
    pid: int
    threads: int
    processes: NotRequired[int]    # data-parallel processes (torchrun); 1 without it


class StageStartEvent(Event):
    stage: str
    epochs: int
    steps: int
    steps_per_epoch: int
    resumed_at_step: int
    val_loss_initial: NotRequired[float | None]


class MetricEvent(Event):
    stage: str
    epoch: int
    step: int                      # within the stage
    total_steps: int
    metrics: dict[str, float]      # train/<stage>/loss, val/<stage>/loss, lr, grad_norm, samples_per_s, ...


class StageEndEvent(Event):
    stage: str
    step: int
    epochs_run: NotRequired[int]
    best_val: NotRequired[float | None]
    stopped_early: NotRequired[bool]
    checkpoint: NotRequired[str]
    skipped: NotRequired[bool]     # a resumed run found the stage already finished


class EvalEvent(Event):
    name: Literal["small", "full"]  # small: the val subset after training; full: the test split
    metrics: dict[str, float]      # the eval JSON's flat metrics (nrmse_rollout, mass_drift, ...)
    path: NotRequired[str]


class DoneEvent(Event):
    checkpoint: str
    seconds: float


class ErrorEvent(Event):
    reason: str                    # one line
    frame: NotRequired[str]        # the traceback's last frame


class WarningEvent(Event):
    reason: str


KINDS: dict[str, type[Event]] = {
    "started": StartedEvent, "stage_start": StageStartEvent, "metric": MetricEvent, "stage_end": StageEndEvent,
    "eval": EvalEvent, "done": DoneEvent, "error": ErrorEvent, "warning": WarningEvent,
}


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
