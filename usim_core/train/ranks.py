"""Who writes what when `usim-core train` runs as several processes under `torchrun` (no torch here, so a
failure to import torch still ends with an `error` event).

Rank 0 writes the run directory (config.yaml, events, metrics, train.log, checkpoints, W&B, evals), exactly as
one process does. Another rank writes nothing, except when it fails: then `.rank<r>.error` (its reason, frame
and traceback), so that rank 0, which then fails too (the collective it waits in breaks, or torchrun stops it),
reports the cause in its single `error` event instead of its own symptom.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usim_core.events import EventLog

REFUSED = ".rank0.refused"   # rank 0 has reported a refused config (its launch)
REFUSAL_WAIT_S = 20.0        # under torchrun's 30 s between its SIGTERM and its SIGKILL


@dataclass(frozen=True)
class Ranks:
    """This process's place in the launch (torchrun's environment; one process without it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    launch: str = ""   # the launch's identity: rendezvous address, run id and restart

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ranks:
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        launch = "/".join(env.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
                                                   "TORCHELASTIC_RESTART_COUNT"))
        return cls(int(env["RANK"]), world, int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))), launch)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def event_log(run_dir: str | Path, ranks: Ranks) -> EventLog:
    """Rank 0's event log (naming a failed peer's cause in its `error`), or a peer's silent one."""
    if not ranks.parallel:
        return EventLog(run_dir)
    return MainEvents(run_dir, ranks) if ranks.main else PeerEvents(run_dir, ranks)


class MainEvents(EventLog):
    def __init__(self, run_dir: str | Path, ranks: Ranks) -> None:
        super().__init__(run_dir)
        self.ranks = ranks

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind == "error":
            cause = peer_failure(self.path.parent, self.ranks)
            if cause is not None and cause["reason"] != fields.get("reason"):  # not the same failure everywhere
                fields = {**fields, "reason": f"rank {cause['rank']}: {cause['reason']}", "frame": cause["frame"]}
        return super().emit(kind, **fields)


    def settle_refusal(self, stopped: threading.Event) -> None:
        """The config was refused and said so: the peers waiting for that may exit now."""
        _write_record(self.path.parent / REFUSED, {"launch": self.ranks.launch})


class PeerEvents(EventLog):
    """Prints nothing and appends nothing; an `error` (other than `terminated`) goes to `.rank<r>.error`."""

    def __init__(self, run_dir: str | Path, ranks: Ranks) -> None:
        super().__init__(run_dir)
        self.ranks = ranks

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind == "error" and fields.get("reason") != "terminated":
            record = {"launch": self.ranks.launch, "rank": self.ranks.rank, "t": time.time(),
                      "reason": fields.get("reason", ""), "frame": fields.get("frame", ""),
                      "traceback": traceback.format_exc()}
            _write_record(self.path.parent / f".rank{self.ranks.rank}.error", record)
        return {"v": 1, "kind": kind, **fields}

    def settle_refusal(self, stopped: threading.Event, timeout_s: float = REFUSAL_WAIT_S) -> None:
        """Every rank refuses the same config, but torchrun stops all ranks as soon as one exits: a peer that
        exits first can stop rank 0 before it has said why. So a peer waits until rank 0 has reported, until
        torchrun stops it, or (rank 0 on another host, or stuck) timeout_s."""
        marker, deadline = self.path.parent / REFUSED, time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stopped.is_set():
            try:
                if json.loads(marker.read_text()).get("launch") == self.ranks.launch:
                    return
            except (OSError, json.JSONDecodeError):
                pass
            stopped.wait(0.05)


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def peer_failure(run_dir: Path, ranks: Ranks) -> dict[str, Any] | None:
    """The earliest failure another rank of this launch recorded, or None."""
    found = []
    for path in run_dir.glob(".rank*.error"):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("launch") == ranks.launch:
            found.append(record)
    return min(found, key=lambda r: r["t"]) if found else None
