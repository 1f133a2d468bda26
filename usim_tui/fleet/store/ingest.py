"""Event ingestion: what a batch of new protocol events (usim_core.events) changes for one attempt. Pure: the
controller reads the events, keeps those the ledger has not recorded, calls `ingest`, and writes the result
in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from usim_core.config import STAGES
from usim_core.events import Event

META = frozenset({"v", "t", "kind"})


@dataclass
class Ingested:
    attempt: dict[str, Any] = field(default_factory=dict)     # fields for Ledger.set_attempt
    metrics: list[tuple[int, dict[str, float], float | None]] = field(default_factory=list)  # (step, values, t)
    small_metrics: dict[str, float] | None = None              # the latest eval named small, if one came
    full_metrics: dict[str, float] | None = None               # the latest eval named full, if one came
    started: bool = False                                      # a `started` event came in this batch


def ingest(events: Sequence[Event], concluded: bool = False) -> Ingested:
    """`concluded`: the attempt's `done` or `error` event was recorded before these."""
    out = Ingested()
    for e in events:
        kind = e["kind"]
        stage = e.get("stage")
        if isinstance(stage, str) and stage:
            out.attempt["stage"] = stage
        for k in ("epoch", "step"):
            if isinstance(e.get(k), int):
                out.attempt[k] = e[k]  # type: ignore[literal-required]
        if kind == "started":
            out.attempt["started_event"] = 1
            out.started = True
        elif kind == "stage_start" and isinstance(e.get("resumed_at_step"), int):
            out.attempt["resumed_step"] = e["resumed_at_step"]  # type: ignore[typeddict-item]
            out.attempt["resumed_stage"] = e.get("stage")
        elif kind == "stage_end" and e.get("skipped") and (at := _resumed_after(e)) is not None:
            out.attempt["resumed_stage"], out.attempt["resumed_step"] = at
        elif kind == "metric":
            _metric(out, e, stage if isinstance(stage, str) else None)
        elif kind == "eval":
            values = numbers(e.get("metrics"))
            if e.get("name") == "full":
                out.full_metrics = values
            else:
                out.small_metrics = values
        elif kind == "done":
            out.attempt["done_event"] = 1
        elif kind == "error":
            out.attempt["error_event"] = str(e.get("reason") or describe(e))[:500]
        elif kind == "exit" and not (concluded or "done_event" in out.attempt or "error_event" in out.attempt):
            # the host script (hosts/run_script.sh, vast/onstart.sh) ended with neither `done` nor `error`:
            # torchrun or the trainer died without a word of its own (a rank killed outright, torchrun itself)
            why = e.get("error")
            out.attempt["error_event"] = (f"exit code {e.get('code')} without a done event"
                                          + (f": {why}" if why else ""))[:500]
    return out


def _metric(out: Ingested, e: Mapping[str, Any], stage: str | None) -> None:
    """A metric event's values, keyed `<stage>/<name>` where the trainer gave a bare name (`loss`)."""
    keyed = {f"{stage}/{k}" if stage and "/" not in k else k: v for k, v in numbers(e.get("metrics")).items()}
    out.metrics.append((int(e.get("step") or 0), keyed, e.get("t")))
    loss = next((v for k, v in keyed.items() if k.endswith("/loss") and not is_val(k)), None)
    if loss is not None:
        out.attempt["last_loss"] = loss


def is_val(key: str) -> bool:
    return key.startswith("val/") or "/val_" in key or "/val/" in key


def numbers(d: Any) -> dict[str, float]:
    """The numeric entries of a metrics mapping (booleans and anything else left out)."""
    if not isinstance(d, Mapping):
        return {}
    return {k: float(v) for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def describe(e: Mapping[str, Any]) -> str:
    """One line for the events pane: the kind, its scalar fields, and the values of a field that holds them
    (a metric event's `metrics`: `train/operator/loss=0.0123 lr=0.0003`)."""
    rest = {k: v for k, v in e.items() if k not in META}
    fields = [(k, v) for k, v in rest.items() if not isinstance(v, dict | list)]
    fields += [(k, v) for d in rest.values() if isinstance(d, dict) for k, v in d.items()
               if isinstance(v, int | float | str) and not isinstance(v, bool)]
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields)
    return f"{e.get('kind')} {text}"[:500]


def _resumed_after(e: Event) -> tuple[str, int] | None:
    """Where a resumed run that skipped this finished stage resumes: the next stage's start (unless that one's own
    stage_start names a step: a `.last.pt` of it was there), or after the last one (the host was lost during the
    evaluation) at its end."""
    stage, step = e.get("stage"), e.get("step")
    if stage not in STAGES:
        return None
    i = STAGES.index(stage)
    if i + 1 < len(STAGES):
        return STAGES[i + 1], 0
    return (stage, step) if isinstance(step, int) else None
