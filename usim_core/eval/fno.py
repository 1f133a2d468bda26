"""The FNO baseline (neuralop.models.FNO), trained on the same training split with the same budget in process
CPU seconds (time.process_time: independent of machine load, unlike wall-clock).

It steps normalised fields directly (u' = u + FNO([u, log10(nu) + 2])), with the operator stage's recipe:
one-step loss plus an unrolled loss (stages.operator.unroll / unroll_weight), AdamW, cosine decay over the
CPU budget. It implements the rollout Stepper protocol (latent = normalised field), so eval rolls it out with
the very same loop and metrics as the surrogate. Saved to <run_dir>/baselines/fno.pt.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usim_core.eval.field_stepper import FieldStepper
from usim_core.eval.stepper_train import Recipe, train_stepper
from usim_core.train.checkpoint import atomic_save

FORMAT = "usim-fno-1"
DEFAULT_HPARAMS = {"n_modes": 16, "hidden_channels": 32, "n_layers": 4}


def rows_hash(rows: list) -> str:
    return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()[:16]


class FNOStepper(FieldStepper):
    def __init__(self, mean: float, std: float, n_modes: int, hidden_channels: int, n_layers: int) -> None:
        from neuralop.models import FNO

        super().__init__(mean, std, FNO(n_modes=(n_modes,), in_channels=2, out_channels=1,
                                        hidden_channels=hidden_channels, n_layers=n_layers))
        self.hparams = {"n_modes": n_modes, "hidden_channels": hidden_channels, "n_layers": n_layers}


def train_fno(u: np.ndarray, nu: np.ndarray, mean: float, std: float, *, budget_s: float, seed: int = 0,
              unroll: int = 4, unroll_weight: float = 0.5, batch_size: int = 32, lr: float = 1e-3,
              max_steps: int | None = None, hparams: dict | None = None,
              log: Any = None) -> tuple[FNOStepper, dict[str, Any]]:
    """Train on trajectories u (n, nt, nx) PHYSICAL until budget_s process CPU seconds (or max_steps) are spent."""
    torch.manual_seed(seed)
    model = FNOStepper(mean, std, **{**DEFAULT_HPARAMS, **(hparams or {})})
    wall = time.monotonic()
    recipe = Recipe(lr=lr, batch_size=batch_size, unroll=unroll, unroll_weight=unroll_weight)
    model, info = train_stepper(model, u, nu, recipe=recipe, seed=seed, max_steps=max_steps, budget_s=budget_s,
                                log=(lambda m: log(f"fno {m}")) if log else None)
    return model, {**info, "seconds": round(time.monotonic() - wall, 2)}


def save_fno(path: str | Path, model: FNOStepper, *, dt: float, manifest_hash: str, train_rows: list,
             config_hash: str, info: dict[str, Any], length: float = 1.0) -> None:
    blob = {"format": FORMAT, "hparams": model.hparams, "state_dict": model.state_dict(),
            "mean": float(model.u_mean), "std": float(model.u_std), "dt": dt, "length": length,
            "manifest_hash": manifest_hash,
            "train_rows": [list(r) for r in train_rows], "config_hash": config_hash, "info": info}
    atomic_save(blob, path)


def load_fno(path: str | Path) -> tuple[FNOStepper, dict[str, Any]]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not an FNO baseline file (format {FORMAT})")
    model = FNOStepper(blob["mean"], blob["std"], **blob["hparams"])
    state = {k: v for k, v in blob["state_dict"].items() if k != "_metadata"}  # neuralop's extra entry
    model.load_state_dict(state)
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state_dict"}
