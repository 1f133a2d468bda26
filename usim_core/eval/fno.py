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
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from usim_core.train.checkpoint import atomic_save

FORMAT = "usim-fno-1"
DEFAULT_HPARAMS = {"n_modes": 16, "hidden_channels": 32, "n_layers": 4}


def rows_hash(rows: list) -> str:
    return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()[:16]


class FNOStepper(nn.Module):
    def __init__(self, mean: float, std: float, n_modes: int, hidden_channels: int, n_layers: int) -> None:
        super().__init__()
        from neuralop.models import FNO

        self.hparams = {"n_modes": n_modes, "hidden_channels": hidden_channels, "n_layers": n_layers}
        self.net = FNO(n_modes=(n_modes,), in_channels=2, out_channels=1, hidden_channels=hidden_channels,
                       n_layers=n_layers)
        self.register_buffer("u_mean", torch.tensor(float(mean)))
        self.register_buffer("u_std", torch.tensor(max(float(std), 1e-8)))

    def encode(self, u: Tensor, nu: Tensor) -> Tensor:
        return (u - self.u_mean) / self.u_std

    def decode(self, z: Tensor) -> Tensor:
        return z * self.u_std + self.u_mean

    def step(self, z: Tensor, nu: Tensor, dt: Tensor) -> Tensor:
        feat = (torch.log10(nu.clamp_min(1e-12)) + 2.0)[:, None].expand_as(z)
        return z + self.net(torch.stack([z, feat], dim=1))[:, 0]

    def sample_residual(self, *args: Any, **kwargs: Any) -> Tensor:
        raise ValueError("the FNO baseline is deterministic: evaluate it in mode 'operator'")


def train_fno(u: np.ndarray, nu: np.ndarray, mean: float, std: float, *, budget_s: float, seed: int = 0,
              unroll: int = 4, unroll_weight: float = 0.5, batch_size: int = 32, lr: float = 1e-3,
              max_steps: int | None = None, hparams: dict | None = None,
              log: Any = None) -> tuple[FNOStepper, dict[str, Any]]:
    """Train on trajectories u (n, nt, nx) PHYSICAL until budget_s process CPU seconds (or max_steps) are spent."""
    torch.manual_seed(seed)
    g = np.random.default_rng(seed)
    model = FNOStepper(mean, std, **{**DEFAULT_HPARAMS, **(hparams or {})})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    data = torch.as_tensor(u, dtype=torch.float32)
    nus = torch.as_tensor(nu, dtype=torch.float32)
    n, nt, _ = data.shape
    h = max(1, min(unroll, nt - 1))
    start, wall, step, loss_ema = time.process_time(), time.monotonic(), 0, None
    while True:
        elapsed = time.process_time() - start
        if elapsed >= budget_s or (max_steps is not None and step >= max_steps):
            break
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget_s)))
        traj = torch.as_tensor(g.integers(0, n, batch_size))
        t0 = torch.as_tensor(g.integers(0, nt - h, batch_size))
        win = data[traj[:, None], t0[:, None] + torch.arange(h + 1)]  # (b, h+1, nx)
        zt = model.encode(win, nus[traj])
        z, losses = zt[:, 0], []
        for k in range(1, h + 1):
            z = model.step(z, nus[traj], torch.zeros(batch_size))
            losses.append((z - zt[:, k]).pow(2).mean())
        loss = losses[0] + unroll_weight * (torch.stack(losses[1:]).mean() if h > 1 else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_ema = float(loss.detach()) if loss_ema is None else 0.98 * loss_ema + 0.02 * float(loss.detach())
        if log and step % 100 == 0:
            log(f"fno step {step} loss {loss_ema:.4g} ({time.process_time() - start:.0f}/{budget_s:.0f} CPU s)")
    model.eval()
    return model, {"steps": step, "cpu_s": round(time.process_time() - start, 2),
                   "seconds": round(time.monotonic() - wall, 2), "loss": loss_ema,
                   "budget_s": budget_s, "unroll": h, "batch_size": batch_size, "lr": lr}


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
