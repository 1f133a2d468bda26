"""Optional Weights & Biases tracking (tracking.wandb.mode online|offline). Offline runs land in
<run_dir>/wandb/ ready for `wandb sync`. The environment (WANDB_API_KEY, WANDB_BASE_URL) is left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usim_core.config import STAGES, RunConfig


class Tracker:
    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.run = None
        w = cfg.tracking.wandb
        self.online = w.mode == "online"
        if w.mode == "disabled":
            return
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=w.project, entity=w.entity, group=w.group, tags=list(w.tags),
                              name=w.run_name, id=w.run_id, resume="allow", mode=w.mode, dir=str(run_dir),
                              config=cfg.to_dict())
        self.run.define_metric("step")
        for stage in STAGES:
            for prefix in ("train", "val"):
                self.run.define_metric(f"{prefix}/{stage}/*", step_metric="step")
        self.run.define_metric("eval/*")

    def log(self, record: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in record.items() if isinstance(v, int | float)})

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def artifact(self, path: Path, stage: str) -> None:
        if self.run is not None and self.online:
            art = self.wandb.Artifact(f"{self.run.id}-{stage}", type="checkpoint", metadata={"stage": stage})
            art.add_file(str(path))
            self.run.log_artifact(art)

    def finish(self, exit_code: int) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
