"""Optional Weights & Biases tracking. Offline runs land in <run_dir>/wandb/ ready for `wandb sync`.

The mode: the environment's WANDB_MODE (online|offline|disabled) wins over the config's tracking.wandb.mode,
so a host is switched online (with WANDB_API_KEY) or off without editing configs. W&B is a secondary copy
(metrics.jsonl and events.jsonl are the record): a failure at init or while logging never fails the run.
It degrades to offline (init) or stops logging to W&B (log), with one `warning` event saying why. The key
(WANDB_API_KEY) is read by wandb from the environment and never passed, logged or written here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from usim_core.config import STAGES, RunConfig

MODES = ("online", "offline", "disabled")
Warn = Callable[[str], None]


def effective_mode(config_mode: str, env: dict[str, str] | None = None) -> str:
    """WANDB_MODE from the environment when it is a known mode ('dryrun' is offline), else the config's."""
    env = os.environ if env is None else env
    value = (env.get("WANDB_MODE") or "").strip().lower()
    if value == "dryrun":
        value = "offline"
    return value if value in MODES else config_mode


class Tracker:
    def __init__(self, cfg: RunConfig, run_dir: Path, warn: Warn | None = None) -> None:
        self.run: Any = None
        self._cfg = cfg
        self._run_dir = Path(run_dir)
        self._warn = warn or self._warn_event
        self.mode = effective_mode(cfg.tracking.wandb.mode)
        self.online = self.mode == "online"
        if self.mode == "disabled":
            return
        try:
            import wandb
        except ImportError as exc:
            self._warn(f"W&B off: wandb is not importable ({exc})")
            self.mode, self.online = "disabled", False
            return
        self.wandb = wandb
        try:
            self.run = self._init(self.mode)
        except Exception as exc:  # noqa: BLE001 - any W&B failure must not end the run
            if self.mode == "offline":
                self._warn(f"W&B off: offline init failed ({_one_line(exc)})")
                return
            self._warn(f"W&B online init failed ({_one_line(exc)}); logging offline to {self._run_dir / 'wandb'}")
            self.mode, self.online = "offline", False
            try:
                self.run = self._init("offline")
            except Exception as exc2:  # noqa: BLE001
                self._warn(f"W&B off: offline init failed too ({_one_line(exc2)})")

    def _init(self, mode: str) -> Any:
        w = self._cfg.tracking.wandb
        run = self.wandb.init(project=w.project, entity=w.entity, group=w.group, tags=list(w.tags),
                              name=w.run_name, id=w.run_id, resume="allow", mode=mode, dir=str(self._run_dir),
                              config=self._cfg.to_dict())
        run.define_metric("step")
        for stage in STAGES:
            for prefix in ("train", "val"):
                run.define_metric(f"{prefix}/{stage}/*", step_metric="step")
        run.define_metric("eval/*")
        return run

    def _warn_event(self, reason: str) -> None:
        from usim_core.events import EventLog
        EventLog(self._run_dir).emit("warning", reason=reason)

    def _guard(self, what: str, fn: Callable[[], Any]) -> None:
        if self.run is None:
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            self._warn(f"W&B {what} failed ({_one_line(exc)}); no more W&B logging in this run "
                       "(metrics.jsonl has everything)")
            run, self.run = self.run, None
            try:
                run.finish(exit_code=1, quiet=True)
            except Exception:  # noqa: BLE001, S110
                pass

    def log(self, record: dict[str, Any]) -> None:
        self._guard("log", lambda: self.run.log({k: v for k, v in record.items() if isinstance(v, int | float)}))

    def summary(self, values: dict[str, Any]) -> None:
        self._guard("summary", lambda: self.run.summary.update(values))

    def artifact(self, path: Path, stage: str) -> None:
        if self.run is None or not self.online:
            return

        def upload() -> None:
            art = self.wandb.Artifact(f"{self.run.id}-{stage}", type="checkpoint", metadata={"stage": stage})
            art.add_file(str(path))
            self.run.log_artifact(art)
        self._guard("artifact upload", upload)

    def finish(self, exit_code: int) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            try:
                run.finish(exit_code=exit_code)
            except Exception as exc:  # noqa: BLE001
                self._warn(f"W&B finish failed ({_one_line(exc)})")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    key = os.environ.get("WANDB_API_KEY", "")
    return line.replace(key, "***") if len(key) >= 8 else line
